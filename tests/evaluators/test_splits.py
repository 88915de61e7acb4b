"""evaluators.splits: every split in one module; data sources register themselves."""
from __future__ import annotations

import torch
from torch_geometric.data import Data

from graphnas.evaluators.datasets import DATA_SOURCES, DataSource, Loaded, load_dataset
from graphnas.evaluators.splits import from_masks, holdout_splits, random_splits, stratified_splits


def _partition(splits, n):
    parts = [splits.train.tolist(), splits.val.tolist(), splits.test.tolist()]
    assert all(p == sorted(p) for p in parts)
    assert sorted(sum(parts, [])) == list(range(n))
    return [len(p) for p in parts]


def test_holdout_is_stratified_for_labels_and_random_for_targets_or_tiny_classes():
    y = torch.tensor([0] * 50 + [1] * 30)
    split = holdout_splits(y)
    assert _partition(split, 80) == [64, 8, 8]
    assert split.test.tolist() == stratified_splits(y, seed=0).test.tolist()
    assert (y[split.test] == 1).sum() == 3  # 3 of 8, as 30 of 80
    targets = torch.rand(30)
    assert _partition(holdout_splits(targets), 30) == [24, 3, 3]
    assert holdout_splits(targets).val.tolist() == random_splits(30).val.tolist()
    singleton = torch.tensor([0] * 20 + [1])  # a class of one cannot be stratified
    assert _partition(holdout_splits(singleton), 21) == [17, 2, 2]


def test_masks_select_their_nodes():
    masks = [torch.tensor([1, 0, 0, 1]), torch.tensor([0, 1, 0, 0]), torch.tensor([0, 0, 1, 0])]
    split = from_masks(*masks)
    assert (split.train.tolist(), split.val.tolist(), split.test.tolist()) == ([0, 3], [1], [2])


def test_a_data_source_registers_itself_and_the_sources_do_not_overlap(tmp_path):
    assert {"file", "class"} <= set(DATA_SOURCES.names())
    for name, kind in (("graphs.pt", "file"), ("torch_geometric.datasets.FakeDataset", "class"), ("cora", None)):
        assert [e.name for e in DATA_SOURCES if e.factory.matches(name)] == ([kind] if kind else [])

    def ring(name, kwargs, root, cache_dir, task):
        n = int(kwargs.get("n", 12))
        edge_index = torch.stack([torch.arange(n), (torch.arange(n) + 1) % n])
        data = Data(x=torch.eye(n), edge_index=torch.cat([edge_index, edge_index.flip(0)], 1), y=torch.arange(n) % 2)
        return Loaded(data, holdout_splits(data.y))

    DATA_SOURCES.register("ring-test", "rings, for this test")(DataSource(lambda s: s.startswith("ring:"), ring))
    try:
        bundle = load_dataset("ring:", cache_dir=tmp_path, dataset_args={"n": 20})
        assert bundle.data.num_nodes == 20 and bundle.info.num_outputs == 2 and len(bundle.splits.test) == 2
    finally:
        DATA_SOURCES._entries.pop("ring-test")
