"""Molecular datasets: MoleculeNet CSVs through PyG's loader (SMILES -> graphs with rdkit,
an optional extra) with scaffold splits, and LRGB peptides-func from its original CSV
release and split pickle (as GraphGPS reads it).

Atoms and bonds come as integer columns (PyG's ``from_smiles``: 9 atom and 3 bond
features); the model embeds them per column (``CategoricalEncoder``, OGB's encoders)."""
from __future__ import annotations

import ast
import pickle
from pathlib import Path

import torch
from torch_geometric.data import Data

from graphnas.evaluators.datasets import DATASETS, DatasetError, Loaded, load_graphs, working_root
from graphnas.evaluators.splits import Splits, scaffold_split

# name: (PyG MoleculeNet name, task, metric)
MOLECULENET = {
    "hiv": ("HIV", "graph_multilabel", "roc_auc"), "bbbp": ("BBBP", "graph_multilabel", "roc_auc"),
    "bace": ("BACE", "graph_multilabel", "roc_auc"), "tox21": ("Tox21", "graph_multilabel", "roc_auc"),
    "clintox": ("ClinTox", "graph_multilabel", "roc_auc"), "sider": ("SIDER", "graph_multilabel", "roc_auc"),
    "esol": ("ESOL", "graph_regression", "mae"), "freesolv": ("FreeSolv", "graph_regression", "mae"),
    "lipo": ("Lipo", "graph_regression", "mae"),
}


def _rdkit() -> None:
    try:
        import rdkit  # noqa: F401
    except ImportError:
        raise DatasetError("molecular datasets need rdkit: pip install 'graphnas[chem]'") from None


def cardinalities() -> dict:
    from torch_geometric.utils.smiles import e_map, x_map

    return {"x_cardinalities": tuple(len(v) for v in x_map.values()),
            "edge_cardinalities": tuple(len(v) for v in e_map.values())}


def _moleculenet(key: str, name: str, task: str, metric: str):
    def load(root: Path, cache_dir: Path):
        _rdkit()
        from torch_geometric.datasets import MoleculeNet

        work = working_root(root, cache_dir, f"MoleculeNet/{key}", key, "<csv>")
        dataset = MoleculeNet(str(work / "MoleculeNet"), name=name)
        graphs = [Data(x=g.x, edge_index=g.edge_index, edge_attr=g.edge_attr, y=g.y.float().view(1, -1))
                  for g in dataset]
        splits = scaffold_split([g.smiles for g in dataset])
        return Loaded(graphs, splits, {"task": task, "metric": metric, **cardinalities()})
    return load


for _key, (_name, _task, _metric) in MOLECULENET.items():
    DATASETS.register(_key, f"MoleculeNet {_name} ({'classification, ROC-AUC' if _metric == 'roc_auc' else 'regression, MAE'}), "
                      "scaffold split; needs rdkit", task=_task)(_moleculenet(_key, _name, _task, _metric))


@DATASETS.register("peptides-func", "LRGB Peptides-func: 15,535 peptides, 10 binary labels, average precision; "
                   "original CSV release and split; needs rdkit", task="graph_multilabel")
def peptides_func(root: Path, cache_dir: Path):
    _rdkit()
    import pandas as pd
    from torch_geometric.utils import from_smiles

    folder = root / "LRGB" / "peptides-functional"
    csv, split_file = folder / "raw" / "peptide_multi_class_dataset.csv.gz", folder / "splits_random_stratified_peptide.pickle"
    if not csv.is_file() or not split_file.is_file():
        raise DatasetError(f"dataset 'peptides-func': expected {csv} and {split_file} (data root {root})")
    processed = cache_dir / "processed" / f"peptides-func-{csv.stat().st_size}.pt"
    if processed.is_file():  # SMILES -> graphs takes about a minute: once
        graphs = load_graphs(processed)
    else:
        frame = pd.read_csv(csv)
        graphs = []
        for smiles, labels in zip(frame["smiles"], frame["labels"]):
            g = from_smiles(smiles)
            graphs.append(Data(x=g.x, edge_index=g.edge_index, edge_attr=g.edge_attr,
                               y=torch.tensor(ast.literal_eval(labels), dtype=torch.float).view(1, -1)))
        processed.parent.mkdir(parents=True, exist_ok=True)
        torch.save(graphs, processed)
    with open(split_file, "rb") as f:
        split = pickle.load(f)
    splits = Splits(*(torch.as_tensor(split[k], dtype=torch.long) for k in ("train", "val", "test")))
    return Loaded(graphs, splits, {"task": "graph_multilabel", "metric": "average_precision", **cardinalities()})
