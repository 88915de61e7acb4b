"""A dataset class by dotted path gets its root from --data-root or the cache, and never
writes into a user's folder (issue 46): its raw files are copied into the cache and
processed there."""
from __future__ import annotations

import shutil

from graphnas.evaluators import load_dataset
from graphnas.evaluators.external import _folder_name

TU = "torch_geometric.datasets.TUDataset"


def _user_folder(shared_datasets, tmp_path):
    user = tmp_path / "my-data"
    shutil.copytree(shared_datasets / "TUDataset" / "MUTAG" / "raw", user / "TUDataset" / "MUTAG" / "raw")
    return user


def _processed(folder):
    return [p for p in folder.rglob("processed")]


def test_a_root_argument_outside_the_cache_is_copied_and_left_untouched(shared_datasets, tmp_path):
    user, cache = _user_folder(shared_datasets, tmp_path), tmp_path / "cache"
    before = sorted(str(p.relative_to(user)) for p in user.rglob("*"))
    args = {"root": str(user / "TUDataset"), "name": "MUTAG"}
    bundle = load_dataset(TU, cache_dir=cache, dataset_args=args)
    assert len(bundle.graphs) == 188 and bundle.info.task == "graph_classification"
    assert sorted(str(p.relative_to(user)) for p in user.rglob("*")) == before and _processed(user) == []
    assert [p.parent.name for p in _processed(cache / "prepared")] == ["MUTAG"]
    assert len(load_dataset(TU, cache_dir=cache, dataset_args=args).graphs) == 188  # the copy is reused


def test_the_data_root_gives_the_class_its_folder(shared_datasets, tmp_path):
    user, cache = _user_folder(shared_datasets, tmp_path), tmp_path / "cache"
    # offline, PyG could only find MUTAG in the data root's TUDataset/ folder (else it downloads)
    bundle = load_dataset(TU, data_root=user, cache_dir=cache, dataset_args={"name": "MUTAG"})
    assert len(bundle.graphs) == 188 and _processed(user) == []


def test_a_root_inside_the_cache_is_used_in_place(shared_datasets, tmp_path):
    cache = tmp_path / "cache"
    inner = _user_folder(shared_datasets, cache)  # a folder of the cache itself
    load_dataset(TU, cache_dir=cache, dataset_args={"root": str(inner / "TUDataset"), "name": "MUTAG"})
    assert [p.parent.name for p in _processed(inner)] == ["MUTAG"] and not (cache / "prepared").exists()


def test_folder_names_of_arguments_stay_one_folder():
    assert _folder_name("FakeDataset", {"num_graphs": 40}) == "FakeDataset-num_graphs=40"
    odd = _folder_name("Mine", {"path": "../../etc"})
    assert "/" not in odd and odd.startswith("Mine-path=.._.._etc-")
