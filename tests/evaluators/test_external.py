"""Datasets outside the registry (a user's .pt file, a dataset class by dotted path) and CSL."""
from __future__ import annotations

import pytest
import torch
from torch_geometric.data import Data

from graphnas.evaluators import DatasetError, load_dataset


def _graphs(n: int, seed: int = 0) -> list[Data]:
    gen = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        k = int(torch.randint(5, 12, (1,), generator=gen))
        ei = torch.randint(0, k, (2, 3 * k), generator=gen)
        out.append(Data(x=torch.randn(k, 4, generator=gen), edge_index=ei, y=torch.tensor([i % 3])))
    return out


def test_a_saved_list_of_graphs_is_a_graph_task(tmp_path, cache_dir):
    path = tmp_path / "mine.pt"
    torch.save(_graphs(60), path)
    bundle = load_dataset(str(path), cache_dir=cache_dir, encodings={"rwse": 4})
    assert bundle.info.task == "graph_classification" and bundle.info.num_outputs == 3
    assert bundle.info.num_features == 4 and len(bundle.graphs) == 60
    sizes = [len(getattr(bundle.splits, s)) for s in ("train", "val", "test")]
    assert sizes == [48, 6, 6] and bundle.data.rwse.size(1) == 4


def test_a_saved_graph_with_masks_is_a_node_task(tmp_path, cache_dir):
    g = _graphs(1)[0]
    n = g.num_nodes
    g.y = torch.arange(n) % 2
    g.train_mask = torch.zeros(n, dtype=torch.bool)
    g.train_mask[:4] = True
    g.val_mask, g.test_mask = ~g.train_mask, ~g.train_mask
    path = tmp_path / "node.pt"
    torch.save(g, path)
    bundle = load_dataset(str(path), cache_dir=cache_dir)
    assert bundle.info.task == "node_classification" and bundle.splits.train.tolist() == [0, 1, 2, 3]


def test_a_dataset_class_by_dotted_path_with_arguments(cache_dir):
    bundle = load_dataset("torch_geometric.datasets.FakeDataset", cache_dir=cache_dir,
                          dataset_args={"num_graphs": 40, "avg_num_nodes": 12, "num_channels": 5, "num_classes": 2})
    assert bundle.info.task == "graph_classification" and len(bundle.graphs) == 40
    assert bundle.info.num_features == 5 and bundle.info.num_outputs == 2


def test_bad_names_say_what_was_expected(tmp_path, cache_dir):
    with pytest.raises(DatasetError, match=r"dataset file .*missing.pt not found"):
        load_dataset(str(tmp_path / "missing.pt"), cache_dir=cache_dir)
    with pytest.raises(DatasetError, match="cannot import NoSuchSet from torch_geometric.datasets"):
        load_dataset("torch_geometric.datasets.NoSuchSet", cache_dir=cache_dir)
    torch.save({"x": 1}, tmp_path / "bad.pt")
    with pytest.raises(DatasetError, match="expected a Data object or a non-empty list of Data, got dict"):
        load_dataset(str(tmp_path / "bad.pt"), cache_dir=cache_dir)
    with pytest.raises(DatasetError, match="known datasets: .*csl.*dotted path"):
        load_dataset("zinc", cache_dir=cache_dir)


def test_csl_loads_from_the_shared_raw_files(shared_datasets, cache_dir):
    bundle = load_dataset("csl", shared_datasets, cache_dir=cache_dir)
    assert len(bundle.graphs) == 150 and bundle.info.num_outputs == 10
    assert sum(g.num_nodes for g in bundle.graphs) == 6150
    assert (bundle.data.x == 1).all()  # structure only
    y = torch.cat([bundle.graphs[i].y for i in bundle.splits.test.tolist()])
    assert len(y) == 15 and set(y.tolist()) == set(range(10))  # stratified: every class is tested
