"""A sampled trial at 1M nodes, end to end through ``graphnas search`` (issue 45).

A 1,000,000-node graph with about 10,000,000 edges (PyG's ``FakeDataset``, mean degree 10,
64 features, 5 classes; ``scale.py``'s generator: masks 10% train, 5% validation, 5% test) is
saved as a ``.pt`` file, as a user would give it. Then, in a subprocess:

    graphnas search --dataset G.pt --space SAGE2.yaml --trials 1 --epochs E --patience E
                    --reference none --confirm 0 --pruner none --knowledge none --threads 1

where SAGE2.yaml holds one architecture: 2 SAGE layers, width 128. The graph is above
``--sample-above-nodes`` (100,000 by default), so the trial trains on NeighborLoader
mini-batches (fan-outs 10, 10; 1,024 seeds per batch). Printed and written to
``benchmarks/results/sampled_1m.json``: the search's wall time, the trial's training time per
epoch (train_time_s / epochs), the epochs run (from the study), the peak resident
memory of the search process (``ru_maxrss`` of the child) and its validation accuracy.

    python benchmarks/sampled_1m.py [--nodes 1000000] [--degree 10] [--epochs 3]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

SPACE = """name: sage2
version: 1
description: one architecture, 2 SAGE layers at width 128 (benchmarks/sampled_1m.py)
global:
  hidden_dim: [128]
  num_layers: {low: 2, high: 2}
  dropout: [0.5]
  lr: [0.01]
  weight_decay: [5.0e-4]
  encoding: [none]
  residual: false
layers:
  mpnn: [sage]
  attention: [none]
  norm: none
  ffn: false
"""


def main() -> None:
    from scale import make_graph

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--nodes", type=int, default=1_000_000)
    p.add_argument("--degree", type=int, default=10)
    p.add_argument("--features", type=int, default=64)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "sampled_1m.json"))
    opts = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        graph, space, run_dir = tmp / "graph.pt", tmp / "sage2.yaml", tmp / "run"
        start = time.perf_counter()
        make_graph(opts.nodes, opts.degree, opts.features, graph)
        made_s = time.perf_counter() - start
        space.write_text(SPACE)
        cmd = [sys.executable, "cli.py", "search", "--dataset", str(graph), "--space", str(space),
               "--trials", "1", "--epochs", str(opts.epochs), "--patience", str(opts.epochs),
               "--reference", "none", "--confirm", "0", "--pruner", "none", "--knowledge", "none",
               "--threads", "1", "--run-dir", str(run_dir), "--quiet", "--cache-dir", str(tmp / "cache")]
        env = dict(os.environ, OMP_NUM_THREADS="1")
        start = time.perf_counter()
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - start
        peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        if proc.returncode != 0:
            raise SystemExit(f"graphnas search failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
        import optuna
        import torch

        from graphnas.evaluators.result import TrialResult

        study = optuna.load_study(study_name=None, storage=f"sqlite:///{run_dir / 'study.db'}")
        trial = TrialResult.from_attrs(study.trials[0].user_attrs)
        state = study.trials[0].state.name

        edges = int(torch.load(graph, weights_only=False).edge_index.shape[1])
    result = {"nodes": opts.nodes, "edges": edges, "features": opts.features, "graph_made_s": made_s,
              "search_wall_s": wall, "state": state, "epochs": trial.epochs, "train_time_s": trial.train_time_s,
              "per_epoch_s": trial.train_time_s / max(trial.epochs, 1), "val_metric": trial.val_metric,
              "peak_rss_mib": peak_mib,
              "command": "graphnas " + " ".join(cmd[2:]),
              "when": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    Path(opts.out).parent.mkdir(parents=True, exist_ok=True)
    Path(opts.out).write_text(json.dumps(result, indent=1))
    print(f"{opts.nodes:,} nodes, {edges:,} edges: search {wall:.0f} s, trial {result['epochs']} epochs, "
          f"{result['per_epoch_s']:.1f} s per epoch (training), peak RSS {peak_mib:,.0f} MiB, "
          f"val accuracy {result['val_metric']:.3f}")


if __name__ == "__main__":
    main()
