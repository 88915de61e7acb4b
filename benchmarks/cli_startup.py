"""CLI start-up time (issue 15): ``--help``, ``spaces validate``, ``ops --json`` and ``search``
up to its first trial, against ``python -c "import torch"`` measured in the same run.
Target: ``spaces validate`` and ``ops`` within ``import torch`` + 0.5 s.

Each command runs ``--repeats`` times as a fresh process (the OS file cache warm after a
first untimed run); printed: the median seconds and the excess over ``import torch``.
``search`` is timed to its first trial's start, read from the study (its wall time also
trains the trials).

    python benchmarks/cli_startup.py [--repeats 5]
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SPACE = "name: s\nlayers:\n  mpnn: [gcn, gin]\n"


def timed(args: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(args, cwd=REPO, check=True, capture_output=True, timeout=600)
    return time.perf_counter() - start


def to_first_trial(root: Path, k: int) -> float:
    """Seconds from launching ``graphnas search`` to its first trial's start."""
    from graphnas.results.store import RunStore

    run_dir = root / f"search{k}"
    start = time.time()
    subprocess.run([sys.executable, "cli.py", "search", "--trials", "1", "--epochs", "1", "--strategy", "random",
                    "--reference", "none", "--knowledge", "none", "--quiet", "--run-dir", str(run_dir),
                    "--cache-dir", str(root / "cache")], cwd=REPO, check=True, capture_output=True, timeout=600)
    _, study = RunStore.open(run_dir)
    return study.trials[0].datetime_start.timestamp() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        space = root / "space.yaml"
        space.write_text(SPACE)
        commands = {
            'python -c "import torch"': [sys.executable, "-c", "import torch"],
            "graphnas --help": [sys.executable, "cli.py", "--help"],
            "graphnas spaces validate": [sys.executable, "cli.py", "spaces", "validate", str(space)],
            "graphnas ops --json": [sys.executable, "cli.py", "ops", "--json"],
        }
        for cmd in commands.values():  # warm the OS file cache
            timed(cmd)
        medians = {name: statistics.median(timed(cmd) for _ in range(args.repeats)) for name, cmd in commands.items()}
        to_first_trial(root, -1)  # the dataset cache
        medians["graphnas search (to its first trial)"] = statistics.median(
            to_first_trial(root, k) for k in range(args.repeats))
    torch_s = medians['python -c "import torch"']
    print(f"median of {args.repeats} fresh processes; target: validate and ops within import torch + 0.5 s")
    print(f"{'command':<38} {'seconds':>8} {'over torch':>11}")
    for name, seconds in medians.items():
        print(f"{name:<38} {seconds:8.2f} {seconds - torch_s:+10.2f}")


if __name__ == "__main__":
    main()
