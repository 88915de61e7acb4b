"""Did the search beat the hand designs? Retrain a search's best-validation architecture and
zoo designs over the same seeds, alternately in one run, with the same protocol.

The run's best architecture (``best_arch.json``: selected on validation only) and each zoo
entry named are trained from scratch with seeds 0..N-1 (for graph datasets: stratified
K-fold, every fold a figure). Printed: mean ± std of validation and test, FLOPs and
parameters, for each. Test figures are only reported; nothing here selects on them.

    python benchmarks/beat_the_zoo.py RUN_DIR [--zoo gat,gcn] [--seeds 5] [--folds K] [--data-root ../shared/datasets]
                                      [--within-flops-of gin]

``--within-flops-of NAME``: instead of the run's best, its best-validation trial (the
confirmed mean where the search confirmed trials) among those with at most the FLOPs of
zoo entry NAME's reference trial: "did the search beat it at equal or fewer FLOPs?".
"""
from __future__ import annotations

import argparse
import statistics

import pandas as pd
import torch
import yaml

from graphnas.evaluators import TrainConfig, load_dataset
from graphnas.results.export import read_export
from graphnas.results.retrain import retrain
from graphnas.search_spaces import Architecture
from graphnas.search_spaces.zoo import zoo_entry


def best_within_flops(run_dir: str, reference: str) -> tuple[Architecture, dict]:
    """The best-validation completed trial with at most the FLOPs of the reference trial."""
    trials = pd.read_csv(f"{run_dir}/trials.csv")
    done = trials[trials["state"] == "COMPLETE"]
    ref = done[done["reference"] == reference]
    if ref.empty:
        raise SystemExit(f"{run_dir} has no completed reference trial {reference}")
    cheap = done[(done["flops"] <= ref["flops"].iloc[0]) & (done["reference"] != reference)].copy()
    if cheap.empty:
        raise SystemExit(f"no trial of {run_dir} has at most the FLOPs of {reference}")
    val = cheap["confirmed_val"].fillna(cheap["val_metric"]) if "confirmed_val" in cheap else cheap["val_metric"]
    row = cheap.loc[val.sort_values(ascending=False, kind="stable").index[0]]
    return Architecture.from_json(row["arch_json"]), {"trial": int(row["trial"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir")
    parser.add_argument("--zoo", default="gat")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--folds", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--patience", type=int, default=None, help="[default: the search's]")
    parser.add_argument("--data-root", default="../shared/datasets")
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--within-flops-of", default=None, help="a zoo entry run as a reference trial of the search")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    best, _, record = read_export(f"{args.run_dir}/best_arch.json")
    if args.within_flops_of:
        best, record = best_within_flops(args.run_dir, f"zoo:{args.within_flops_of}")
    config = yaml.safe_load(open(f"{args.run_dir}/config.yaml"))
    dataset = config["dataset"]
    patience = args.patience or config["train"]["patience"]
    designs = {f"search best (trial {record.get('trial')})": best}
    designs.update({f"zoo:{name}": zoo_entry(name).architecture_for(dataset) for name in args.zoo.split(",")})
    norms = {a.feature_norm for a in designs.values()}
    bundle = load_dataset(dataset, args.data_root, args.cache_dir, feature_norms=norms)
    train = TrainConfig(epochs=args.epochs, patience=patience, folds=args.folds, device="cpu")
    results: dict[str, list] = {name: [] for name in designs}
    for seed in range(args.seeds):  # alternately, the order swapped every seed
        order = list(designs) if seed % 2 == 0 else list(designs)[::-1]
        for name in order:
            report, _ = retrain(designs[name], bundle, train.model_copy(update={"seed": seed}), seeds=1)
            results[name] += report.results
    over = f"{args.seeds} seeds" + (f" x {args.folds} folds" if args.folds > 1 else "")
    print(f"{dataset}: {args.epochs} epochs, patience {patience}, {over}; torch {torch.get_num_threads()} thread(s)")
    print("| design | val (mean ± std) | test (mean ± std) | FLOPs | params |")
    print("|---|---:|---:|---:|---:|")
    for name, rs in results.items():
        val = [100 * r.val_metric for r in rs]
        test = [100 * r.test_metric for r in rs]
        sd = lambda v: statistics.stdev(v) if len(v) > 1 else 0.0  # noqa: E731
        print(f"| {name} | {statistics.fmean(val):.1f} ± {sd(val):.1f} | {statistics.fmean(test):.1f} ± {sd(test):.1f} "
              f"| {rs[0].flops:,} | {rs[0].params:,} |")


if __name__ == "__main__":
    main()
