"""Run one search and print its time and what it found (the best-validation architecture's
test metric, which is reported, never used to select).

    python benchmarks/search_quality.py                                  # the default search
    python benchmarks/search_quality.py --dataset cora --data-root ../shared/datasets --trials 20
"""
from __future__ import annotations

import argparse
import tempfile
import time

from evaluators import TrainConfig
from nas import Search, SearchConfig


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--space", default="tiny")
    parser.add_argument("--dataset", default="synthetic")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--strategy", default="tpe")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    run_dir = tempfile.mkdtemp(prefix="graphnas-bench-")
    config = SearchConfig(space=args.space, dataset=args.dataset, data_root=args.data_root, trials=args.trials,
                          strategy=args.strategy, seed=args.seed, run_dir=run_dir, train=TrainConfig(seed=args.seed))
    search = Search(config)
    start = time.perf_counter()
    study = search.run()
    elapsed = time.perf_counter() - start
    outputs = search.store.outputs(study)
    best = outputs.best
    states = outputs.frame["state"].value_counts().to_dict()
    print(f"space {args.space}, dataset {args.dataset}, strategy {args.strategy}, seed {args.seed}")
    print(f"trials {args.trials} ({states}) in {elapsed:.1f} s, {elapsed / args.trials:.1f} s per trial")
    print(f"best trial {int(best['trial'])}: val {best['val_metric']:.4f}, test {best['test_metric']:.4f}, "
          f"{int(best['flops']):,} FLOPs")
    print(f"Pareto front: {len(outputs.front)} trials; best test among all trials "
          f"{outputs.frame['test_metric'].max():.4f} (reported only)")
    print(f"run dir {run_dir}")


if __name__ == "__main__":
    main()
