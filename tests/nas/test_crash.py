"""A search killed with SIGKILL mid-trial resumes from its storage with every finished
trial intact."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna

REPO = Path(__file__).resolve().parents[2]


def completed(run_dir: Path) -> list[optuna.trial.FrozenTrial]:
    try:
        study = optuna.load_study(study_name="run", storage=f"sqlite:///{run_dir / 'study.db'}")
    except Exception:  # not created yet
        return []
    return [t for t in study.trials if t.state.name == "COMPLETE"]


def test_kill_minus_9_then_resume(tmp_path, cache_dir):
    run_dir = tmp_path / "run"
    args = [sys.executable, "cli.py", "search", "--trials", "5", "--epochs", "30", "--patience", "30",
            "--strategy", "random", "--run-dir", str(run_dir), "--cache-dir", str(cache_dir), "--quiet"]
    proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + 120
    while len(completed(run_dir)) < 2 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # no chance to clean up
    proc.wait()
    before = {t.number: t.values for t in completed(run_dir)}
    assert len(before) >= 2

    resume = [sys.executable, "cli.py", "search", "--resume", "--run-dir", str(run_dir), "--cache-dir",
              str(cache_dir), "--quiet"]
    out = subprocess.run(resume, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    study = optuna.load_study(study_name="run", storage=f"sqlite:///{run_dir / 'study.db'}")
    after = {t.number: t.values for t in study.trials if t.state.name == "COMPLETE"}
    assert {n: after[n] for n in before} == before  # finished trials intact
    assert len(after) == 5  # the budget counts them, and interrupted trials are run again
    assert not [t for t in study.trials if t.state.name == "RUNNING"]
    interrupted = [t for t in study.trials if t.state.name == "FAIL"]
    assert all("error" not in t.user_attrs for t in interrupted)
