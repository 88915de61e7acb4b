"""A run directory written before the packages moved under ``graphnas`` (issue 44): it
reports, exports and resumes, its signed sampler snapshot read at the classes' new paths."""
from __future__ import annotations

import shutil
from pathlib import Path

import optuna
import pandas as pd
import pytest
from typer.testing import CliRunner

from graphnas.cli import app
from graphnas.results import signing
from graphnas.search_spaces import Architecture

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "run_before_graphnas_namespace"
runner = CliRunner()


@pytest.fixture
def former_run(tmp_path, monkeypatch) -> Path:
    run = tmp_path / "run"
    shutil.copytree(FIXTURE / "run", run)
    cache = tmp_path / "cache"
    cache.mkdir()
    shutil.copy(FIXTURE / "snapshot.key", cache / signing.KEY_FILE)
    (cache / signing.KEY_FILE).chmod(0o600)
    monkeypatch.setenv("GRAPHNAS_CACHE", str(cache))  # the key the fixture's snapshot was signed with
    return run


def test_its_sampler_snapshot_loads_at_the_new_paths(former_run):
    blob = (former_run / "sampler.pkl").read_bytes()
    payload = signing.verified_payload(blob, "sampler.pkl")
    assert b"nas.strategies" in payload and b"graphnas." not in payload  # written with the former names
    snapshot = signing.loads(blob, "sampler.pkl")
    assert type(snapshot).__module__ == "graphnas.results.store"
    assert type(snapshot.sampler).__module__.startswith("graphnas.nas.")


def test_it_reports_and_exports(former_run, tmp_path):
    report = runner.invoke(app, ["report", str(former_run)])
    assert report.exit_code == 0, report.output
    assert "3" in report.output
    out = tmp_path / "best.json"
    export = runner.invoke(app, ["export", str(former_run), "--best", "-o", str(out)])
    assert export.exit_code == 0, export.output
    best = pd.read_csv(FIXTURE / "run" / "trials.csv").sort_values("val_metric").iloc[-1]
    assert Architecture.load(out).arch_id == best["arch_id"]


@pytest.mark.slow  # a trial trained
def test_it_resumes_with_every_finished_trial_intact(former_run):
    before = pd.read_csv(FIXTURE / "run" / "trials.csv")
    result = runner.invoke(app, ["search", "--resume", "--run-dir", str(former_run), "--trials", "4", "--quiet"])
    assert result.exit_code == 0, result.output
    study = optuna.load_study(study_name=None, storage=f"sqlite:///{former_run / 'study.db'}")
    assert len(study.trials) == 4
    after = pd.read_csv(former_run / "trials.csv")
    assert list(after["arch_id"][:3]) == list(before["arch_id"])
    assert list(after["val_metric"][:3]) == pytest.approx(list(before["val_metric"]))
