"""Differentiable search on graph classification (issue 14): DARTS and GDAS against TPE given
the same wall-clock time, and whether the derived model is above the majority class.

For each dataset (the default space of its task, ``graph``; one stratified holdout split;
seed 0): a ``darts`` search and a ``gdas`` search (supernet, then the derived architecture
retrained by the standard evaluator), then ``tpe`` with ``--timeout`` set to the longer of
the two. Printed per search: wall time, trials, the best-validation trial's validation and
test accuracy, and the test split's majority-class share (a model that predicts one class
scores exactly that). Selection on validation only; test is reported.

    python benchmarks/darts_graph.py [--datasets mutag,proteins] [--epochs 100] [--data-root ../shared/datasets]
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("GRAPHNAS_KNOWLEDGE", "none")  # the strategies on their own, no transfer

import torch  # noqa: E402

from graphnas.evaluators import TrainConfig, load_dataset  # noqa: E402
from graphnas.nas import Search, SearchConfig  # noqa: E402
from graphnas.results.report import arch_label  # noqa: E402


def majority_share(dataset: str, data_root: str) -> float:
    bundle = load_dataset(dataset, data_root)
    y = torch.cat([bundle.graphs[i].y for i in bundle.splits.test.tolist()])
    return float(torch.bincount(y).max()) / len(y)


def run(dataset: str, strategy: str, data_root: str, epochs: int, timeout: float | None) -> dict:
    config = SearchConfig(dataset=dataset, data_root=data_root, strategy=strategy, seed=0, threads=1,
                          trials=1000 if timeout else 20, timeout=timeout, confirm=0,
                          run_dir=tempfile.mkdtemp(prefix=f"graphnas-{dataset}-{strategy}-"),
                          train=TrainConfig(epochs=epochs, patience=epochs))
    start = time.perf_counter()
    search = Search(config)
    study = search.run()
    best = search.store.outputs(study).best
    return {"wall": time.perf_counter() - start, "trials": len(study.trials), "val": best["val_metric"],
            "test": best["test_metric"], "arch": arch_label(best)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default="mutag,proteins")
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--data-root", default="../shared/datasets")
    args = parser.parse_args()
    torch.set_num_threads(1)
    for dataset in args.datasets.split(","):
        majority = majority_share(dataset, args.data_root)
        rows = {s: run(dataset, s, args.data_root, args.epochs, None) for s in ("darts", "gdas")}
        budget = max(r["wall"] for r in rows.values())
        rows["tpe (same wall clock)"] = run(dataset, "tpe", args.data_root, args.epochs, budget)
        print(f"\n{dataset}: test majority-class share {majority:.3f}")
        print(f"{'search':<24}{'wall s':>8}{'trials':>8}{'val':>8}{'test':>8}  above majority  best trial")
        for name, r in rows.items():
            print(f"{name:<24}{r['wall']:>8.0f}{r['trials']:>8}{r['val']:>8.3f}{r['test']:>8.3f}  "
                  f"{'yes' if r['test'] > majority + 1e-6 else 'NO':>14}  {r['arch']}", flush=True)


if __name__ == "__main__":
    main()
