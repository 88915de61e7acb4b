"""Issue 18: the README's path for several machines without Ray, on a real PostgreSQL server
started here: two `graphnas search --workers 1` processes, each with its own run directory
of one name, share one `postgresql://` study. The budget is met exactly, no architecture
is queried twice, and `report` reads the study."""
from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # subprocesses, clusters or servers: seconds to a minute each

pytest.importorskip("psycopg", reason="PostgreSQL's driver (psycopg) is in the test extra")

REPO = Path(__file__).resolve().parents[2]
BINDIRS = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
TRIALS = 7


def _as_postgres(args: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: as root, run it as the postgres user."""
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


@pytest.fixture(scope="module")
def postgres():  # one server for the module's tests
    if not BINDIRS or (os.geteuid() == 0 and shutil.which("runuser") is None):
        pytest.skip("no PostgreSQL server here (Debian: apt-get install postgresql; .ci/run installs it)")
    bindir = BINDIRS[-1]
    home = Path(tempfile.mkdtemp(prefix="graphnas-pg-"))  # not under pytest's root-only tmp: the server must reach it
    if os.geteuid() == 0:
        shutil.chown(home, "postgres")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    subprocess.run(_as_postgres([f"{bindir}/initdb", "-D", str(home / "data"), "-A", "trust", "-U", "graphnas"]),
                   check=True, capture_output=True, timeout=120)
    subprocess.run(_as_postgres([f"{bindir}/pg_ctl", "-D", str(home / "data"), "-l", str(home / "log"), "-w", "-o",
                                 f"-p {port} -k {home} -c listen_addresses=127.0.0.1", "start"]),
                   check=True, capture_output=True, timeout=120)
    try:
        yield f"postgresql://graphnas@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(_as_postgres([f"{bindir}/pg_ctl", "-D", str(home / "data"), "-m", "immediate", "stop"]),
                       capture_output=True, timeout=120)
        shutil.rmtree(home, ignore_errors=True)


def test_two_machines_share_one_postgresql_study(postgres, tmp_path, cache_dir):
    from graphnas.results.store import RunStore

    def search(machine: str) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "cli.py", "search", "--dataset", "synthetic", "--space", "tiny", "--trials", str(TRIALS),
             "--epochs", "5", "--strategy", "random", "--reference", "none", "--knowledge", "none", "--workers", "1",
             "--storage", postgres, "--run-dir", str(tmp_path / machine / "run"), "--cache-dir", str(cache_dir),
             "--quiet"],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env={**os.environ, "OMP_NUM_THREADS": "1"})

    first, second = search("a"), search("b")  # started at the same moment: one creates, one joins
    outputs = [p.communicate(timeout=300)[0] for p in (first, second)]
    assert first.returncode == 0 and second.returncode == 0, [o[-1500:] for o in outputs]

    for machine in ("a", "b"):  # each machine's run directory opens the shared study
        _, study = RunStore.open(tmp_path / machine / "run")
        assert len(study.trials) == TRIALS
    states = [t.state.name for t in study.trials]
    assert states == ["COMPLETE"] * TRIALS, states  # the budget exactly: no machine overshot it
    ids = [t.user_attrs["arch_id"] for t in study.trials]
    assert len(set(ids)) == TRIALS  # no architecture queried twice, across machines

    report = subprocess.run([sys.executable, "cli.py", "report", str(tmp_path / "b" / "run")], cwd=REPO,
                            capture_output=True, text=True, timeout=300)
    assert report.returncode == 0 and "hypervolume" in report.stdout, report.stdout[-1500:] + report.stderr[-1500:]
    assert (tmp_path / "b" / "run" / "report.html").is_file()


def test_a_machine_with_other_settings_is_refused(postgres, tmp_path, cache_dir):
    base = [sys.executable, "cli.py", "search", "--dataset", "synthetic", "--space", "tiny", "--trials", "1",
            "--epochs", "2", "--strategy", "random", "--reference", "none", "--knowledge", "none",
            "--storage", postgres, "--cache-dir", str(cache_dir), "--quiet"]
    made = subprocess.run([*base, "--run-dir", str(tmp_path / "a" / "other")], cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert made.returncode == 0, made.stdout[-1500:]
    other = subprocess.run([*base, "--epochs", "3", "--run-dir", str(tmp_path / "b" / "other")], cwd=REPO,
                           capture_output=True, text=True, timeout=300)
    assert other.returncode == 2
    lines = [line for line in (other.stdout + other.stderr).splitlines() if line.strip()]
    assert len(lines) == 1 and "was started with other settings (train)" in lines[0], lines
