"""A run directory held by one search at a time, and filesystem failures as one line:
two searches started at once, a directory that cannot be written (fresh, resumed and
reported on), and a sampler snapshot that cannot be saved (an engine error, not a
candidate's)."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from typer.testing import CliRunner

from graphnas.cli import app
from graphnas.results.store import RunStore

REPO = Path(__file__).resolve().parents[2]
runner = CliRunner()


def _search(run_dir: Path, cache_dir: Path, *extra: str) -> list[str]:
    return ["search", "--space", "tiny", "--trials", "2", "--epochs", "3", "--strategy", "random", "--quiet",
            "--run-dir", str(run_dir), "--cache-dir", str(cache_dir), *extra]


def _one_error_line(output: str) -> str:
    lines = [line for line in output.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), output
    return lines[0]


@pytest.fixture
def immutable():
    """Make a directory unwritable even for root (``chattr +i``; root ignores mode bits)."""
    made: list[Path] = []

    def make(path: Path) -> Path:
        path.mkdir(parents=True, exist_ok=True)
        if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode:
            pytest.skip("chattr +i is not available here (needs root and ext4/xfs)")
        made.append(path)
        return path

    yield make
    for path in made:
        subprocess.run(["chattr", "-i", str(path)], capture_output=True)


def test_a_search_refuses_a_run_directory_another_search_holds(tmp_path, cache_dir):
    held = RunStore(tmp_path / "r").claim()  # what a running search holds
    result = runner.invoke(app, _search(tmp_path / "r", cache_dir))
    assert result.exit_code == 2
    assert "in use by another graphnas search" in _one_error_line(result.output)
    assert not (tmp_path / "r" / "study.db").exists()
    held.release()
    assert runner.invoke(app, _search(tmp_path / "r", cache_dir)).exit_code == 0


@pytest.mark.slow
def test_two_searches_started_at_once_end_in_one_run_and_one_line(tmp_path, cache_dir):
    args = [sys.executable, "cli.py", *_search(tmp_path / "r", cache_dir)]
    procs = [subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, 2], outs
    loser = outs[[p.returncode for p in procs].index(2)]
    line = _one_error_line(loser)
    assert "in use by another graphnas search" in line or "already holds a run" in line
    study = optuna.load_study(study_name="r", storage=f"sqlite:///{tmp_path / 'r' / 'study.db'}")
    assert sum(t.state.name == "COMPLETE" for t in study.trials) == 2


def test_an_unwritable_run_directory_is_one_line_before_any_trial(tmp_path, cache_dir, immutable):
    fresh = immutable(tmp_path / "fresh")
    result = runner.invoke(app, _search(fresh, cache_dir))
    assert result.exit_code == 2
    assert f"{fresh}: the run directory cannot be written" in _one_error_line(result.output)

    run_dir = tmp_path / "done"
    assert runner.invoke(app, _search(run_dir, cache_dir)).exit_code == 0
    immutable(run_dir)
    result = runner.invoke(app, ["search", "--resume", "--run-dir", str(run_dir), "--trials", "3", "--quiet"])
    assert result.exit_code == 2
    assert f"{run_dir}: the run directory cannot be written" in _one_error_line(result.output)
    result = runner.invoke(app, ["report", str(run_dir)])
    assert result.exit_code == 2
    line = _one_error_line(result.output)  # the database is opened anew in a new process, reused in this one
    assert f"{run_dir}: cannot open the study" in line or f"{run_dir / 'report.html'}: cannot write the report" in line


def test_a_sampler_snapshot_that_cannot_be_saved_stops_the_search_and_fails_no_candidate(tmp_path, cache_dir):
    run_dir = tmp_path / "r"
    (run_dir / (RunStore.SAMPLER + ".tmp")).mkdir(parents=True)  # the snapshot's write then fails
    result = runner.invoke(app, _search(run_dir, cache_dir))
    assert result.exit_code == 1
    assert "cannot write the sampler snapshot" in _one_error_line(result.output)
    study = optuna.load_study(study_name="r", storage=f"sqlite:///{run_dir / 'study.db'}")
    assert [t.state.name for t in study.trials] == ["RUNNING"]  # left for --resume: not a candidate's failure
    (run_dir / (RunStore.SAMPLER + ".tmp")).rmdir()
    result = runner.invoke(app, ["search", "--resume", "--run-dir", str(run_dir), "--quiet"])
    assert result.exit_code == 0, result.output
    study = optuna.load_study(study_name="r", storage=f"sqlite:///{run_dir / 'study.db'}")
    assert sum(t.state.name == "COMPLETE" for t in study.trials) == 2
    assert not any("error" in t.user_attrs for t in study.trials)
