"""The predictor's refit, fresh against warm-started, measured in one run (issue 45).

The default strategy (``auto``: the predictor) refits an ensemble of small MLPs each time its
history grows by a tenth. A fresh fit takes 300 full-batch Adam steps from a random start; a
warm refit starts from the last fit's weights and takes ``PredictorSearch.warm_steps``.

1. **Time.** The 30-query tabular search of ``tests/evaluators/test_tabular.py`` (NAS-Bench-Graph
   citeseer, objectives metric and latency, through ``Search`` with its run store) run with
   fresh refits and with warm ones, alternately, ``--repeats`` times each, one torch thread;
   the median wall time of each and their ratio, and the seconds spent in ``MLPEnsemble.fit``.
2. **Quality.** ``search_quality.py``'s searches of the default strategy (``auto+knowledge``)
   with fresh and with warm refits on the same seeds: the mean regret at 30, 100 and 200 queries
   and the hypervolume ratio at 100 and 200, with the paired difference (warm - fresh) and its
   standard error over the seeds.

    python benchmarks/surrogate_refit.py [--repeats 5] [--seeds 20] [--datasets cora,citeseer,pubmed]
"""
from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

MODES = {"fresh": None, "warm": "default"}  # warm_steps per mode; "default": the class's own (or --warm-steps)


@contextlib.contextmanager
def refit_mode(mode: str):
    """PredictorSearch.warm_steps for one measurement: None refits from scratch (the behaviour
    before warm starts). Set on the class because the engine builds its strategy from the
    registry by name; restored on exit."""
    from graphnas.nas.strategies import PredictorSearch

    saved = PredictorSearch.warm_steps
    PredictorSearch.warm_steps = saved if MODES[mode] == "default" else MODES[mode]
    try:
        yield
    finally:
        PredictorSearch.warm_steps = saved


def timed_search(mode: str) -> tuple[float, float]:
    """(wall seconds, seconds in MLPEnsemble.fit) of the 30-query tabular search."""
    import optuna

    from graphnas.nas import Search, SearchConfig
    from graphnas.nas.strategies import MLPEnsemble

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    spent = [0.0]
    fit = MLPEnsemble.fit.__func__

    def counted(cls, *args, **kwargs):
        t = time.perf_counter()
        try:
            return fit(cls, *args, **kwargs)
        finally:
            spent[0] += time.perf_counter() - t

    with tempfile.TemporaryDirectory() as tmp, refit_mode(mode):
        MLPEnsemble.fit = classmethod(counted)
        try:
            config = SearchConfig(space="nas_bench_graph", evaluator="nas-bench-graph", dataset="citeseer",
                                  objectives="metric,latency", trials=30, run_dir=str(Path(tmp) / "nbg"))
            start = time.perf_counter()
            Search(config).run()
            return time.perf_counter() - start, spent[0]
        finally:
            MLPEnsemble.fit = classmethod(fit)


def quality_job(job: tuple[str, str, int, bool, object]) -> dict:
    import search_quality

    mode, dataset, seed, multi, steps = job
    MODES[mode] = steps  # spawned workers start from the module's defaults
    with refit_mode(mode):
        result = search_quality.run_one((dataset, search_quality.DEFAULT, seed, multi))
    return {**result, "strategy": mode}


def paired(frame: pd.DataFrame, value: str) -> tuple[float, float, float, float]:
    """fresh mean, warm mean, mean of (warm - fresh) over seeds, its standard error."""
    wide = frame.pivot_table(index="seed", columns="strategy", values=value)
    diff = wide["warm"] - wide["fresh"]
    se = float(diff.std(ddof=1) / np.sqrt(len(diff))) if len(diff) > 1 else float("nan")
    return float(wide["fresh"].mean()), float(wide["warm"].mean()), float(diff.mean()), se


def main() -> None:
    import torch

    import search_quality

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--seeds", type=int, default=20)
    p.add_argument("--datasets", default="cora,citeseer,pubmed")
    p.add_argument("--processes", type=int, default=1)
    p.add_argument("--warm-steps", type=int, default=None, help="the warm mode's steps [default: the class's]")
    opts = p.parse_args()
    if opts.warm_steps:
        MODES["warm"] = opts.warm_steps
    torch.set_num_threads(1)

    if opts.repeats:
        timed_search("warm")  # imports, table load and knowledge files warm for both
        walls: dict[str, list[tuple[float, float]]] = {m: [] for m in MODES}
        for _ in range(opts.repeats):
            for mode in MODES:
                walls[mode].append(timed_search(mode))
        med = {m: statistics.median(w for w, _ in walls[m]) for m in MODES}
        fit = {m: statistics.median(f for _, f in walls[m]) for m in MODES}
        print(f"30-query tabular search (citeseer, metric + latency), median of {opts.repeats}, alternating:")
        for m in MODES:
            print(f"  {m}: {med[m]:.2f} s, of which MLPEnsemble.fit {fit[m]:.2f} s")
        print(f"  warm / fresh: wall {med['warm'] / med['fresh']:.2f}x, fit {fit['warm'] / fit['fresh']:.2f}x\n")

    if not opts.seeds:
        return
    datasets = opts.datasets.split(",")
    jobs = [(m, d, s, multi, MODES[m]) for d in datasets for s in range(opts.seeds) for multi in (False, True)
            for m in MODES]
    start = time.perf_counter()
    with multiprocessing.get_context("spawn").Pool(opts.processes) as pool:
        results = pool.map(quality_job, jobs, chunksize=2)
    for r, (_, _, seed, _, _) in zip(results, jobs):
        r["seed"] = seed
    single, multi = search_quality.summarise(results, datasets)
    single["seed"] = [r["seed"] for r in results if not r["multi"] for _ in search_quality.BUDGETS]
    multi["seed"] = [r["seed"] for r in results if r["multi"] for _ in search_quality.HV_BUDGETS]
    print(f"warm refits: {MODES['warm'] if MODES['warm'] != 'default' else 'the class default'} steps")
    print(f"{search_quality.DEFAULT} on NAS-Bench-Graph, {opts.seeds} seeds, {len(jobs)} searches in "
          f"{time.perf_counter() - start:.0f} s; warm - fresh is paired by seed (± one standard error)")
    print("| dataset | measure | fresh | warm | warm - fresh |\n|---|---|---:|---:|---:|")
    for d in datasets:
        for budget in (30, 100, 200):
            rows = single[(single["dataset"] == d) & (single["budget"] == budget)]
            f, w, diff, se = paired(rows, "regret")
            print(f"| {d} | regret @{budget} | {f:.2f} | {w:.2f} | {diff:+.2f} ± {se:.2f} |")
        for budget in search_quality.HV_BUDGETS:
            rows = multi[(multi["dataset"] == d) & (multi["budget"] == budget)]
            f, w, diff, se = paired(rows, "hv_ratio")
            print(f"| {d} | HV ratio @{budget} | {f:.3f} | {w:.3f} | {diff:+.3f} ± {se:.3f} |")


if __name__ == "__main__":
    main()
