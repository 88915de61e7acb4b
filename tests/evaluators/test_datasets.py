"""Datasets: real Cora from the shared folder, the embedded synthetic set, caches, errors."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from graphnas.evaluators.datasets import DatasetError, contextual_sbm, load_dataset

REPO = Path(__file__).resolve().parents[2]


def test_cora_from_shared_without_writing_there(shared_datasets, cache_dir):
    before = sorted(p.name for p in (shared_datasets / "Planetoid" / "Cora").iterdir())
    bundle = load_dataset("cora", shared_datasets, cache_dir)
    assert bundle.data.num_nodes == 2708 and bundle.data.edge_index.size(1) == 10556
    assert bundle.info.num_features == 1433 and bundle.info.num_outputs == 7
    assert [len(s) for s in (bundle.splits.train, bundle.splits.val, bundle.splits.test)] == [140, 500, 1000]
    assert sorted(p.name for p in (shared_datasets / "Planetoid" / "Cora").iterdir()) == before  # no processed/
    assert sum(bundle.info.deg) == 2708


def test_synthetic_is_deterministic_and_split(cache_dir):
    a, b = load_dataset("synthetic", cache_dir=cache_dir), load_dataset("synthetic", cache_dir=cache_dir)
    assert torch.equal(a.data.x, b.data.x) and torch.equal(a.data.edge_index, b.data.edge_index)
    s = a.splits
    everything = torch.cat([s.train, s.val, s.test])
    assert len(everything) == a.data.num_nodes == len(set(everything.tolist()))
    assert (len(s.train), len(s.val)) == (120, 120)
    homophily = (a.data.y[a.data.edge_index[0]] == a.data.y[a.data.edge_index[1]]).float().mean()
    assert 0.65 < homophily < 0.85
    other, _ = contextual_sbm(seed=1)
    assert not torch.equal(other.x, a.data.x)


def test_unknown_dataset_lists_known_and_root(shared_datasets, cache_dir):
    with pytest.raises(DatasetError, match=r"unknown dataset .coraa.; known datasets: actor, bace, bbbp, "
                                           r"chameleon_filtered, citeseer, clintox, cora, cornell, csl, .*synthetic, texas, "
                                           r"tox21, triangles, wisconsin, a .pt file of Data objects, or a dataset class "
                                           r"by dotted path \(data root searched: .*shared/datasets\)"):
        load_dataset("coraa", shared_datasets, cache_dir)


def test_missing_raw_files_name_the_path(shared_datasets, cache_dir):
    with pytest.raises(DatasetError, match=r"raw files not found in .*Planetoid/PubMed/raw"):
        load_dataset("pubmed", shared_datasets, cache_dir)


def test_encodings_are_cached_on_disk(cache_dir, monkeypatch):
    from graphnas.search_spaces.operators import ENCODING

    bundle = load_dataset("synthetic", cache_dir=cache_dir, encodings={"rwse": 6, "degree": 4})
    assert bundle.data.rwse.shape == (600, 6) and bundle.data.degree_enc.shape == (600, 4)
    calls = []
    monkeypatch.setattr(ENCODING.get("rwse"), "compute", staticmethod(lambda d, k: calls.append(k)))
    again = load_dataset("synthetic", cache_dir=cache_dir, encodings={"rwse": 6})
    assert calls == [] and torch.equal(again.data.rwse, bundle.data.rwse)
    assert len(list((cache_dir / "encodings").glob("synthetic-rwse-k6-*.pt"))) == 1


def test_data_root_from_environment(monkeypatch, shared_datasets, cache_dir):
    monkeypatch.setenv("GRAPHNAS_DATA", str(shared_datasets))
    assert load_dataset("citeseer", cache_dir=cache_dir).data.num_nodes == 3327


def test_tu_dataset_graph_classification(shared_datasets, cache_dir):
    bundle = load_dataset("mutag", shared_datasets, cache_dir, encodings={"rwse": 4})
    assert len(bundle.graphs) == 188 and bundle.info.task == "graph_classification"
    assert (bundle.info.num_features, bundle.info.num_outputs, bundle.info.edge_dim) == (7, 2, 4)
    sizes = [len(s) for s in (bundle.splits.train, bundle.splits.val, bundle.splits.test)]
    assert sizes == [150, 19, 19] and len(set(torch.cat(list(bundle.splits.__dict__.values())).tolist())) == 188
    labels = torch.cat([g.y for g in bundle.graphs])
    for split in (bundle.splits.train, bundle.splits.test):  # stratified: class shares kept within 6 points
        assert abs(labels[split].float().mean() - labels.float().mean()) < 0.06
    assert all(g.rwse.shape == (g.num_nodes, 4) for g in bundle.graphs)
    assert bundle.data.num_graphs == 32  # the sample batch
    assert not (shared_datasets / "TUDataset" / "MUTAG" / "processed").exists()


def test_triangles_counts_triangles(cache_dir):
    from itertools import combinations

    bundle = load_dataset("triangles", cache_dir=cache_dir)
    assert bundle.info.task == "graph_regression" and bundle.metric == "mae" and bundle.info.num_outputs == 1
    assert [len(s) for s in (bundle.splits.train, bundle.splits.val, bundle.splits.test)] == [480, 60, 60]
    for g in bundle.graphs[:5]:  # brute force over node triples
        edges = set(map(tuple, g.edge_index.T.tolist()))
        count = sum(1 for a, b, c in combinations(range(g.num_nodes), 3)
                    if (a, b) in edges and (b, c) in edges and (a, c) in edges)
        assert g.y.item() == count


def test_graphs_without_node_features_get_one_hot_degree_and_say_so(shared_datasets, cache_dir):
    from graphnas.evaluators.datasets import MAX_ONE_HOT_DEGREE

    imdb = load_dataset("imdb-binary", shared_datasets, cache_dir)
    g = imdb.graphs[0]
    assert g.x.shape == (g.num_nodes, MAX_ONE_HOT_DEGREE + 1) and torch.all(g.x.sum(1) == 1)
    deg = torch.bincount(g.edge_index[1], minlength=g.num_nodes).clamp(max=MAX_ONE_HOT_DEGREE)
    assert torch.equal(g.x.argmax(1), deg)
    assert imdb.info.num_features == MAX_ONE_HOT_DEGREE + 1 and "one-hot degree" in imdb.info.node_features
    assert load_dataset("mutag", shared_datasets, cache_dir).info.node_features.startswith("7 one-hot node labels")


def test_a_cached_copy_is_refreshed_when_its_source_changes(shared_datasets, tmp_path):
    root, cache = tmp_path / "root", tmp_path / "cache"
    raw = root / "Planetoid" / "Cora" / "raw"
    raw.mkdir(parents=True)  # raw/ exists, its files are not there yet
    with pytest.raises(DatasetError, match="PyG could not load"):
        load_dataset("cora", root, cache)
    for f in (shared_datasets / "Planetoid" / "Cora" / "raw").iterdir():
        shutil.copy(f, raw / f.name)
    assert load_dataset("cora", root, cache).data.num_nodes == 2708  # the empty copy is not reused


_LOAD = ("import sys, torch; from evaluators.datasets import load_dataset; "
         "b = load_dataset('cora', sys.argv[1], sys.argv[2]); print(int(b.data.x.sum()), b.data.num_edges)")


@pytest.mark.slow
def test_processes_sharing_a_fresh_cache_all_load_the_dataset(shared_datasets, tmp_path):
    # PyG writes processed/ in place: without the cache's lock, one process read another's
    # half-written file (PytorchStreamReader failed reading zip archive)
    procs = [subprocess.Popen([sys.executable, "-c", _LOAD, str(shared_datasets), str(tmp_path / "cache")],
                              cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err[-500:] for _, err in outs]
    assert len({out for out, _ in outs}) == 1 and outs[0][0].split()[1] == "10556"


def test_tu_datasets_use_their_continuous_node_attributes_too(shared_datasets, cache_dir):
    enzymes = load_dataset("enzymes", shared_datasets, cache_dir)
    assert enzymes.info.num_features == 18 + 3  # attributes, then the one-hot node labels
    assert enzymes.info.node_features.startswith("18 continuous node attributes and 3 one-hot node labels")
    assert not torch.all(enzymes.graphs[0].x[:, :18] == enzymes.graphs[0].x[:, :18].round())  # real-valued
    mutag = load_dataset("mutag", shared_datasets, cache_dir)
    assert mutag.info.num_features == 7 and mutag.info.node_features.startswith("7 one-hot node labels")
