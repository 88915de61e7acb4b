"""How long the default search takes on a graph of a user's size, with multi-fidelity on and off
(issue 42: a 20-trial default search on a 10,000-node, 80k-edge graph in at most 30 minutes on
the 2-core machine).

A heterophilous stochastic block model is generated in-process (PyG's
``stochastic_blockmodel_graph``; nothing is downloaded): 10,000 nodes in 5 blocks, about 80,000
directed edges, four in five of them between blocks, and 64 features drawn around a per-block mean, saved
as a ``.pt`` file, the way a user hands graphnas their own graph. Then, in one run and in this
order, the same command with the default pruner (``auto``: successive halving over epochs) and
with ``--pruner none``:

    graphnas search --dataset graph.pt --trials 20 --knowledge none --quiet --run-dir DIR [--pruner none]

Nothing else of the default changes (space, strategy, epochs, confirmation). Printed: the wall
time of each, their ratio, the trials by state and the best validation and test accuracy. An
absolute time holds only on an otherwise idle machine: the script prints the load average before
and after, and the ratio is the figure to compare across machines.

    python benchmarks/default_search_time.py [--nodes 10000] [--edges 80000] [--trials 20] [--only auto|none]
                                             [--timeout SECONDS]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch_geometric.data import Data
from torch_geometric.utils import stochastic_blockmodel_graph, to_undirected

REPO = Path(__file__).resolve().parents[1]


def heterophilous_sbm(nodes: int, edges: int, classes: int = 5, features: int = 64, seed: int = 0) -> Data:
    """An SBM whose blocks are the classes, edges as likely between blocks as within one (edge
    homophily 1 / classes = 0.2, as chameleon's or actor's), and noisy block-mean features:
    the neighbours carry no label signal, the node's own features do."""
    gen = torch.Generator().manual_seed(seed)
    sizes = [nodes // classes + (i < nodes % classes) for i in range(classes)]
    pairs = nodes * nodes / 2  # expected undirected edges = sum of p * pairs
    within, between = 1.0, 1.0  # a class-blind graph: edge homophily 1 / classes
    mean_pairs = sum(s * s / 2 for s in sizes) * within + (pairs - sum(s * s / 2 for s in sizes)) * between
    scale = (edges / 2) / mean_pairs
    probs = [[scale * (within if i == j else between) for j in range(classes)] for i in range(classes)]
    torch.manual_seed(seed)
    edge_index = to_undirected(stochastic_blockmodel_graph(sizes, probs, directed=False))
    y = torch.cat([torch.full((s,), c) for c, s in enumerate(sizes)])
    centres = torch.randn(classes, features, generator=gen)
    x = centres[y] * 0.5 + torch.randn(nodes, features, generator=gen)
    return Data(x=x, edge_index=edge_index, y=y)


def timed_search(graph: Path, run_dir: Path, trials: int, pruner: str | None, timeout: float | None = None) -> dict:
    cmd = [sys.executable, "cli.py", "search", "--dataset", str(graph), "--trials", str(trials), "--knowledge",
           "none", "--quiet", "--run-dir", str(run_dir)] + (["--pruner", pruner] if pruner else [])
    cmd += ["--timeout", str(timeout)] if timeout else []
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr[-2000:]}")
    import pandas as pd

    frame = pd.read_csv(run_dir / "trials.csv")
    best = json.loads((run_dir / "best_arch.json").read_text())
    return {"pruner": pruner or "auto", "wall_s": wall, "timeout_s": timeout, "states": frame["state"].value_counts().to_dict(),
            "best_val": best["val_metric"], "best_test": best["test_metric"]}


def _git_head() -> str:
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
    return done.stdout.strip() or "unknown"


def _record(path: Path, row: dict) -> None:
    rows = json.loads(path.read_text()) if path.exists() else []
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rows + [row], indent=1, default=str))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", type=int, default=10_000)
    parser.add_argument("--edges", type=int, default=80_000)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--only", choices=["auto", "none"], default=None)
    parser.add_argument("--timeout", type=float, default=None,
                        help="the searches' --timeout in seconds (a bound on a slow comparison; the states show "
                             "how many trials finished)")
    parser.add_argument("--results", default=str(REPO / "benchmarks" / "results" / "default_search_time.json"),
                        help="each finished search is appended here")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="graphnas-time-"))
    graph = work / "graph.pt"
    data = heterophilous_sbm(args.nodes, args.edges)
    torch.save(data, graph)
    same = (data.y[data.edge_index[0]] == data.y[data.edge_index[1]]).float().mean().item()
    print(f"graph: {data.num_nodes} nodes, {data.num_edges} directed edges, {data.num_features} features, "
          f"edge homophily {same:.2f}; load average before {os.getloadavg()}", flush=True)
    rows = []
    for pruner in ([None, "none"] if args.only is None else [None if args.only == "auto" else "none"]):
        row = timed_search(graph, work / f"run-{pruner or 'auto'}", args.trials, pruner, args.timeout)
        row.update(nodes=data.num_nodes, edges=data.num_edges, trials=args.trials, git=_git_head(),
                   load_before=os.getloadavg())
        rows.append(row)
        _record(Path(args.results), row)
        print(f"pruner {row['pruner']:>4}: {row['wall_s'] / 60:6.1f} min, states {row['states']}, best val "
              f"{row['best_val']:.4f} test {row['best_test']:.4f}", flush=True)
    if len(rows) == 2:
        print(f"multi-fidelity on / off: {rows[0]['wall_s'] / rows[1]['wall_s']:.2f}x the wall time")
    print(f"load average after {os.getloadavg()}")


if __name__ == "__main__":
    main()
