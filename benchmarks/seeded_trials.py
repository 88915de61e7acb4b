"""Seeded searches before and after a refactor (issue 16): the same commands must give the
same trials, digit for digit.

Runs a fixed set of small seeded ``graphnas search`` commands (each in its own process, one
torch thread, no knowledge store) and writes every trial's state, parameters, objective
values and the figures it recorded to a JSON file. Measurements (latency, durations, memory,
dates) are left out: they are the only numbers that may differ between two runs.

    python benchmarks/seeded_trials.py --out before.json [--data-root ../shared/datasets]
    python benchmarks/seeded_trials.py --out after.json --compare before.json
    python benchmarks/seeded_trials.py --out after.json --compare before.json --no-run  # two recordings

``--compare`` prints, per search, whether every trial is identical, and the first
difference where one is not; it exits 1 when any search differs.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]  # the checkout whose code runs
# name -> the search's options (besides --run-dir, --seed 0, --quiet, --knowledge none)
SEARCHES: dict[str, list[str]] = {
    "tiny-synthetic": ["--space", "tiny", "--dataset", "synthetic", "--trials", "4", "--epochs", "30"],
    "tiny-cora": ["--space", "tiny", "--dataset", "cora", "--trials", "2", "--epochs", "20"],
    "gps-mutag": ["--space", "gps", "--dataset", "mutag", "--trials", "2", "--epochs", "5"],
    "darts-cora": ["--space", "tiny", "--dataset", "cora", "--strategy", "darts", "--darts-epochs", "10",
                   "--epochs", "20"],
    "gdas-mutag": ["--space", "gps", "--dataset", "mutag", "--strategy", "gdas", "--darts-epochs", "4",
                   "--epochs", "5"],
    "nas-bench-graph": ["--space", "nas_bench_graph", "--evaluator", "nas-bench-graph", "--dataset", "cora",
                        "--objectives", "metric", "--trials", "50"],
}
# Figures that are measurements (times, memory, the machine), not computed results.
TIMED = ("latency", "duration", "seconds", "time", "datetime", "node", "memory")


def _untimed(attrs: dict) -> dict:
    out = {}
    for key, value in attrs.items():
        if any(t in key for t in TIMED):
            continue
        out[key] = _untimed(value) if isinstance(value, dict) else value
    return out


def trials_of(run_dir: Path) -> list[dict]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=None, storage=f"sqlite:///{run_dir / 'study.db'}")
    rows = []
    for t in study.get_trials(deepcopy=False):
        rows.append({"number": t.number, "state": t.state.name, "params": t.params, "values": t.values or [],
                     "attrs": _untimed(t.user_attrs)})
    return rows


def run_all(data_root: str, only: list[str]) -> dict[str, list[dict]]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GRAPHNAS_KNOWLEDGE": "none"}
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, options in SEARCHES.items():
            if only and name not in only:
                continue
            run_dir = Path(tmp) / name
            cmd = [sys.executable, "-m", "graphnas", "search", *options, "--seed", "0", "--quiet", "--knowledge", "none",
                   "--run-dir", str(run_dir), "--data-root", data_root, "--cache-dir", str(Path(tmp) / "cache")]
            done = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=ROOT)
            if done.returncode != 0:
                raise SystemExit(f"{name}: exit {done.returncode}\n{done.stderr[-3000:]}")
            results[name] = trials_of(run_dir)
            print(f"{name}: {len(results[name])} trials", flush=True)
    return results


def first_difference(a: list[dict], b: list[dict]) -> str | None:
    if len(a) != len(b):
        return f"{len(a)} trials before, {len(b)} after"
    for x, y in zip(a, b):
        if x != y:
            keys = [k for k in x if x[k] != y.get(k)]
            detail = {k: (x[k], y.get(k)) for k in keys if k != "attrs"}
            if "attrs" in keys:
                detail["attrs"] = {k: (x["attrs"].get(k), y["attrs"].get(k))
                                   for k in set(x["attrs"]) | set(y["attrs"]) if x["attrs"].get(k) != y["attrs"].get(k)}
            return f"trial {x['number']}: {json.dumps(detail, default=str)[:1500]}"
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--compare")
    parser.add_argument("--data-root", default=str(Path(__file__).resolve().parents[2] / "shared" / "datasets"))
    parser.add_argument("--only", default="", help="comma list of search names")
    parser.add_argument("--no-run", action="store_true", help="compare the recorded --out with --compare")
    args = parser.parse_args()
    only = [s for s in args.only.split(",") if s]
    if args.no_run:
        results = json.loads(Path(args.out).read_text())
    else:
        results = run_all(args.data_root, only)
        Path(args.out).write_text(json.dumps(results, indent=1, default=str))
    if not args.compare:
        return

    def untimed(recorded: dict) -> dict:  # a recording may keep figures now counted as measurements
        return {name: [{**t, "attrs": _untimed(t["attrs"])} for t in trials] for name, trials in recorded.items()}
    results = untimed(json.loads(json.dumps(results, default=str)))
    before = untimed(json.loads(Path(args.compare).read_text()))
    differs = False
    for name, trials in results.items():
        diff = first_difference(before.get(name, []), trials)
        differs |= diff is not None
        summary = ", ".join(f"{t['state'][:4]} {t['values'][0]:.4f}" if t["values"] else t["state"] for t in trials[:6])
        print(f"{name:18s} {'identical' if diff is None else 'DIFFERS: ' + diff}  ({len(trials)} trials: {summary}"
              f"{', ...' if len(trials) > 6 else ''})")
    sys.exit(1 if differs else 0)


if __name__ == "__main__":
    main()
