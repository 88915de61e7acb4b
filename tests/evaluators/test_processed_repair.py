"""A half-written PyG processed/ file (a process killed mid-write) is repaired on the next
load: the cache's processed folder is deleted and processed again (issue 43)."""
from __future__ import annotations

import shutil

import pytest

from graphnas.evaluators import DatasetError, load_dataset
from graphnas.evaluators.datasets import repairing


def _truncate_processed(cache):
    files = [p for p in cache.rglob("processed/*.pt") if "pre_" not in p.name]
    assert files, "nothing was processed"
    for f in files:
        f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    return files


def test_a_truncated_processed_tu_file_is_processed_again(shared_datasets, tmp_path):
    cache = tmp_path / "cache"
    first = load_dataset("mutag", shared_datasets, cache)
    _truncate_processed(cache)
    again = load_dataset("mutag", shared_datasets, cache)
    assert len(again.graphs) == 188 and again.info.num_features == first.info.num_features
    assert again.splits.test.tolist() == first.splits.test.tolist()


def test_a_truncated_processed_file_of_a_dataset_class_is_processed_again(shared_datasets, tmp_path):
    user, cache = tmp_path / "mine", tmp_path / "cache"
    shutil.copytree(shared_datasets / "TUDataset" / "MUTAG" / "raw", user / "MUTAG" / "raw")
    args = {"root": str(user), "name": "MUTAG"}
    load_dataset("torch_geometric.datasets.TUDataset", cache_dir=cache, dataset_args=args)
    _truncate_processed(cache)
    assert len(load_dataset("torch_geometric.datasets.TUDataset", cache_dir=cache, dataset_args=args).graphs) == 188


def test_outside_the_cache_the_error_names_the_folder_to_delete(tmp_path):
    (tmp_path / "data" / "processed").mkdir(parents=True)

    def broken():
        raise RuntimeError("PytorchStreamReader failed reading zip archive")
    with pytest.raises(DatasetError, match=r"dataset 'x': loading .*data failed \(RuntimeError: PytorchStreamReader "
                                           r"failed reading zip archive\); if a file of .*data/processed is half-written, "
                                           r"delete that folder"):
        repairing(broken, tmp_path / "data", tmp_path / "cache", "x")
    assert (tmp_path / "data" / "processed").is_dir()  # not the cache's: left alone
