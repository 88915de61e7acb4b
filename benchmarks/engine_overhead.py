"""The engine's own cost per trial (issue 18): a search whose evaluator is NAS-Bench-Graph's
table (a lookup of about a millisecond), so nearly all of a trial's time is the engine:
proposal, storage, the sampler snapshot and the loop.

For each storage, one search of ``--trials`` trials through ``nas.Search`` (the CLI's path,
run directory and all, without a progress observer as with ``--quiet``); printed: the
median and 90th percentile of the time between one trial's end and the next one's (from
the stored completion times), and the whole
run's wall time (start-up and the final outputs included). Storages, measured in the same run:

* ``sqlite``: the default, SQLite in WAL mode with ``synchronous=NORMAL``;
* ``sqlite-fsync``: Optuna's plain SQLite URL (a commit waits for an fsync), the baseline;
* ``journal``: the journal file of several local workers;
* a database URL (``postgresql://user@host/db``): the storage of several machines.

    python benchmarks/engine_overhead.py [--trials 1000] [--strategy tpe] [--storages sqlite,sqlite-fsync,journal]
"""
from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import optuna

from graphnas.nas import Search, SearchConfig


def run(storage: str, trials: int, strategy: str, root: Path) -> tuple[list[float], float]:
    """Per-trial intervals (s) and the wall time of one tabular search on ``storage``."""
    import graphnas.results.store as store

    shared = "://" in storage  # a database URL (postgresql://...): the storage of several machines
    run_dir = root / ("shared" if shared else storage)
    url = storage if shared else {"journal": f"{store.JOURNAL}{run_dir.resolve()}/journal.log"}.get(storage)
    plain = store._sqlite_storage
    if storage == "sqlite-fsync":  # the baseline: Optuna's own SQLite, no WAL
        store._sqlite_storage = lambda u: u
    try:
        config = SearchConfig(space="nas_bench_graph", evaluator="nas-bench-graph", dataset="cora",
                              objectives="metric", strategy=strategy, trials=trials, run_dir=str(run_dir),
                              storage=url)
        start = time.perf_counter()
        study = Search(config).run()  # no observer: the --quiet path
        wall = time.perf_counter() - start
    finally:
        store._sqlite_storage = plain
    ends = sorted(t.datetime_complete.timestamp() for t in study.get_trials(deepcopy=False) if t.datetime_complete)
    return list(np.diff(ends)), wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--strategy", default="tpe")
    parser.add_argument("--storages", default="sqlite,sqlite-fsync,journal")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.simplefilter("ignore")
    windows = [w for w in (100, 1000, 10000) if w <= args.trials]
    print(f"{args.trials} tabular trials ({args.strategy}, NAS-Bench-Graph cora), ms per trial, median (p90) "
          "over the 100 trials up to each count:")
    print("| storage | " + " | ".join(f"at {w:,}" for w in windows) + " | wall (s) |")
    print("|---|" + "---:|" * (len(windows) + 1))
    with tempfile.TemporaryDirectory() as root:
        for storage in args.storages.split(","):
            gaps, wall = run(storage, args.trials, args.strategy, Path(root))
            cells = []
            for w in windows:
                window = 1000 * np.array(gaps[max(0, w - 101):w - 1])
                cells.append(f"{np.median(window):.1f} ({np.percentile(window, 90):.1f})")
            name = storage.split("://")[0] if "://" in storage else storage
            print(f"| {name} | " + " | ".join(cells) + f" | {wall:.1f} |", flush=True)


if __name__ == "__main__":
    main()
