"""A search killed with SIGKILL mid-trial resumes from its storage with every finished
trial intact."""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import optuna
import pytest

pytestmark = pytest.mark.slow  # subprocesses, clusters or servers: seconds to a minute each

REPO = Path(__file__).resolve().parents[2]


def completed(run_dir: Path) -> int:
    """COMPLETE trials so far, read through a read-only connection: optuna.load_study would
    create the schema if the search had not yet, racing the search's own create_study."""
    db = run_dir / "study.db"
    if not db.is_file():
        return 0
    try:
        with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)) as con:
            return con.execute("SELECT COUNT(*) FROM trials WHERE state = 'COMPLETE'").fetchone()[0]
    except sqlite3.Error:  # the tables are not written yet
        return 0


def kill_group(proc: subprocess.Popen) -> None:
    if proc.poll() is None:  # it may have finished on its own: nothing to kill
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def test_kill_minus_9_then_resume(tmp_path, cache_dir):
    run_dir = tmp_path / "run"
    args = [sys.executable, "cli.py", "search", "--space", "tiny", "--trials", "5", "--epochs", "30", "--patience", "30",
            "--pruner", "none", "--strategy", "random", "--run-dir", str(run_dir), "--cache-dir", str(cache_dir),
            "--quiet"]
    proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + 120
    while completed(run_dir) < 2 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    kill_group(proc)  # no chance to clean up
    study = optuna.load_study(study_name="run", storage=f"sqlite:///{run_dir / 'study.db'}")
    before = {t.number: t.values for t in study.trials if t.state.name == "COMPLETE"}
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
    # no duplicate: an interrupted trial is run again at most once, as its retry (not at all
    # when the kill fell inside its proposal: see the last test)
    retries = [t.system_attrs["failed_trial"] for t in study.trials if "failed_trial" in t.system_attrs]
    assert len(retries) == len(set(retries)) and set(retries) <= {t.number for t in interrupted}
    assert len(interrupted) - len(retries) <= 1
    assert len({t.number for t in study.trials if t.state.name == "COMPLETE"}) == 5


def _search(run_dir: Path, cache_dir: Path, *extra: str) -> list[str]:
    return [sys.executable, "cli.py", "search", "--space", "tiny", "--trials", "5", "--epochs", "30", "--patience", "30",
            "--pruner", "none", "--strategy", "tpe", "--seed", "3", "--run-dir", str(run_dir), "--cache-dir", str(cache_dir),
            "--quiet",
            *extra]


