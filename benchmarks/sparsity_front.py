"""Search the ``gtsp`` preset on Cora and compare each sparsified architecture of the
accuracy-versus-FLOPs Pareto front with its dense counterpart (the same architecture
without a sparsity section), whose FLOPs are counted on the same graph.

    python benchmarks/sparsity_front.py --trials 30 --epochs 60 --run-dir runs/gtsp-cora
    python benchmarks/sparsity_front.py --run-dir runs/gtsp-cora --resume   # table of a finished run

Prints the front, then per sparsified front member: its counted FLOPs, its dense
counterpart's, and the ratio. FLOPs do not depend on the weights, so the dense
counterpart is built, not trained.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from graphnas.evaluators import TrainConfig  # noqa: E402
from graphnas.evaluators.cost import flops_of  # noqa: E402
from graphnas.nas import Search, SearchConfig  # noqa: E402
from graphnas.search_spaces import Architecture, build_model, model_inputs  # noqa: E402


def dense_flops(arch: Architecture, bundle) -> int:
    dense = arch.model_copy(update={"sparsity": None})
    return flops_of(build_model(dense, bundle.info), **model_inputs(bundle.data, dense))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--patience", type=int, default=20)
    parser.add_argument("--strategy", default="tpe")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--run-dir", type=Path, default=ROOT / "runs" / "gtsp-cora")
    parser.add_argument("--resume", action="store_true", help="continue (or just tabulate) the run in --run-dir")
    parser.add_argument("--data-root", default=str(ROOT.parent / "shared" / "datasets"))
    args = parser.parse_args()

    config = SearchConfig(space="gtsp", dataset="cora", data_root=args.data_root, trials=args.trials,
                          strategy=args.strategy, seed=args.seed, run_dir=str(args.run_dir), objectives="metric,flops",
                          train=TrainConfig(epochs=args.epochs, patience=args.patience, mask_epochs=args.epochs // 3,
                                            latency_repeats=1))
    search = Search(config, resume=args.resume)
    search.run()
    bundle = search.prepare().bundle

    front = json.loads((args.run_dir / "pareto.json").read_text())["trials"]
    frame = pd.read_csv(args.run_dir / "trials.csv")
    done = frame[frame.state == "COMPLETE"]
    print(f"{len(done)} complete trials, {len(front)} on the front; "
          f"{int(done['arch_json'].map(lambda j: Architecture.from_json(j).sparsity is not None).sum())} sparsified")
    rows = []
    for point in front:
        arch = Architecture.from_json(point["arch_json"])
        sp = arch.sparsity
        row = {"trial": point["trial"], "val": round(point["val_metric"], 3), "test": round(point["test_metric"], 3),
               "flops": point["flops"], "layers": arch.num_layers, "attention": arch.layers[0].attention,
               "mpnn": arch.layers[0].mpnn,
               "sparsity": "dense" if sp is None else
               f"e{sp.edges:g}({sp.edge_method[0]}) h{sp.heads:g} l{sp.layers:g} w{sp.weights:g}"}
        if sp is not None:
            row["dense_flops"] = dense_flops(arch, bundle)
            row["ratio"] = round(point["flops"] / row["dense_flops"], 3)
        rows.append(row)
    table = pd.DataFrame(rows).sort_values("flops")
    print(table.to_string(index=False))
    sparse = table.dropna(subset=["ratio"]) if "ratio" in table else table.iloc[:0]
    if len(sparse):
        print(f"sparsified front members with fewer FLOPs than their dense counterpart: "
              f"{int((sparse.ratio < 1).sum())} of {len(sparse)}")


if __name__ == "__main__":
    main()
