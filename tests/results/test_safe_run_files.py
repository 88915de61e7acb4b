"""Run directories and exports someone sent (issue 43): nothing read from them runs code,
and every damaged or wrong file is one line, exit 2, before any work, with finished trials
intact."""
from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path

import optuna
import pytest
import torch
from typer.testing import CliRunner

from graphnas.cli import app
from graphnas.results import signing
from graphnas.results.export import ExportError, load_model
from graphnas.results.store import RunDirectoryError, RunStore

runner = CliRunner()


class Payload:
    """What a crafted pickle does when it is loaded: create a file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


def _search(run_dir: Path, *extra: str) -> list[str]:
    return ["search", "--space", "tiny", "--trials", "2", "--epochs", "2", "--strategy", "random", "--quiet",
            "--run-dir", str(run_dir), *extra]


def _one_error_line(output: str) -> str:
    lines = [line for line in output.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), output
    return lines[0]


def _trials(run_dir: Path) -> list[str]:
    study = optuna.load_study(study_name=run_dir.name, storage=f"sqlite:///{run_dir / 'study.db'}")
    return [t.state.name for t in study.trials]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("runs") / "done"
    result = runner.invoke(app, _search(run_dir))
    assert result.exit_code == 0, result.output
    return run_dir


@pytest.fixture
def run_copy(finished_run, tmp_path) -> Path:
    """A copy of the finished run under its own name (the study keeps the original's)."""
    copy = tmp_path / "done"
    shutil.copytree(finished_run, copy, ignore=shutil.ignore_patterns("search.lock"))
    return copy


def _resume(run_dir: Path, *extra: str):
    return runner.invoke(app, ["search", "--resume", "--run-dir", str(run_dir), "--trials", "3", "--quiet", *extra])


# --- 1. the sampler snapshot -------------------------------------------------------------

def test_a_crafted_sampler_snapshot_is_never_unpickled(run_copy, tmp_path):
    marker = tmp_path / "pwned"
    (run_copy / RunStore.SAMPLER).write_bytes(pickle.dumps(Payload(marker)))
    result = _resume(run_copy)
    assert result.exit_code == 2
    assert "sampler.pkl: not a snapshot signed by graphnas" in _one_error_line(result.output)
    assert not marker.exists()
    assert _trials(run_copy) == ["COMPLETE", "COMPLETE"]


def test_a_snapshot_signed_with_another_key_is_refused_and_deleting_it_resumes(run_copy, tmp_path):
    marker = tmp_path / "pwned"
    forged = signing.dumps(Payload(marker), cache_dir=tmp_path / "someone-else")  # their key, not ours
    (run_copy / RunStore.SAMPLER).write_bytes(forged)
    result = _resume(run_copy)
    assert result.exit_code == 2
    line = _one_error_line(result.output)
    assert "signed by another user's or machine's key" in line and "delete" in line
    assert not marker.exists()
    (run_copy / RunStore.SAMPLER).unlink()  # what the line says to do
    result = _resume(run_copy)
    assert result.exit_code == 0, result.output
    assert _trials(run_copy) == ["COMPLETE"] * 3


def test_a_truncated_snapshot_is_one_line(run_copy):
    path = run_copy / RunStore.SAMPLER
    path.write_bytes(path.read_bytes()[:200])
    result = _resume(run_copy)
    assert result.exit_code == 2
    assert "sampler.pkl: damaged" in _one_error_line(result.output)


def test_the_snapshot_is_signed_and_round_trips(tmp_path):
    blob = signing.dumps({"state": [1, 2]}, cache_dir=tmp_path)
    assert blob.startswith(signing.MAGIC)
    assert signing.loads(blob, "x", cache_dir=tmp_path) == {"state": [1, 2]}
    assert oct(signing.key_path(tmp_path).stat().st_mode & 0o777) == "0o600"
    with pytest.raises(signing.UntrustedFile, match="x: damaged"):
        signing.loads(blob[:-1] + b"\x00", "x", cache_dir=tmp_path)


# --- 3. weights someone sent ---------------------------------------------------------------

def test_load_model_refuses_weights_that_would_run_code(finished_run, tmp_path):
    export = tmp_path / "arch.json"
    assert runner.invoke(app, ["export", str(finished_run), "-o", str(export)]).exit_code == 0
    marker = tmp_path / "pwned"
    weights = tmp_path / "seed0.pt"
    torch.save({"w": Payload(marker)}, weights)
    with pytest.raises(ExportError, match="seed0.pt: not a state dict of tensors"):
        load_model(export, weights=weights)
    assert not marker.exists()
    model = load_model(export)
    torch.save(model.state_dict(), weights)  # real weights still load
    assert load_model(export, weights=weights) is not None


# --- 6. queued trials survive a stop of the engine ---------------------------------------

def test_a_queued_reference_trial_survives_a_stop_of_the_engine(tmp_path, monkeypatch):
    run_dir = tmp_path / "r"
    save = RunStore.save_sampler

    def fail_on_second(self, sampler, trial):
        if trial == 1:
            raise RunDirectoryError("cannot write the sampler snapshot (test)")
        return save(self, sampler, trial)

    monkeypatch.setattr(RunStore, "save_sampler", fail_on_second)
    args = ["search", "--space", "node", "--reference", "zoo:gcn,zoo:gat", "--trials", "3", "--epochs", "2",
            "--confirm", "0", "--strategy", "random", "--quiet", "--run-dir", str(run_dir)]
    assert runner.invoke(app, args).exit_code == 1
    monkeypatch.setattr(RunStore, "save_sampler", save)
    result = _resume(run_dir)
    assert result.exit_code == 0, result.output
    study = optuna.load_study(study_name="r", storage=f"sqlite:///{run_dir / 'study.db'}")
    done = [t.user_attrs.get("reference") for t in study.trials if t.state.name == "COMPLETE"]
    assert sorted(r for r in done if r) == ["zoo:gat", "zoo:gcn"]  # zoo:gat, stopped mid-start, ran after all


# --- 9. a failed start blocks nothing ----------------------------------------------------

def test_a_start_that_fails_after_writing_its_config_leaves_nothing_that_blocks(tmp_path, monkeypatch):
    from graphnas.nas.search import Search

    def broken(self, *args):
        raise ValueError("the knowledge store went away (test)")

    run_dir = tmp_path / "r"
    monkeypatch.setattr(Search, "_create", broken)
    result = runner.invoke(app, _search(run_dir))
    assert result.exit_code == 2 and "went away" in _one_error_line(result.output)
    assert not (run_dir / "config.yaml").exists()
    monkeypatch.undo()
    result = runner.invoke(app, _search(run_dir))
    assert result.exit_code == 0, result.output


# --- 10. damaged run files ---------------------------------------------------------------

@pytest.mark.parametrize("content, expected", [
    ("garbage: [", "config.yaml: not readable as YAML"),
    ("- a\n- b\n", "config.yaml: expected the run's settings (a mapping with study_name), got list"),
    ("", "config.yaml: expected the run's settings (a mapping with study_name), got NoneType"),
])
def test_a_damaged_config_is_one_line(run_copy, content, expected):
    (run_copy / "config.yaml").write_text(content)
    for args in (["search", "--resume", "--run-dir", str(run_copy), "--quiet"], ["report", str(run_copy)],
                 ["export", str(run_copy), "-o", str(run_copy / "a.json")]):
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        assert expected in _one_error_line(result.output)


def test_a_deleted_study_is_one_line_and_no_empty_one_is_made(run_copy):
    (run_copy / "study.db").unlink()
    result = _resume(run_copy)
    assert result.exit_code == 2
    assert "study.db: the run's study file is missing" in _one_error_line(result.output)
    assert not (run_copy / "study.db").exists()


def test_a_corrupt_study_is_one_line_in_resume_report_and_export(run_copy):
    db = run_copy / "study.db"
    db.write_bytes(db.read_bytes()[:3000])
    result = _resume(run_copy)
    assert result.exit_code == 2 and "study.db: damaged, not an Optuna study" in _one_error_line(result.output)
    for args in (["report", str(run_copy)], ["export", str(run_copy), "-o", str(run_copy / "a.json")]):
        result = runner.invoke(app, args)
        assert result.exit_code == 2
        line = _one_error_line(result.output)
        assert "damaged or not an Optuna study" in line and "must be writable" not in line


def test_garbage_in_a_journal_is_one_line_naming_the_file(tmp_path):
    run_dir = tmp_path / "j"
    journal = tmp_path / "j.log"
    assert runner.invoke(app, _search(run_dir, "--storage", f"journal:///{journal}")).exit_code == 0
    journal.write_text(journal.read_text() + "{not json\n")
    result = _resume(run_dir)
    assert result.exit_code == 2
    assert str(journal) in _one_error_line(result.output)


# --- 11. bad settings --------------------------------------------------------------------

@pytest.mark.parametrize("option", ["--storage", "--knowledge"])
def test_a_url_no_storage_can_open_is_one_line_before_any_work(tmp_path, option):
    result = runner.invoke(app, _search(tmp_path / "r", option, "notaurl://x"))
    assert result.exit_code == 2
    assert f"{option} notaurl://x: not a storage URL" in _one_error_line(result.output)
    assert not (tmp_path / "r").exists()


def test_resume_with_changed_epochs_names_the_one_setting(run_copy):
    result = runner.invoke(app, ["search", "--resume", "--run-dir", str(run_copy), "--epochs", "5", "--quiet"])
    assert result.exit_code == 2
    line = _one_error_line(result.output)
    assert line.endswith("train.epochs: run has 2, now 5") and "patience" not in line


@pytest.mark.parametrize("edit, expected", [
    (lambda r: r["architecture"].update(hidden_dim=0), "hidden_dim: Input should be greater than or equal to 1"),
    (lambda r: r["data_info"].update(colour=1), "data_info: unknown key(s) colour"),
    (lambda r: r["data_info"].pop("num_features"), "data_info: missing key(s) num_features"),
    (lambda r: r["data_info"].update(deg=5), "data_info.deg: Input should be a valid tuple"),
])
def test_an_edited_export_is_one_line(finished_run, tmp_path, edit, expected):
    path = tmp_path / "arch.json"
    assert runner.invoke(app, ["export", str(finished_run), "-o", str(path)]).exit_code == 0
    record = json.loads(path.read_text())
    edit(record)
    path.write_text(json.dumps(record))
    result = runner.invoke(app, ["train", str(path), "--epochs", "1", "--seeds", "1"])
    assert result.exit_code == 2
    assert expected in _one_error_line(result.output)


# --- 13. an exhausted space --------------------------------------------------------------

def test_a_search_stops_when_its_space_is_exhausted(tmp_path):
    space = tmp_path / "two.yaml"
    space.write_text("name: two\nversion: 1\nglobal:\n  hidden_dim: [8, 16]\n  num_layers: 1\n  dropout: 0.0\n"
                     "  lr: 0.01\n  weight_decay: 0.0\nlayers:\n  mpnn: gcn\n  attention: none\n")
    run_dir = tmp_path / "r"
    result = runner.invoke(app, ["search", "--space", str(space), "--trials", "5", "--epochs", "2", "--strategy",
                                 "random", "--quiet", "--run-dir", str(run_dir), "--reference", "none"])
    assert result.exit_code == 0, result.output
    study = optuna.load_study(study_name="r", storage=f"sqlite:///{run_dir / 'study.db'}")
    ids = [t.user_attrs["arch_id"] for t in study.trials]
    assert len(ids) == 2 and len(set(ids)) == 2  # each architecture once, then the search stopped
    assert "space two is exhausted" in result.output
