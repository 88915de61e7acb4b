"""Bad data is one line when the dataset loads, naming the dataset and the problem (issue 43)."""
from __future__ import annotations

import pytest
import torch
from torch_geometric.data import Data

from graphnas.evaluators import DatasetError, TrainConfig, load_dataset
from graphnas.evaluators.splits import check_folds, fold_splits


def _node(n: int = 12, **changes) -> Data:
    gen = torch.Generator().manual_seed(0)
    g = Data(x=torch.randn(n, 3, generator=gen), edge_index=torch.randint(0, n, (2, 2 * n), generator=gen),
             y=torch.arange(n) % 3)
    for key, value in changes.items():
        setattr(g, key, value)
    return g


def _graphs(n: int = 30, classes: int = 2) -> list[Data]:
    gen = torch.Generator().manual_seed(1)
    return [Data(x=torch.randn(6, 3, generator=gen), edge_index=torch.randint(0, 6, (2, 12), generator=gen),
                 y=torch.tensor([i % classes])) for i in range(n)]


def _load(tmp_path, obj, **kwargs):
    path = tmp_path / "bad.pt"
    torch.save(obj, path)
    return load_dataset(str(path), cache_dir=tmp_path / "cache", **kwargs)


def test_nan_or_inf_features(tmp_path):
    x = torch.randn(12, 3)
    x[5, 1], x[7, 0] = float("nan"), float("inf")
    with pytest.raises(DatasetError, match=r"bad.pt': node features hold NaN or inf \(2 values; the first at node 5\)"):
        _load(tmp_path, _node(x=x))


def test_edge_index_out_of_range_or_negative(tmp_path):
    with pytest.raises(DatasetError, match=r"edge_index holds node 12, past the last of its 12 nodes \(ids 0 to 11\)"):
        _load(tmp_path, _node(edge_index=torch.tensor([[0, 1], [12, 2]])))
    graphs = _graphs()
    graphs[4].edge_index = torch.tensor([[0, -1], [1, 2]])
    with pytest.raises(DatasetError, match=r"bad.pt': graph 4: edge_index holds node -1: node ids start at 0"):
        _load(tmp_path, graphs)


def test_fractional_or_negative_class_labels(tmp_path):
    with pytest.raises(DatasetError, match=r"class labels must be whole numbers, found 0.5"):
        _load(tmp_path, _node(y=torch.tensor([0.0, 1.0, 0.5] * 4)), task="node_classification")
    graphs = _graphs()
    graphs[3].y = torch.tensor([2.5])
    with pytest.raises(DatasetError, match=r"class labels must be whole numbers, found 2.5 \(float targets are "
                                           r"regression: --task graph_regression\)"):
        _load(tmp_path, graphs, task="graph_classification")
    with pytest.raises(DatasetError, match=r"bad.pt: class labels must be 0 or more, found -1"):
        _load(tmp_path, _node(y=torch.arange(12) % 3 - 1))


def test_a_single_class(tmp_path):
    with pytest.raises(DatasetError, match=r"every label is class 0: classification needs two classes or more"):
        _load(tmp_path, _graphs(classes=1))


def test_y_shorter_than_the_nodes(tmp_path):
    with pytest.raises(DatasetError, match=r"bad.pt': y holds 8 labels for 12 nodes: one per node expected"):
        _load(tmp_path, _node(y=torch.arange(8) % 2))


def test_graphs_of_mixed_feature_widths(tmp_path):
    graphs = _graphs()
    graphs[7].x = torch.randn(6, 5)
    with pytest.raises(DatasetError, match=r"bad.pt': graph 7 has 5 node features, graph 0 has 3: every graph needs "
                                           r"the same width"):
        _load(tmp_path, graphs)


def test_more_folds_than_graphs_of_the_smallest_class(tmp_path):
    graphs = _graphs(40)
    for g in graphs[:3]:
        g.y = torch.tensor([2])  # class 2: three graphs
    bundle = _load(tmp_path, graphs)
    with pytest.raises(DatasetError, match=r"bad.pt': --folds 4 needs 4 graphs of every class; class 2 has 3"):
        check_folds(bundle, 4)
    with pytest.raises(DatasetError, match="class 2 has 3"):
        fold_splits(bundle, 5)
    assert len(fold_splits(bundle, 3)) == 3


def test_folds_are_checked_when_the_search_prepares(tmp_path):
    from graphnas.nas import Search, SearchConfig

    graphs = _graphs(40)
    for g in graphs[:3]:
        g.y = torch.tensor([2])
    torch.save(graphs, tmp_path / "few.pt")
    search = Search(SearchConfig(dataset=str(tmp_path / "few.pt"), run_dir=str(tmp_path / "run"), knowledge="none",
                                 cache_dir=str(tmp_path / "cache"), train=TrainConfig(folds=10)), claim=False)
    with pytest.raises(DatasetError, match="--folds 10 needs 10 graphs of every class; class 2 has 3"):
        search.prepare()


def test_good_data_passes(tmp_path, cache_dir):
    assert _load(tmp_path, _node()).data.num_nodes == 12
    assert load_dataset("triangles", cache_dir=cache_dir).info.task == "graph_regression"  # float targets: no class check
