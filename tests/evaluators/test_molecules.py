"""Molecular datasets: scaffold splits, multi-label targets and metrics, peptides-func."""
from __future__ import annotations

import gzip
import math
import pickle

import pytest
import torch

pytest.importorskip("rdkit", reason="molecular datasets need the optional extra graphnas[chem]")

from graphnas.evaluators import TrainConfig, evaluate, get_metric, load_dataset  # noqa: E402
from graphnas.evaluators.splits import scaffold_split  # noqa: E402
from graphnas.evaluators.training import task_loss  # noqa: E402
from graphnas.search_spaces import Architecture, LayerArch  # noqa: E402


def test_scaffold_split_keeps_each_scaffold_in_one_part():
    from rdkit.Chem.Scaffolds import MurckoScaffold

    smiles = ["c1ccccc1CC", "c1ccccc1CCC", "c1ccccc1O", "C1CCCCC1N", "C1CCCCC1C", "CCO", "CCN", "c1ccncc1C",
              "c1ccncc1CC", "c1ccccc1CCCC"]
    splits = scaffold_split(smiles, train=0.6, val=0.2)
    part = {i: name for name in ("train", "val", "test") for i in getattr(splits, name).tolist()}
    assert sorted(part) == list(range(len(smiles)))
    by_scaffold = {}
    for i, s in enumerate(smiles):
        by_scaffold.setdefault(MurckoScaffold.MurckoScaffoldSmiles(smiles=s, includeChirality=True), set()).add(part[i])
    assert all(len(parts) == 1 for parts in by_scaffold.values())
    # largest group first (4 benzenes), then equal-sized groups by later first molecule (DeepChem's
    # order): the pyridines fill train to 60%, the acyclic pair goes to val, the cyclohexanes to test
    assert splits.train.tolist() == [0, 1, 2, 7, 8, 9]
    assert splits.val.tolist() == [5, 6] and splits.test.tolist() == [3, 4]
    assert scaffold_split(smiles, 0.6, 0.2).test.tolist() == splits.test.tolist()  # deterministic


def test_multilabel_metric_and_loss_skip_missing_labels():
    y = torch.tensor([[1.0, math.nan], [0.0, 1.0], [1.0, 0.0], [0.0, math.nan]])
    logits = torch.tensor([[2.0, 0.0], [-1.0, 3.0], [0.5, -2.0], [-3.0, 9.0]])
    # label 0: perfectly ranked (AUC 1); label 1: items 1 (pos) and 2 (neg) ranked right (AUC 1)
    assert get_metric("roc_auc")(logits, y) == pytest.approx(1.0)
    logits[1, 1] = -5.0
    assert get_metric("roc_auc")(logits, y) == pytest.approx(0.5)  # label 1 now inverted: (1 + 0) / 2
    loss = task_loss(logits, y, "graph_multilabel")
    present = ~torch.isnan(y)
    expected = torch.nn.functional.binary_cross_entropy_with_logits(logits[present], y[present])
    assert torch.isfinite(loss) and loss.item() == pytest.approx(expected.item())


@pytest.mark.slow
def test_moleculenet_bbbp_trains_with_embedded_atoms(shared_datasets, cache_dir):
    bundle = load_dataset("bbbp", shared_datasets, cache_dir)
    assert bundle.info.task == "graph_multilabel" and bundle.metric == "roc_auc" and len(bundle.graphs) == 2039
    assert bundle.info.x_cardinalities[0] == 119 and bundle.info.edge_cardinalities[0] == 22
    assert bundle.data.x.dtype == torch.long
    sizes = [len(getattr(bundle.splits, p)) for p in ("train", "val", "test")]
    assert sizes == [1631, 203, 205]
    arch = Architecture(space="t", hidden_dim=32, num_layers=2, dropout=0.0, lr=1e-3, weight_decay=0.0,
                        layers=tuple(LayerArch(mpnn="gine", norm="batch") for _ in range(2)))
    result = evaluate(arch, bundle, TrainConfig(epochs=3, patience=3, latency_repeats=1))
    assert 0.5 < result.val_metric < 1.0 and result.metric == "roc_auc"


def test_peptides_func_reads_the_original_release(shared_datasets, tmp_path, cache_dir):
    src = shared_datasets / "LRGB" / "peptides-functional"
    with gzip.open(src / "raw" / "peptide_multi_class_dataset.csv.gz", "rt") as f:
        head = [next(f) for _ in range(31)]  # header + 30 peptides: seconds, not the minute of all 15,535
    root = tmp_path / "root" / "LRGB" / "peptides-functional"
    (root / "raw").mkdir(parents=True)
    with gzip.open(root / "raw" / "peptide_multi_class_dataset.csv.gz", "wt") as f:
        f.writelines(head)
    with open(root / "splits_random_stratified_peptide.pickle", "wb") as f:
        pickle.dump({"train": list(range(20)), "val": list(range(20, 25)), "test": list(range(25, 30))}, f)
    bundle = load_dataset("peptides-func", tmp_path / "root", tmp_path / "cache")
    assert len(bundle.graphs) == 30 and bundle.info.num_outputs == 10
    assert bundle.metric == "average_precision" and bundle.info.task == "graph_multilabel"
    assert bundle.graphs[0].num_nodes > 50  # peptides are large molecules
    assert set(bundle.data.y.unique().tolist()) <= {0.0, 1.0}
