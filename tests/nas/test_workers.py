"""Local workers (--workers N) live and die with the search that started them: killed,
terminated or interrupted, it leaves no worker behind, and a resume finishes its budget."""
from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

import optuna
import psutil
import pytest
from typer.testing import CliRunner

pytestmark = pytest.mark.slow  # subprocesses: seconds each

REPO = Path(__file__).resolve().parents[2]
BUDGET = 4


def _search(run_dir: Path, cache_dir: Path) -> list[str]:
    return [sys.executable, "cli.py", "search", "--space", "tiny", "--trials", str(BUDGET), "--epochs", "20",
            "--patience", "20", "--pruner", "none", "--workers", "2", "--strategy", "random", "--run-dir", str(run_dir),
            "--cache-dir", str(cache_dir), "--quiet"]


def _study(run_dir: Path) -> Optional[optuna.Study]:
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    journal = run_dir / "journal.log"
    if not journal.is_file():
        return None
    try:
        return optuna.load_study(study_name=run_dir.name, storage=JournalStorage(JournalFileBackend(str(journal))))
    except KeyError:  # the journal exists, the study is not written yet
        return None


def _workers(driver: subprocess.Popen) -> list[psutil.Process]:
    return [p for p in psutil.Process(driver.pid).children(recursive=True)
            if "--multiprocessing-fork" in p.cmdline()]


