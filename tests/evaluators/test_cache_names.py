"""Cache and run-directory names come from a slug of the dataset's name, never its path
(issue 43): ``--dataset ../../w2/t.pt`` writes nothing outside the cache or ``runs/``."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch
from torch_geometric.data import Data

from graphnas.evaluators import load_dataset
from graphnas.evaluators.datasets import dataset_slug
from graphnas.nas import SearchConfig


def test_slugs_of_names_classes_and_paths(tmp_path):
    assert dataset_slug("cora") == "cora" and dataset_slug("imdb-binary") == "imdb-binary"
    assert dataset_slug("torch_geometric.datasets.FakeDataset") == "torch_geometric.datasets.FakeDataset"
    digest = hashlib.sha256(str((tmp_path / "w2" / "t.pt").resolve()).encode()).hexdigest()[:8]
    assert dataset_slug(str(tmp_path / "w2" / "t.pt")) == f"t-{digest}"
    assert dataset_slug(str(tmp_path / "w3" / "t.pt")) != f"t-{digest}"  # same name, another file
    assert dataset_slug("../../my data/t w.pt").startswith("t_w-") and "/" not in dataset_slug("../..")


def test_a_relative_path_outside_writes_its_encodings_inside_the_cache(tmp_path, monkeypatch):
    work, data_dir, cache = tmp_path / "a" / "b", tmp_path / "w2", tmp_path / "cache"
    work.mkdir(parents=True)
    data_dir.mkdir()
    n = 10
    torch.save(Data(x=torch.randn(n, 2), edge_index=torch.stack([torch.arange(n), (torch.arange(n) + 1) % n]),
                    y=torch.arange(n) % 2), data_dir / "t.pt")
    monkeypatch.chdir(work)
    load_dataset("../../w2/t.pt", cache_dir=cache, encodings={"rwse": 3}, feature_norms={"row"})
    slug = dataset_slug("../../w2/t.pt")
    written = sorted(str(p.relative_to(cache)) for p in cache.rglob("*.pt"))
    assert [w.split(os.sep)[0] for w in written] == ["encodings", "features"]
    assert all(Path(w).name.startswith(f"{slug}-") for w in written), written
    assert sorted(p.name for p in data_dir.iterdir()) == ["t.pt"] and list(tmp_path.glob("*.pt")) == []


def test_the_run_directory_is_named_by_the_slug():
    run_dir = SearchConfig(dataset="../../w2/t.pt").resolved_run_dir()
    assert run_dir.parent == Path("runs")
    assert run_dir.name.startswith(f"tiny-{dataset_slug('../../w2/t.pt')}-")
    assert SearchConfig(dataset="cora").resolved_run_dir().name.startswith("node-cora-")
