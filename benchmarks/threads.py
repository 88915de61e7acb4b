"""Torch threads per trial: 1 against the number of cores, alone and beside another busy process (issue 46).

A search gives each trial ``SearchConfig.threads`` torch threads (default: the cores divided
by the local workers). On a machine where another job is running, the OpenMP threads of the
two processes share the cores, and a thread that waits at a barrier for one descheduled
thread can cost far more than the second thread gains. This script times one fixed workload
under four conditions, in one run so that the ratios are comparable:

* threads = 1 and threads = the cores this process may run on (``os.sched_getaffinity``),
* each (i) alone and (ii) beside another process that is busy: a second Python process that
  trains the same plain GCN in a loop with torch's default threads (the cores), as another
  PyG job on the machine would. It is started before, and stopped after, the measurements
  of its condition in each round; its epochs per second during each measurement are
  reported as well (what our thread count costs the other job).

The workloads, on one random graph made here with a fixed seed (10,000 nodes, 80,000 edges,
64 features, 4 classes; nothing downloaded):

* ``gcn``: a plain PyG 2-layer GCN (``GCNConv(64, 64) -> ReLU -> GCNConv(64, 4)``), trained
  full-batch with Adam for ``--epochs`` epochs (a training step per epoch);
* ``trial``: a graphnas trial, ``evaluators.training.train_model`` of a small architecture
  (input projection, 2 x GCN of width 64, linear head) for ``--trial-epochs`` epochs
  (patience = epochs: every epoch runs; a training step and a validation pass per epoch,
  then graphnas' cost measurement), the graph read as a ``.pt`` file like a user's dataset.

Each measurement runs in a fresh subprocess that sets ``torch.set_num_threads`` before any
work (torch's thread pool cannot be shrunk reliably after first use) and times the
workload after a warm-up; process start and data loading are not timed. One subprocess times
both workloads of one (condition, threads) cell of a round, one after the other. Rounds
repeat ``--repeats`` times, the thread order alternating, and the table gives the medians.
The table also gives the CPU seconds the measured process used (all its threads; at 1 thread
much less than its wall time means other work took the core) and the other job's epochs per
second meanwhile. The load average (``os.getloadavg``) is printed before, after and with each
measurement: other jobs on the machine show there, and "alone" is only alone when it is low.

    python benchmarks/threads.py [--epochs 40] [--trial-epochs 10] [--repeats 3] [--alone-only]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

NODES, EDGES, FEATURES, CLASSES, WIDTH = 10_000, 80_000, 64, 4, 64
HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def make_graph(path: Path) -> None:
    import torch
    from torch_geometric.data import Data

    gen = torch.Generator().manual_seed(0)
    y = torch.randint(0, CLASSES, (NODES,), generator=gen)
    x = torch.randn(NODES, FEATURES, generator=gen) + torch.nn.functional.one_hot(y, FEATURES).float()
    edge_index = torch.randint(0, NODES, (2, EDGES), generator=gen)
    torch.save(Data(x=x, edge_index=edge_index, y=y), path)


def plain_gcn(graph: Path):
    """A function that trains the plain GCN ``epochs`` epochs on the graph (loaded here)."""
    import torch
    import torch.nn.functional as F
    from torch import nn
    from torch_geometric.nn import GCNConv

    data = torch.load(graph, weights_only=False)
    torch.manual_seed(0)

    class GCN(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1, self.conv2 = GCNConv(FEATURES, WIDTH), GCNConv(WIDTH, CLASSES)

        def forward(self, x, edge_index):
            return self.conv2(F.relu(self.conv1(x, edge_index)), edge_index)

    model = GCN()
    opt = torch.optim.Adam(model.parameters(), lr=0.01)

    def train(epochs: int, tick=None) -> None:
        for _ in range(epochs):
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(data.x, data.edge_index), data.y).backward()
            opt.step()
            if tick is not None:
                tick()

    return train


def graphnas_trial(graph: Path, cache: Path):
    from graphnas.evaluators import load_dataset
    from graphnas.evaluators.training import TrainConfig, train_model
    from graphnas.search_spaces import Architecture, LayerArch

    bundle = load_dataset(str(graph), cache_dir=cache)
    arch = Architecture(space="threads", hidden_dim=WIDTH, num_layers=2, dropout=0.0, lr=0.01, weight_decay=0.0,
                        layers=tuple(LayerArch(mpnn="gcn", attention="none", heads=1) for _ in range(2)))

    def train(epochs: int) -> None:
        result = train_model(arch, bundle, TrainConfig(epochs=epochs, patience=epochs, device="cpu")).result
        assert result.epochs == epochs

    return train


def measure(args) -> None:
    """Child: set the threads first, then time each workload after a warm-up."""
    import torch

    torch.set_num_threads(args.threads)
    workloads = {"gcn": (plain_gcn(args.graph), args.epochs)}
    if args.trial_epochs:
        workloads["trial"] = (graphnas_trial(args.graph, args.cache), args.trial_epochs)
    other = (lambda: int(args.counter.read_text())) if args.counter else (lambda: 0)
    seconds, cpu, rates = {}, {}, {}
    for name, (train, epochs) in workloads.items():
        train(3)  # warm-up: first-call costs (kernels, allocator, lazy imports) go here
        done, start, cpu_start = other(), time.perf_counter(), time.process_time()
        train(epochs)
        seconds[name] = time.perf_counter() - start
        cpu[name] = time.process_time() - cpu_start  # all this process's threads
        rates[name] = (other() - done) / seconds[name]  # the other job's epochs/s meanwhile
    assert torch.get_num_threads() == args.threads
    print(json.dumps({"seconds": seconds, "cpu": cpu, "other": rates}), flush=True)


def busy(args) -> None:
    """Child: the other job. The plain GCN in a loop with torch's default threads; the count
    of epochs done is kept in ``args.counter`` for the parent to read."""
    import torch

    train = plain_gcn(args.graph)
    fd = os.open(args.counter, os.O_RDWR | os.O_CREAT)
    done = 0

    def tick() -> None:
        nonlocal done
        done += 1
        os.pwrite(fd, f"{done:>20}".encode(), 0)

    print(f"ready {torch.get_num_threads()}", flush=True)
    while True:
        train(10, tick)


class OtherJob:
    """The busy process, started on entry and stopped (by its pid) on exit."""

    def __init__(self, graph: Path, counter: Path) -> None:
        self.graph, self.counter = graph, counter

    def __enter__(self) -> "OtherJob":
        self.counter.write_text(f"{0:>20}")
        self.proc = subprocess.Popen([sys.executable, __file__, "--busy", "--graph", str(self.graph),
                                      "--counter", str(self.counter)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        assert line.startswith("ready"), line
        self.threads = int(line.split()[1])
        time.sleep(2.0)  # running its loop, past its own warm-up
        return self

    def __exit__(self, *exc) -> None:
        self.proc.terminate()
        self.proc.wait()


def run_child(args, threads: int, workdir: Path, counter: Path | None = None) -> dict:
    cmd = [sys.executable, __file__, "--measure", "--threads", str(threads), "--graph", str(workdir / "graph.pt"),
           "--cache", str(workdir / "cache"), "--epochs", str(args.epochs), "--trial-epochs", str(args.trial_epochs)]
    cmd += ["--counter", str(counter)] if counter else []
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"measurement failed ({threads} threads):\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=40, help="plain GCN epochs per measurement")
    parser.add_argument("--trial-epochs", type=int, default=10, help="graphnas trial epochs (0: no trial)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--alone-only", action="store_true", help="skip the measurements beside a busy process")
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--busy", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--graph", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--cache", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--counter", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        return measure(args)
    if args.busy:
        return busy(args)

    cores = len(os.sched_getaffinity(0))
    counts = [1, cores] if cores > 1 else [1]
    load_before = os.getloadavg()
    start = time.perf_counter()
    print(f"cores (affinity): {cores}; load average before: {' '.join(f'{v:.2f}' for v in load_before)}")
    print(f"gcn: {args.epochs} epochs; trial: {args.trial_epochs} epochs; {args.repeats} repeats, medians\n")
    workloads = ["gcn"] + (["trial"] if args.trial_epochs else [])
    conditions = ["alone"] + ([] if args.alone_only else ["beside a busy process"])
    seconds: dict[tuple, list[float]] = {}
    other_rate: dict[tuple, list[float]] = {}
    cpu_seconds: dict[tuple, list[float]] = {}
    other_threads = None
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        make_graph(workdir / "graph.pt")
        run_child(argparse.Namespace(epochs=1, trial_epochs=1 if args.trial_epochs else 0), 1, workdir)  # dataset cache
        for repeat in range(args.repeats):
            order = counts if repeat % 2 == 0 else counts[::-1]
            for condition in conditions:
                job = OtherJob(workdir / "graph.pt", workdir / "counter") if condition != "alone" else None
                if job is not None:
                    job.__enter__()
                    other_threads = job.threads
                try:
                    for threads in order:
                        result = run_child(args, threads, workdir, job.counter if job else None)
                        for name in workloads:
                            seconds.setdefault((name, condition, threads), []).append(result["seconds"][name])
                            cpu_seconds.setdefault((name, condition, threads), []).append(result["cpu"][name])
                            if job is not None:
                                other_rate.setdefault((name, condition, threads), []).append(result["other"][name])
                        line = ", ".join(f"{n} {result['seconds'][n]:.2f} s ({result['cpu'][n]:.1f} s CPU)"
                                         for n in workloads)
                        if job is not None:
                            line += " (other job: " + ", ".join(f"{result['other'][n]:.1f}" for n in workloads) + " epochs/s)"
                        print(f"  round {repeat + 1}, {condition}, {threads} thread(s): {line}; "
                              f"load {os.getloadavg()[0]:.2f}", flush=True)
                finally:
                    if job is not None:
                        job.__exit__(None, None, None)
    load_after = os.getloadavg()

    if other_threads is not None:
        print(f"\nthe busy process: the plain GCN in a loop with {other_threads} torch threads (its default)")
    print("\n| workload | condition | threads | seconds (median) | x threads=1 | CPU seconds | other job epochs/s |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for name in workloads:
        for condition in conditions:
            base = statistics.median(seconds[(name, condition, 1)])
            for threads in counts:
                med = statistics.median(seconds[(name, condition, threads)])
                rate = other_rate.get((name, condition, threads))
                rate_cell = f"{statistics.median(rate):.1f}" if rate else "-"
                cpu = statistics.median(cpu_seconds[(name, condition, threads)])
                print(f"| {name} | {condition} | {threads} | {med:.2f} | {med / base:.2f} | {cpu:.1f} | {rate_cell} |")
    print(f"\nload average before: {' '.join(f'{v:.2f}' for v in load_before)}; "
          f"after: {' '.join(f'{v:.2f}' for v in load_after)}; whole run {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
