"""Any dataset is first-class (issue 42): a .pt file's or a dataset class's task is read from
its data, and it gets the space and zoo references a registered dataset of that task gets."""
from __future__ import annotations

import pytest
import torch
from torch_geometric.data import Data

from graphnas.evaluators import DatasetError, load_dataset
from graphnas.evaluators.datasets import TaskInference, infer_task, resolve_task
from graphnas.nas import Search, SearchConfig


def _node_graph(n: int = 30, float_labels: bool = False) -> Data:
    gen = torch.Generator().manual_seed(0)
    y = torch.arange(n) % 3
    return Data(x=torch.randn(n, 4, generator=gen), edge_index=torch.randint(0, n, (2, 3 * n), generator=gen),
                y=y.float() if float_labels else y)


def _graphs(n: int = 40, float_labels: bool = False) -> list[Data]:
    gen = torch.Generator().manual_seed(1)
    return [Data(x=torch.randn(8, 4, generator=gen), edge_index=torch.randint(0, 8, (2, 20), generator=gen),
                 y=torch.tensor([float(i % 2) if float_labels else i % 2])) for i in range(n)]


def _search(dataset: str, tmp_path, **settings) -> Search:
    return Search(SearchConfig(dataset=dataset, run_dir=str(tmp_path / "run"), cache_dir=str(tmp_path / "cache"),
                               knowledge="none", **settings), claim=False)


def test_a_node_file_gets_the_node_space_and_the_node_references(tmp_path):
    torch.save(_node_graph(), tmp_path / "graph.pt")
    search = _search(str(tmp_path / "graph.pt"), tmp_path)
    assert search.task == TaskInference("node_classification", "inferred from graph.pt: one Data, integer labels")
    assert search.config.space == "node" and search.config.task == "node_classification"  # recorded for the run
    assert [e.ref for e in search.references] == [e.ref for e in _search("cora", tmp_path).references]
    assert {"zoo:gcn", "zoo:gat"} <= {e.ref for e in search.references}


def test_a_graph_file_gets_the_graph_space_and_gin(tmp_path):
    torch.save(_graphs(), tmp_path / "graphs.pt")
    search = _search(str(tmp_path / "graphs.pt"), tmp_path)
    assert search.task == TaskInference("graph_classification",
                                        "inferred from graphs.pt: a list of 40 Data, integer labels")
    assert search.config.space == "graph" and [e.ref for e in search.references] == ["zoo:gin"]


def test_a_dataset_class_is_inferred_too(tmp_path):
    search = _search("torch_geometric.datasets.FakeDataset", tmp_path,
                     dataset_args={"num_graphs": 20, "avg_num_nodes": 8, "num_channels": 3, "num_classes": 2})
    assert search.task.task == "graph_classification" and search.config.space == "graph"


def test_float_targets_are_regression_and_task_overrides(tmp_path, cache_dir):
    path = tmp_path / "targets.pt"
    torch.save(_graphs(float_labels=True), path)
    assert infer_task(_graphs(float_labels=True), "t.pt").task == "graph_regression"
    search = _search(str(path), tmp_path)
    assert search.config.space == "tiny" and search.references == []  # no zoo design for regression
    bundle = load_dataset(str(path), cache_dir=cache_dir)
    assert bundle.info.task == "graph_regression" and bundle.metric == "mae" and bundle.graphs[0].y.shape == (1, 1)
    # whole-valued float labels read as classes when asked
    forced = load_dataset(str(path), cache_dir=cache_dir, task="graph_classification")
    assert forced.info.task == "graph_classification" and forced.info.num_outputs == 2
    assert forced.graphs[0].y.dtype == torch.long
    assert _search(str(path), tmp_path, task="graph_classification").config.space == "graph"


def test_wrong_or_unknown_tasks_are_one_line(tmp_path, cache_dir):
    torch.save(_graphs(), tmp_path / "graphs.pt")
    torch.save(_node_graph(float_labels=True), tmp_path / "floats.pt")
    with pytest.raises(DatasetError, match=r"graphs.pt: task node_classification needs one Data, the data is a "
                                           r"list of 40 Data"):
        load_dataset(str(tmp_path / "graphs.pt"), cache_dir=cache_dir, task="node_classification")
    with pytest.raises(DatasetError, match=r"floats.pt: one Data with float labels is node regression"):
        resolve_task(str(tmp_path / "floats.pt"), cache_dir=cache_dir)
    with pytest.raises(DatasetError, match=r"task 'node_regression': expected one of node_classification, "):
        resolve_task("cora", "node_regression")
    with pytest.raises(DatasetError, match=r"dataset 'cora' is node_classification \(registered\): --task "
                                           r"graph_regression applies to .pt files"):
        load_dataset("cora", cache_dir=cache_dir, task="graph_regression")


def test_registered_and_table_names_need_no_load():
    assert resolve_task("mutag") == TaskInference("graph_classification", "declared by dataset mutag")
    assert resolve_task("triangles") == TaskInference("graph_regression", "declared by dataset triangles")
    assert resolve_task("photo") is None  # a table's name


def test_a_dataset_name_in_the_wrong_case_suggests_the_registered_one(cache_dir):
    for given, meant in (("Cora", "cora"), ("MUTAG", "mutag"), ("chameleon", "chameleon_filtered")):
        with pytest.raises(DatasetError, match=rf"unknown dataset '{given}'; known datasets: .*; did you mean '{meant}'\?$"):
            load_dataset(given, cache_dir=cache_dir)
    with pytest.raises(DatasetError, match=r"unknown dataset 'qwerty'; known datasets: actor, .*searched: [^;]*\)$"):
        load_dataset("qwerty", cache_dir=cache_dir)
