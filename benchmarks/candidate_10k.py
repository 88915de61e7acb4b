"""The issue-45 candidate, before and after: SAGE -> DAGNN -> MLP at width 128, 200 epochs on a
10,000-node, 80,000-edge heterophilous graph (issue 45 reported it unfinished after 31 minutes).

The graph is ``default_search_time.py``'s stochastic block model, saved as a ``.pt`` file. The
"before" code is a ``git worktree`` of ``--before`` (default: the commit before the sparse
adjacency path, the state the issue measured); "after" is this working tree. Each run is one
``train_model`` call of that architecture (200 epochs, patience 200, seed 0, one torch thread)
in a fresh subprocess whose working directory is that tree, so that it imports that tree's code
(checked: the child prints where ``evaluators`` came from). Runs alternate, before and after,
``--repeats`` times; printed: each run's training time, the medians and their ratio. Times hold
on an idle machine only; the ratio is measured alternately in one run.

    python benchmarks/candidate_10k.py [--before REV] [--repeats 2] [--epochs 200]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

ARCH = {"space": "node", "hidden_dim": 128, "num_layers": 3, "dropout": 0.5, "lr": 0.01, "weight_decay": 5e-4,
        "layers": [{"mpnn": "sage", "attention": "none"}, {"mpnn": "dagnn", "attention": "none"},
                   {"mpnn": "mlp", "attention": "none"}]}

CHILD = r"""
import json, sys, time
import torch
torch.set_num_threads(1)
import os
if os.path.isdir("graphnas"):  # the packages import under graphnas (issue 44)
    from graphnas import evaluators
    from graphnas.evaluators.datasets import load_dataset
    from graphnas.evaluators.training import TrainConfig, train_model
    from graphnas.search_spaces import Architecture
else:  # a tree from before: top-level packages, imported from the working directory
    import evaluators
    from evaluators.datasets import load_dataset
    from evaluators.training import TrainConfig, train_model
    from search_spaces import Architecture
graph, cache, epochs = sys.argv[1], sys.argv[2], int(sys.argv[3])
bundle = load_dataset(graph, cache_dir=cache)
arch = Architecture.model_validate(json.loads(sys.argv[4]))
config = TrainConfig(epochs=epochs, patience=epochs, seed=0, device="cpu", latency_repeats=1)
start = time.perf_counter()
result = train_model(arch, bundle, config).result
print(json.dumps({"code": evaluators.__file__, "train_time_s": result.train_time_s, "epochs": result.epochs,
                  "val_metric": result.val_metric, "wall_s": time.perf_counter() - start}))
"""


def run(tree: Path, graph: Path, cache: Path, epochs: int) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(tree), PYTHONWARNINGS="ignore")
    done = subprocess.run([sys.executable, "-c", CHILD, str(graph), str(cache), str(epochs), json.dumps(ARCH)],
                          cwd=tree, env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{tree}: {done.stderr.strip()[-2000:]}")
    out = json.loads(done.stdout.strip().splitlines()[-1])
    if not out["code"].startswith(str(tree)):
        raise SystemExit(f"the child imported {out['code']}, not the tree {tree}")
    return out


def main() -> None:
    import torch

    from default_search_time import heterophilous_sbm

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--before", default="55314fb~1", help="the commit measured as 'before'")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--epochs", type=int, default=200)
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "candidate_10k.json"))
    opts = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        graph = tmp / "graph.pt"
        torch.save(heterophilous_sbm(10_000, 80_000), graph)
        before = tmp / "before"
        subprocess.run(["git", "worktree", "add", "--detach", str(before), opts.before], cwd=REPO, check=True,
                       capture_output=True)
        try:
            rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=before, capture_output=True,
                                 text=True).stdout.strip()
            times: dict[str, list[dict]] = {"before": [], "after": []}
            for i in range(opts.repeats):
                for name, tree in (("before", before), ("after", REPO)):
                    r = run(tree, graph, tmp / f"cache-{name}", opts.epochs)
                    times[name].append(r)
                    print(f"{name} ({rev if name == 'before' else 'working tree'}) run {i + 1}: "
                          f"{r['train_time_s']:.1f} s training, {r['epochs']} epochs, val {r['val_metric']:.3f}",
                          flush=True)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(before)], cwd=REPO, capture_output=True)
    med = {k: statistics.median(r["train_time_s"] for r in v) for k, v in times.items()}
    print(f"median training time: before {med['before']:.1f} s, after {med['after']:.1f} s, "
          f"after / before {med['after'] / med['before']:.2f}x (load average {os.getloadavg()[0]:.1f})")
    Path(opts.out).write_text(json.dumps({"before_commit": rev, "runs": times, "median_s": med,
                                          "ratio": med["after"] / med["before"],
                                          "load_average_end": os.getloadavg()}, indent=1))


if __name__ == "__main__":
    main()
