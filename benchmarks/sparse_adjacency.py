"""The sparse-adjacency path against edge_index, per trial (search_spaces/adjacency.py).

For each design, the same ``train_model`` call (fixed seed, N epochs, 1 thread) with the graph
given as a torch.sparse ``adj_t`` (the default for operators that declare ``sparse_adjacency``)
and as ``edge_index`` (the path every operator has), alternating, best of R repeats each.
Printed: seconds per epoch of each and their ratio, and the validation metric of each (they
should agree closely). Graphs: chameleon_filtered from ``--data-root`` and a 10,000-node,
80k-edge heterophilous SBM (benchmarks/default_search_time.py).

    python benchmarks/sparse_adjacency.py [--epochs 20] [--repeats 2]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from default_search_time import heterophilous_sbm  # noqa: E402
from graphnas.evaluators import training  # noqa: E402
from graphnas.evaluators.datasets import load_dataset  # noqa: E402
from graphnas.search_spaces.zoo import zoo_entry  # noqa: E402

DESIGNS = {"luo_gcn (chameleon: 5 x 512)": ("luo_gcn", "chameleon_filtered"),
           "luo_sage (squirrel: 4 x 256, BN, linear skip)": ("luo_sage", "squirrel_filtered"),
           "zoo dagnn": ("dagnn", None)}


def timed(arch, bundle, config, sparse: bool) -> tuple[float, float]:
    training.uses_sparse_adjacency = _ORIGINAL if sparse else (lambda arch, info: False)
    start = time.perf_counter()
    result = training.train_model(arch, bundle, config).result
    return (time.perf_counter() - start) / config.epochs, result.val_metric


_ORIGINAL = training.uses_sparse_adjacency


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-root", default="/work/shared/datasets")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--repeats", type=int, default=2)
    args = p.parse_args()
    warnings.filterwarnings("ignore", message="Sparse")
    torch.set_num_threads(1)
    cache = Path(tempfile.mkdtemp(prefix="graphnas-sparse-"))
    graphs = {"chameleon_filtered": load_dataset("chameleon_filtered", data_root=args.data_root, cache_dir=cache)}
    sbm = cache / "sbm.pt"
    torch.save(heterophilous_sbm(10_000, 80_000), sbm)
    graphs["sbm 10k nodes, 80k edges"] = load_dataset(str(sbm), cache_dir=cache)
    config = training.TrainConfig(epochs=args.epochs, patience=args.epochs, seed=0, device="cpu")
    print(f"{'graph':26} {'design':46} {'adj_t s/epoch':>13} {'edge_index':>10} {'speed-up':>8}  val adj_t / edge_index")
    for gname, bundle in graphs.items():
        for label, (zoo, setting) in DESIGNS.items():
            entry = zoo_entry(zoo)
            arch = entry.architecture_for(setting) if setting else entry.architecture
            runs = {True: [], False: []}
            for _ in range(args.repeats):
                for sparse in (True, False):
                    runs[sparse].append(timed(arch, bundle, config, sparse))
            fast, slow = min(t for t, _ in runs[True]), min(t for t, _ in runs[False])
            print(f"{gname:26} {label:46} {fast:13.3f} {slow:10.3f} {slow / fast:7.2f}x  "
                  f"{runs[True][0][1]:.4f} / {runs[False][0][1]:.4f}", flush=True)


if __name__ == "__main__":
    main()
