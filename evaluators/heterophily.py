"""The heterophilous node-classification graphs of Platonov et al. (ICLR 2023):
chameleon_filtered, squirrel_filtered, actor, texas, wisconsin and cornell, read from the
data root's ``heterophily/NAME.npz`` (their layout: ``heterophily/README.md`` of the shared
datasets). Each has 10 fixed splits: a run trains on one (``split``, ``--split K``) and
``graphnas train --splits 10`` reports the mean over them, as the paper does.

Nothing is processed or written: the arrays are read as they are, so a read-only root
needs no copy in the cache.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch_geometric.data import Data
from torch_geometric.utils import to_undirected

from graphnas.evaluators.datasets import DATASETS, DatasetError, Loaded, Loader
from graphnas.evaluators.splits import from_masks

HETEROPHILY = {
    "chameleon_filtered": "Wikipedia chameleon pages, duplicates removed: 890 nodes, 5 classes",
    "squirrel_filtered": "Wikipedia squirrel pages, duplicates removed: 2,223 nodes, 5 classes",
    "actor": "actor co-occurrence (Film): 7,600 nodes, 5 classes",
    "texas": "WebKB Texas pages: 183 nodes, 5 classes (tiny, noisy figures)",
    "wisconsin": "WebKB Wisconsin pages: 251 nodes, 5 classes (tiny, noisy figures)",
    "cornell": "WebKB Cornell pages: 183 nodes, 5 classes (tiny, noisy figures)",
}
KEYS = ("node_features", "node_labels", "edges", "train_masks", "val_masks", "test_masks")


def _heterophily(name: str) -> Loader:
    def load(root: Path, cache_dir: Path) -> Loaded:
        path = root / "heterophily" / f"{name}.npz"
        if not path.is_file():
            raise DatasetError(f"dataset {name!r}: {path} not found (data root {root}); expected "
                               f"heterophily/{name}.npz with {', '.join(KEYS)} (Platonov et al.'s release)")
        with np.load(path) as arrays:  # plain arrays: allow_pickle stays off
            missing = [k for k in KEYS if k not in arrays]
            if missing:
                raise DatasetError(f"dataset {name!r}: {path} lacks {', '.join(missing)}; expected {', '.join(KEYS)}")
            a = {k: torch.from_numpy(arrays[k]) for k in KEYS}
        x = a["node_features"].float()
        # the file stores every undirected edge once: both directions for message passing
        edge_index = to_undirected(a["edges"].long().T, num_nodes=x.size(0))
        splits = tuple(from_masks(*(a[f"{part}_masks"][k] for part in ("train", "val", "test")))
                       for k in range(a["train_masks"].size(0)))
        return Loaded(Data(x=x, edge_index=edge_index, y=a["node_labels"].long()), splits[0], split_sets=splits)

    return load


for _name, _description in HETEROPHILY.items():
    DATASETS.register(_name, f"Heterophily (Platonov et al. 2023): {_description}; 10 fixed splits (--split K)",
                      task="node_classification")(_heterophily(_name))
