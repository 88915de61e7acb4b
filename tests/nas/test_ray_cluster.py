"""Issue 18: `--backend ray --address` on a real Ray cluster of two nodes (started with
`ray start` on this machine, one CPU each): trials run on both nodes, the run directory is
the standard one, and a node killed mid-search fails only the trial it was running."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from graphnas.results.store import RunStore

pytestmark = pytest.mark.slow  # subprocesses, clusters or servers: seconds to a minute each

pytest.importorskip("ray", reason="Ray Tune is the optional extra graphnas[ray]")

REPO = Path(__file__).resolve().parents[2]
RAY = str(Path(sys.executable).parent / "ray")
# Ray 2.5x+ turns on token authentication for a `ray start --head` cluster; every node and
# driver then reads the token the head wrote (~/.ray/auth_token), as on real machines.
ENV = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "OMP_NUM_THREADS": "1", "RAY_AUTH_MODE": "token"}
SPACE = "name: cluster\nglobal: {hidden_dim: 32, num_layers: 2}\nlayers: {mpnn: [gcn, sage, gin], norm: none}\n"
TRIALS = 8
# Ray reuses a finished trial's actor, so a warm trial of 80 epochs on the synthetic graph
# ends in about 0.3 s: shorter than the polling below can catch both nodes busy. 2,000 epochs
# keep a trial in flight for several seconds. No pruner: the default (ASHA) stopped most trials
# at epoch 9, so the worker node might complete none before the search ended (a CI failure).
EPOCHS = "2000"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _nodes(address: str) -> list[dict]:
    probe = ("import json, ray\nray.init(address=%r, log_to_driver=False)\n"
             "print(json.dumps([{'id': n['NodeID'], 'socket': n['RayletSocketName'], 'alive': n['Alive'], "
             "'head': 'node:__internal_head__' in n['Resources']} for n in ray.nodes()]))" % address)
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=ENV, timeout=120)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture()
def cluster():
    port = _free_port()
    address = f"127.0.0.1:{port}"
    common = ["--num-cpus", "1", "--disable-usage-stats"]
    try:
        subprocess.run([RAY, "start", "--head", "--port", str(port), "--node-ip-address", "127.0.0.1",
                        "--include-dashboard", "false", *common], check=True, capture_output=True, env=ENV, timeout=180)
        subprocess.run([RAY, "start", "--address", address, "--node-ip-address", "127.0.0.1", *common],
                       check=True, capture_output=True, env=ENV, timeout=180)
        deadline = time.time() + 60
        while sum(n["alive"] for n in _nodes(address)) < 2:
            assert time.time() < deadline, "the second Ray node never joined"
            time.sleep(1)
        yield address
    finally:
        subprocess.run([RAY, "stop", "--force"], capture_output=True, env=ENV, timeout=120)


def _processes() -> list[tuple[int, int, list[bytes]]]:
    """(pid, parent pid, argv) of every process."""
    out = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            args = (proc / "cmdline").read_bytes().split(b"\0")
            ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        out.append((int(proc.name), ppid, args))
    return out


def _raylet(socket_name: str) -> int:
    """The pid of one node's raylet, found by its socket (the nodes of one machine share the rest)."""
    flag = f"--raylet_socket_name={socket_name}".encode()
    pids = [pid for pid, _, args in _processes() if args[0].endswith(b"/raylet") and flag in args]
    assert pids, f"no raylet with {flag.decode()}"
    return pids[0]


def _kill_node(socket_name: str) -> None:
    """SIGKILL one node's raylet, as a machine that goes down; its workers die with it."""
    os.kill(_raylet(socket_name), signal.SIGKILL)


def test_a_search_joins_a_two_node_cluster_and_a_killed_node_fails_only_its_trial(cluster, tmp_path, cache_dir):
    nodes = _nodes(cluster)
    head = next(n for n in nodes if n["head"])
    worker = next(n for n in nodes if not n["head"])
    (tmp_path / "space.yaml").write_text(SPACE)
    run_dir = tmp_path / "run"
    search = subprocess.Popen(
        [sys.executable, "cli.py", "search", "--backend", "ray", "--address", cluster, "--workers", "2",
         "--cpus-per-trial", "1", "--space", str(tmp_path / "space.yaml"), "--dataset", "synthetic",
         "--trials", str(TRIALS), "--epochs", EPOCHS, "--patience", EPOCHS, "--strategy", "random",
         "--pruner", "none", "--reference", "none", "--knowledge", "none", "--quiet", "--run-dir", str(run_dir),
         "--cache-dir", str(cache_dir)],
        cwd=REPO, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    killed, last_running = False, set()
    deadline = time.time() + 400
    while search.poll() is None and time.time() < deadline:
        time.sleep(0.25)
        if killed or not (run_dir / "config.yaml").is_file():
            continue
        try:
            trials = RunStore.open(run_dir)[1].trials
        except Exception:  # the study is still being created
            continue
        # a trial the worker finished (a running one carries the node too): under load the kill
        # could otherwise come before the worker completed anything
        done_on_worker = [t for t in trials if t.user_attrs.get("node") == worker["id"] and t.state.name == "COMPLETE"]
        running = {t.number for t in trials if t.state.name == "RUNNING"}
        # two trials in flight on two one-CPU nodes: one of them is on the worker node
        both_busy = len(running) == 2 and running == last_running
        last_running = running
        if done_on_worker and both_busy and len([t for t in trials if t.state.is_finished()]) < TRIALS - 3:
            time.sleep(0.5)  # let the trial start training there
            _kill_node(worker["socket"])  # mid-search, as a machine that goes down
            killed = time.time()
    output = search.communicate(timeout=60)[0] if search.poll() is not None else (search.kill(), "timed out")[1]
    assert search.returncode == 0, output[-3000:]
    study = RunStore.open(run_dir)[1]
    durations = [(t.number, t.state.name, round((t.datetime_complete - t.datetime_start).total_seconds(), 1))
                 for t in study.trials if t.datetime_complete]
    assert killed, f"the worker node never finished a trial before the search ended: {durations}"
    print("trial durations (s):", durations)

    states = [t.state.name for t in study.trials]
    timeline = [(t.number, t.state.name, (t.user_attrs.get("node") or "?")[:6], t.datetime_start.timestamp() - killed)
                for t in study.trials]  # seconds from the kill
    assert len(states) == TRIALS and states.count("FAIL") == 1, timeline
    failed = next(t for t in study.trials if t.state.name == "FAIL")
    assert "died" in failed.user_attrs.get("error", ""), failed.user_attrs
    ran_on = {t.user_attrs.get("node") for t in study.trials if t.state.name == "COMPLETE"}
    assert ran_on == {head["id"], worker["id"]}
    # two trials in flight share a journal file, as two local workers do
    for name in ("config.yaml", "journal.log", "trials.csv", "best_arch.json", "summary.md"):
        assert (run_dir / name).is_file(), name
