"""Trials per minute with 1 and 2 local workers and with Ray (2 trials in flight), on a
space of fixed cost (issue 18): a 2-layer GCN on ``synthetic``, 150 epochs without early
stopping, only the learning rate searched, so every trial does the same work.

Each configuration is one ``graphnas search`` process, as a user runs it (start-up, worker
processes, the final outputs included); trials per minute = trials / wall time. Measured
in the same run:

* ``1 worker``: the baseline;
* ``2 workers``: the default, each trial with cores / 2 torch threads;
* ``2 workers, every core each``: ``--threads`` set to all the cores, what ``--workers 2``
  did before threads were shared (each worker's torch took every core);
* ``ray, 2 in flight``: ``--backend ray --workers 2 --cpus-per-trial 1``.

    python benchmarks/parallel_throughput.py [--trials 12] [--epochs 150] [--skip-ray]
                                                [--skip-every-core]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SPACE = """name: fixed_cost
description: A 2-layer GCN of fixed cost; only the learning rate varies.
global:
  hidden_dim: 64
  num_layers: 2
  dropout: 0.5
  lr: {low: 1.0e-3, high: 3.0e-2, log: true}
  weight_decay: 5.0e-4
  encoding: none
  residual: false
layers:
  mpnn: gcn
  attention: none
  norm: none
  ffn: false
"""


def run(name: str, extra: list[str], root: Path, trials: int, epochs: int) -> tuple[float, float]:
    """Wall seconds of one search, and the seconds from its first trial's start to its last
    trial's end (the steady state, without process start-up and the final outputs)."""
    run_dir = root / name.replace(" ", "_").replace(",", "")
    space = root / "fixed_cost.yaml"
    space.write_text(SPACE)
    args = [sys.executable, str(REPO / "cli.py"), "search", "--space", str(space), "--dataset", "synthetic",
            "--strategy", "random", "--objectives", "metric", "--trials", str(trials), "--epochs", str(epochs),
            "--patience", str(epochs), "--reference", "none", "--confirm", "0", "--knowledge", "none", "--quiet",
            "--run-dir", str(run_dir), "--cache-dir", str(root / "cache"),
            *extra]
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    start = time.perf_counter()
    subprocess.run(args, check=True, env=env, cwd=REPO, capture_output=True, timeout=3600)
    wall = time.perf_counter() - start
    from graphnas.results.store import RunStore

    _, study = RunStore.open(run_dir)
    done = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert len(done) == trials, f"{name}: {len(done)} of {trials} trials completed"
    span = (max(t.datetime_complete for t in done) - min(t.datetime_start for t in done)).total_seconds()
    return wall, span


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--epochs", type=int, default=150)
    parser.add_argument("--skip-ray", action="store_true")
    parser.add_argument("--skip-every-core", action="store_true",
                        help="leave out '2 workers, every core each' (5-7x slower than one worker: minutes at 48 trials)")
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    configs = {"1 worker": [], "2 workers": ["--workers", "2"]}
    if not args.skip_every_core:
        configs["2 workers, every core each"] = ["--workers", "2", "--threads", str(cores)]
    if not args.skip_ray:
        configs["ray, 2 in flight"] = ["--backend", "ray", "--workers", "2", "--cpus-per-trial", "1"]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        run("warm-up", [], root, 1, 5)  # the dataset cache and the OS file cache
        walls = {name: run(name, extra, root, args.trials, args.epochs) for name, extra in configs.items()}
    base, base_span = walls["1 worker"]
    print(f"{args.trials} trials of a fixed-cost 2-layer GCN on synthetic, {args.epochs} epochs, {cores} cores; "
          "trials/min over the wall time (start-up included) and over the trials' span (first start to last end)")
    print(f"{'configuration':<28} {'wall s':>7} {'trials/min':>10} {'speedup':>8} {'span s':>7} {'trials/min':>10} "
          f"{'speedup':>8}")
    for name, (wall, span) in walls.items():
        print(f"{name:<28} {wall:7.1f} {60 * args.trials / wall:10.1f} {base / wall:7.2f}x {span:7.1f} "
              f"{60 * args.trials / span:10.1f} {base_span / span:7.2f}x")


if __name__ == "__main__":
    main()