def _wait_for(driver: subprocess.Popen, run_dir: Path, moment: str, log: Path) -> list[psutil.Process]:
    """Every process the search started, once ``moment`` comes: ``starting`` (both workers
    exist, still importing) or ``mid-trial`` (a trial done, both workers inside one)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and driver.poll() is None:
        try:
            workers = _workers(driver)
            if len(workers) == 2:
                study = _study(run_dir) if moment == "mid-trial" else None
                states = [t.state.name for t in study.trials] if study is not None else []
                if moment == "starting" or (states.count("COMPLETE") >= 1 and states.count("RUNNING") == 2):
                    return psutil.Process(driver.pid).children(recursive=True)
        except psutil.Error:  # a process ended while it was read
            pass
        time.sleep(0.1)
    raise AssertionError(f"the search never reached {moment} (exit {driver.poll()}): {log.read_text()[-2000:]}")


def _alive(processes: list[psutil.Process], run_dir: Path) -> list[str]:
    """The processes of the run still alive: those it started, and any naming its run directory."""
    def live(p: psutil.Process) -> bool:
        try:
            return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    named = []
    for p in psutil.process_iter(["cmdline"]):
        if str(run_dir) in " ".join(p.info["cmdline"] or []):
            named.append(p)
    return [f"{p.pid} {' '.join(p.cmdline())[:80]}" for p in processes + named if live(p)]


def _gone_within(seconds: float, processes: list[psutil.Process], run_dir: Path) -> None:
    deadline = time.monotonic() + seconds
    while _alive(processes, run_dir) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(processes, run_dir)


@pytest.mark.parametrize("sig,moment", [(signal.SIGKILL, "mid-trial"), (signal.SIGTERM, "mid-trial"),
                                        (signal.SIGKILL, "starting")], ids=["kill-9", "sigterm", "kill-9-starting"])
def test_a_killed_search_leaves_no_worker_and_its_resume_meets_the_budget(tmp_path, cache_dir, sig, moment):
    run_dir = tmp_path / "run"
    log = tmp_path / "stderr.log"  # a file, not a pipe that nobody reads while we poll
    driver = subprocess.Popen(_search(run_dir, cache_dir), cwd=REPO, stdout=subprocess.DEVNULL,
                              stderr=log.open("w"), start_new_session=True)
    try:
        started = _wait_for(driver, run_dir, moment, log)
        os.kill(driver.pid, sig)
        driver.wait(timeout=30)
        # mid-trial, the kernel kills the workers with their driver (PR_SET_PDEATHSIG);
        # starting, a worker finds its driver gone once it has imported torch, before any trial
        _gone_within(5 if moment == "mid-trial" else 60, started, run_dir)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
    study = _study(run_dir)
    if moment == "starting":  # (a worker whose driver died while starting it may print multiprocessing's EOFError)
        assert study is None or {t.state.name for t in study.trials} <= {"WAITING"}  # no worker began a trial
        return
    assert "Traceback" not in log.read_text()
    before = {t.number: t.values for t in study.trials if t.state.name == "COMPLETE"}
    running = {t.number for t in study.trials if t.state.name == "RUNNING"}
    assert before and len(running) == 2  # nothing moved after the kill

    resume = [sys.executable, "cli.py", "search", "--resume", "--run-dir", str(run_dir), "--quiet"]
    out = subprocess.run(resume, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    study = _study(run_dir)
    after = {t.number: t.values for t in study.trials if t.state.name == "COMPLETE"}
    assert {n: after[n] for n in before} == before  # every finished trial intact
    assert len(after) == BUDGET and not [t for t in study.trials if t.state.name == "RUNNING"]
    # the two interrupted trials failed without an error of their own, each retried exactly once
    failed = {t.number for t in study.trials if t.state.name == "FAIL"}
    assert failed == running and not any("error" in t.user_attrs for t in study.trials if t.number in failed)
    retries = [t.system_attrs["failed_trial"] for t in study.trials if "failed_trial" in t.system_attrs]
    assert sorted(retries) == sorted(running)


@pytest.mark.parametrize("moment", ["starting", "mid-trial"])
def test_ctrl_c_to_a_workers_search_prints_one_line_and_exits_130(tmp_path, cache_dir, moment):
    run_dir = tmp_path / "run"
    log = tmp_path / "stderr.log"
    driver = subprocess.Popen(_search(run_dir, cache_dir), cwd=REPO, stdout=subprocess.DEVNULL,
                              stderr=log.open("w"), start_new_session=True)
    try:
        started = _wait_for(driver, run_dir, moment, log)
        os.killpg(driver.pid, signal.SIGINT)  # as a terminal's Ctrl-C: the driver and its workers
        driver.wait(timeout=60)
        _gone_within(5, started, run_dir)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
    err = log.read_text()
    assert driver.returncode == 130, err[-2000:]
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err and len(lines) == 1, err[-3000:]
    assert f"graphnas search --resume --run-dir {run_dir}" in lines[0]


def _hold_worker_lock(run_dir: Path, held) -> None:
    """A worker process, as far as the run directory can tell (the entry point of real
    workers, without their search)."""
    from graphnas.nas.backends import become_worker

    lock = become_worker(run_dir)  # noqa: F841
    held.set()
    time.sleep(120)


def test_a_resume_beside_a_live_worker_is_refused_in_one_line(tmp_path, cache_dir):
    from graphnas.cli import app
    from graphnas.nas.backends import refuse_live_workers

    run_dir = tmp_path / "run"
    runner = CliRunner()
    result = runner.invoke(app, ["search", "--space", "tiny", "--trials", "1", "--epochs", "1", "--strategy", "random",
                                 "--run-dir", str(run_dir), "--cache-dir", str(cache_dir), "--quiet"])
    assert result.exit_code == 0, result.output
    ctx = multiprocessing.get_context("spawn")
    held = ctx.Event()
    worker = ctx.Process(target=_hold_worker_lock, args=(run_dir, held))
    worker.start()
    try:
        assert held.wait(60)
        result = runner.invoke(app, ["search", "--resume", "--run-dir", str(run_dir), "--trials", "2", "--quiet"])
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert result.exit_code == 2 and len(lines) == 1, result.output
        assert "worker processes of an earlier search are still running" in lines[0]
    finally:
        worker.kill()
        worker.join()
    refuse_live_workers(run_dir)  # its lock went with it
