"""The six heterophily graphs (issue 42): counts from heterophily/README.md, their 10 fixed
splits, and the split setting."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch_geometric.utils import is_undirected
from typer.testing import CliRunner

from graphnas.cli import app
from graphnas.evaluators import DatasetError, load_dataset
from graphnas.evaluators.datasets import DATASETS, over_splits

# name: nodes, edges stored once, features, classes, split 0 train/val/test (the README's table)
TABLE = {
    "chameleon_filtered": (890, 8854, 2325, 5, (409, 287, 194)),
    "squirrel_filtered": (2223, 46998, 2089, 5, (1053, 718, 452)),
    "actor": (7600, 26659, 932, 5, (3648, 2432, 1520)),
    "texas": (183, 279, 1703, 5, (87, 59, 37)),
    "wisconsin": (251, 450, 1703, 5, (120, 80, 51)),
    "cornell": (183, 277, 1703, 5, (87, 59, 37)),
}


@pytest.mark.parametrize("name", list(TABLE))
def test_each_graph_loads_with_the_counts_of_the_readme(name, shared_datasets, cache_dir):
    nodes, edges, features, classes, sizes = TABLE[name]
    bundle = load_dataset(name, shared_datasets, cache_dir)
    data = bundle.data
    assert (data.num_nodes, data.num_features, bundle.info.num_outputs) == (nodes, features, classes)
    assert data.num_edges == 2 * edges and is_undirected(data.edge_index)  # both directions, none lost
    assert bundle.info.task == "node_classification" == DATASETS.entry(name).capabilities["task"]
    assert len(bundle.split_sets) == 10
    assert (len(bundle.splits.train), len(bundle.splits.val), len(bundle.splits.test)) == sizes


def test_split_k_is_the_files_masks(shared_datasets, cache_dir):
    arrays = np.load(shared_datasets / "heterophily" / "wisconsin.npz")
    bundle = load_dataset("wisconsin", shared_datasets, cache_dir, split=7)
    for part in ("train", "val", "test"):
        assert getattr(bundle.splits, part).tolist() == np.flatnonzero(arrays[f"{part}_masks"][7]).tolist()
    assert not torch.equal(bundle.splits.train, load_dataset("wisconsin", shared_datasets, cache_dir).splits.train)
    assert [b.splits.test.tolist() for b in over_splits(bundle, 3, first=2)] == \
        [np.flatnonzero(arrays["test_masks"][k]).tolist() for k in (2, 3, 4)]


def test_a_split_out_of_range_is_one_clear_error(shared_datasets, cache_dir):
    with pytest.raises(DatasetError, match=r"dataset 'texas': split 10 out of range; it has 10 fixed splits, 0 to 9"):
        load_dataset("texas", shared_datasets, cache_dir, split=10)
    with pytest.raises(DatasetError, match=r"dataset 'synthetic' has one split: split 2 applies to datasets with fixed"):
        load_dataset("synthetic", cache_dir=cache_dir, split=2)
    bundle = load_dataset("texas", shared_datasets, cache_dir)
    with pytest.raises(DatasetError, match=r"dataset 'texas' has 10 fixed splits: --splits 4 from split 8 asks for "
                                           r"splits up to 11"):
        over_splits(bundle, 4, first=8)


def test_a_missing_file_names_where_it_was_looked_for(tmp_path, cache_dir):
    with pytest.raises(DatasetError, match=r"dataset 'actor': .*heterophily/actor.npz not found"):
        load_dataset("actor", tmp_path, cache_dir)


def test_train_reports_the_mean_over_splits(shared_datasets, tmp_path):
    result = CliRunner().invoke(app, ["train", "zoo:gcn", "--dataset", "texas", "--splits", "3", "--seeds", "1",
                                      "--epochs", "2", "--device", "cpu", "--data-root", str(shared_datasets),
                                      "--cache-dir", str(tmp_path), "-o", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "on texas, 1 seeds x 3 splits (mean ± std)" in " ".join(result.output.split())  # the table wraps its title
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["split0", "split1", "split2"]
    bad = CliRunner().invoke(app, ["train", "zoo:gcn", "--dataset", "texas", "--splits", "11", "--epochs", "1",
                                   "--data-root", str(shared_datasets), "--cache-dir", str(tmp_path)])
    assert bad.exit_code == 2 and "--splits 11 from split 0 asks for splits up to 10" in bad.output


def test_a_search_trains_on_its_split_setting(shared_datasets, tmp_path):
    from graphnas.nas import Search, SearchConfig

    arrays = np.load(shared_datasets / "heterophily" / "cornell.npz")
    config = SearchConfig(dataset="cornell", data_root=str(shared_datasets), cache_dir=str(tmp_path), knowledge="none",
                          run_dir=str(tmp_path / "run"), train={"split": 4})
    search = Search(config, claim=False)
    assert search.config.space == "node"
    assert search.prepare().bundle.splits.val.tolist() == np.flatnonzero(arrays["val_masks"][4]).tolist()