def test_a_resumed_seeded_search_proposes_what_the_uninterrupted_one_would_have(tmp_path, cache_dir):
    straight = tmp_path / "straight"
    subprocess.run(_search(straight, cache_dir), cwd=REPO, check=True, capture_output=True, timeout=300)
    run_dir = tmp_path / "killed"
    proc = subprocess.Popen(_search(run_dir, cache_dir), cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 120
    while completed(run_dir) < 2 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
    kill_group(proc)
    out = subprocess.run([sys.executable, "cli.py", "search", "--resume", "--run-dir", str(run_dir), "--cache-dir",
                          str(cache_dir), "--quiet"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]

    def archs(d: Path) -> list[str]:
        study = optuna.load_study(study_name=d.name, storage=f"sqlite:///{d / 'study.db'}")
        return [t.user_attrs["arch_id"] for t in study.trials if t.state.name == "COMPLETE"]

    # the interrupted trial is retried with its parameters (RetryHeartbeatStaleTrialCallback) and
    # the sampler continues from its pickled state: the same five architectures, in order
    assert archs(run_dir) == archs(straight)
    study = optuna.load_study(study_name="killed", storage=f"sqlite:///{run_dir / 'study.db'}")
    retried = [t for t in study.trials if "failed_trial" in t.system_attrs]
    assert len(retried) <= 1 and all(t.state.name == "COMPLETE" for t in retried)


def _children(pid: int) -> list[tuple[int, str]]:
    """(pid, command line) of the processes whose parent is ``pid`` (Linux /proc)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                cmd = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                out.append((int(stat.parent.name), cmd))
        except (OSError, IndexError, ValueError):
            continue
    return out


def test_a_worker_killed_mid_trial_fails_only_its_trial(tmp_path, cache_dir):
    run_dir = tmp_path / "workers"
    args = [sys.executable, "cli.py", "search", "--space", "tiny", "--trials", "6", "--epochs", "40", "--patience", "40", "--workers", "2",
            "--pruner", "none", "--strategy", "random", "--run-dir", str(run_dir), "--cache-dir", str(cache_dir),
            "--quiet"]
    log = tmp_path / "stderr.log"  # a file, not a pipe that nobody reads while we poll
    proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.DEVNULL, stderr=log.open("w"))
    journal = run_dir / "journal.log"

    def running() -> int:
        if not journal.is_file():
            return 0
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend
        try:
            study = optuna.load_study(study_name="workers", storage=JournalStorage(JournalFileBackend(str(journal))))
        except KeyError:  # the journal exists, the study is not written yet
            return 0
        return sum(t.state.name == "RUNNING" for t in study.trials)

    # Kill a worker only while both are frozen inside a trial: between polling and killing, a
    # running worker could finish its trial, and its death would then leave nothing to fail.
    deadline, frozen = time.monotonic() + 120, False
    while not frozen and time.monotonic() < deadline:
        workers = [pid for pid, cmd in _children(proc.pid) if "multiprocessing" in cmd and "resource_tracker" not in cmd]
        if len(workers) == 2 and running() == 2:
            for pid in workers:
                os.kill(pid, signal.SIGSTOP)
            frozen = running() == 2  # a worker has at most one trial RUNNING: each holds one
            if not frozen:
                for pid in workers:
                    os.kill(pid, signal.SIGCONT)
        time.sleep(0.2)
    assert frozen
    os.kill(workers[0], signal.SIGKILL)
    os.kill(workers[1], signal.SIGCONT)
    proc.wait(timeout=300)
    assert proc.returncode == 0, log.read_text()[-2000:]
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend
    study = optuna.load_study(study_name="workers", storage=JournalStorage(JournalFileBackend(str(journal))))
    states = [t.state.name for t in study.trials]
    assert states.count("COMPLETE") == 6  # the search finished its budget
    failed = [t for t in study.trials if t.state.name == "FAIL"]
    assert len(failed) == 1 and "error" not in failed[0].user_attrs  # the killed worker's trial
    assert any(t.system_attrs.get("failed_trial") == failed[0].number for t in study.trials)  # retried once


class _Killed(BaseException):
    """Stands for SIGKILL: not an Exception, so no handler records the trial as failed."""


def test_a_search_killed_while_drawing_a_proposal_resumes_as_if_uninterrupted(tmp_path, cache_dir, monkeypatch):
    # The subprocess tests above kill between trials or mid-training; this one kills inside
    # trial 2's proposal, after its first parameter is stored and before the sampler is saved.
    from graphnas.evaluators import TrainConfig
    from graphnas.nas import Search, SearchConfig

    def config(name: str) -> SearchConfig:
        return SearchConfig(space="tiny", run_dir=str(tmp_path / name), cache_dir=str(cache_dir), trials=4, strategy="tpe",
                            seed=3, train=TrainConfig(epochs=10, patience=10, latency_repeats=1))

    def archs(study: optuna.Study) -> list[str]:
        return [t.user_attrs["arch_id"] for t in study.trials if t.state.name == "COMPLETE"]

    straight = archs(Search(config("straight")).run())
    suggest, drawn = optuna.trial.Trial._suggest, []

    def killed_mid_proposal(trial, name, distribution):
        if trial.number == 2:
            drawn.append(name)
            if len(drawn) == 2:
                raise _Killed
        return suggest(trial, name, distribution)

    monkeypatch.setattr(optuna.trial.Trial, "_suggest", killed_mid_proposal)
    try:
        Search(config("killed")).run()
    except _Killed:
        pass
    monkeypatch.setattr(optuna.trial.Trial, "_suggest", suggest)
    assert len(drawn) == 2
    resumed = Search(config("killed"), resume=True).run()
    assert archs(resumed) == straight


def test_a_kill_between_a_trials_end_and_the_next_proposal_loses_none_of_its_figures(tmp_path, cache_dir,
                                                                                      monkeypatch):
    """Trial 0 is told, then the process dies before trial 1 is asked: every figure of trial 0
    is in the study (one packed write, made before the trial is told), and the resume keeps
    it as it was and runs the rest of the budget."""
    from dataclasses import fields

    from graphnas.evaluators import TrainConfig
    from graphnas.evaluators.result import TrialResult
    from graphnas.nas import Search, SearchConfig
    from graphnas.nas.runner import TrialRunner

    config = SearchConfig(space="tiny", run_dir=str(tmp_path / "r"), cache_dir=str(cache_dir), trials=3,
                          strategy="random", train=TrainConfig(epochs=5, patience=5, latency_repeats=1))
    reserve, asked = TrialRunner.reserve_trial, []

    def killed_before_the_second_proposal(self, study):
        asked.append(1)
        if len(asked) == 2:
            raise _Killed
        return reserve(self, study)

    monkeypatch.setattr(TrialRunner, "reserve_trial", killed_before_the_second_proposal)
    with pytest.raises(_Killed):
        Search(config).run()
    monkeypatch.setattr(TrialRunner, "reserve_trial", reserve)
    study = optuna.load_study(study_name="r", storage=f"sqlite:///{tmp_path / 'r' / 'study.db'}")
    (first,) = study.trials
    assert first.state.name == "COMPLETE"
    figures = TrialResult.unpack(first.user_attrs)
    assert all(f.name in figures for f in fields(TrialResult))  # every figure, arch_json included
    result = TrialResult.from_attrs(first.user_attrs)
    assert 0 <= result.val_metric <= 1 and result.flops > 0 and result.epochs == 5
    resumed = Search(config.model_copy(), resume=True).run()
    assert [t.state.name for t in resumed.trials] == ["COMPLETE"] * 3
    assert TrialResult.from_attrs(resumed.trials[0].user_attrs) == result  # kept as it was
