"""Every way graphnas splits a dataset into train, validation and test, in one module.

* :func:`from_masks`: a node task's own masks (Planetoid's public split, a user's graph);
* :func:`stratified_splits`: seeded, class proportions kept (TU datasets, CSL);
* :func:`holdout_splits`: stratified for class labels, seeded random otherwise (a user's
  file or dataset class);
* :func:`fold_splits`: stratified k-fold over the graphs of a graph task, each fold with a
  stratified 10% of its training part as validation (``--folds K``, Xu et al.);
* :func:`scaffold_split`: Bemis-Murcko scaffolds, the MoleculeNet/OGB convention.

Every split is deterministic given its seed, and every :class:`Splits` holds sorted index
tensors into nodes (node tasks) or graphs (graph tasks).
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

if TYPE_CHECKING:
    from graphnas.evaluators.datasets import DatasetBundle


@dataclass(frozen=True)
class Splits:
    """Index tensors into nodes (node tasks) or graphs (graph tasks)."""

    train: Tensor
    val: Tensor
    test: Tensor


def _sorted(*parts) -> Splits:
    return Splits(*(torch.as_tensor(sorted(p), dtype=torch.long) for p in parts))


def from_masks(train_mask: Tensor, val_mask: Tensor, test_mask: Tensor) -> Splits:
    """The nodes each boolean mask selects."""
    idx = torch.arange(train_mask.numel())
    return Splits(*(idx[m.view(-1).bool()] for m in (train_mask, val_mask, test_mask)))


def stratified_splits(y: Tensor, seed: int, val: float = 0.1, test: float = 0.1) -> Splits:
    """Seeded split that keeps the class proportions in train, validation and test."""
    from sklearn.model_selection import train_test_split

    idx = torch.arange(len(y)).numpy()
    rest, test_idx = train_test_split(idx, test_size=test, stratify=y.numpy(), random_state=seed)
    train_idx, val_idx = train_test_split(rest, test_size=val / (1 - test), stratify=y.numpy()[rest],
                                          random_state=seed)
    return _sorted(train_idx, val_idx, test_idx)


def random_splits(n: int, seed: int = 0) -> Splits:
    """Seeded random 80/10/10 split, at least one item each for validation and test."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_val = n_test = max(1, n // 10)
    return Splits(*(torch.sort(p).values for p in (perm[n_val + n_test:], perm[:n_val], perm[n_val:n_val + n_test])))


def holdout_splits(y: Tensor, seed: int = 0) -> Splits:
    """Stratified 80/10/10 for class labels; seeded random for regression targets or for
    classes too small to stratify."""
    if not y.is_floating_point():
        try:
            return stratified_splits(y, seed=seed)
        except ValueError:
            pass
    return random_splits(len(y), seed)


def fold_splits(bundle: "DatasetBundle", folds: int, seed: int = 0) -> list[Splits]:
    """Stratified k-fold over the graphs: fold i tests on the i-th part; a stratified 10% of
    the rest is its validation set (selection never sees the test part). Regression and
    multi-label tasks: plain k-fold."""
    from sklearn.model_selection import StratifiedKFold, train_test_split

    if not bundle.info.graph_level:
        raise ValueError("--folds applies to graph-level datasets (the TU convention); node tasks have one graph")
    y = _strata(bundle, range(len(bundle.graphs)))
    check_folds(bundle, folds)
    out = []
    for rest, test in StratifiedKFold(folds, shuffle=True, random_state=seed).split(np.zeros(len(y)), y):
        train, val = train_test_split(rest, test_size=0.1, stratify=y[rest], random_state=seed)
        out.append(_sorted(train, val, test))
    return out


def check_folds(bundle: "DatasetBundle", folds: int) -> None:
    """Refuse, in one line, more folds than the smallest class has graphs (sklearn would only
    warn, and a fold would lack the class); before the first trial (the evaluator's prepare)."""
    from graphnas.evaluators.checks import check_folds as check  # it imports evaluators.datasets, which imports this

    if folds > 1 and bundle.info.graph_level:
        check(bundle.name, _strata(bundle, range(len(bundle.graphs))), folds)


def confirmation_folds(bundle: "DatasetBundle", folds: int, seed: int = 0) -> list[Splits]:
    """Stratified k-fold over the graphs a holdout search selects with (its training and
    validation parts): fold i trains on the other parts and validates on part i; every fold
    keeps the holdout test part as its test, only reported. A search's confirmation ranks
    its finalists by the folds' mean validation (``--confirm-folds K``): on a few hundred
    graphs one validation part of a hundred cannot tell them apart, and all K parts
    together are every graph it may select with."""
    from sklearn.model_selection import StratifiedKFold

    rest = torch.cat([bundle.splits.train, bundle.splits.val]).sort().values.numpy()
    y = _strata(bundle, rest)
    test = bundle.splits.test.numpy()
    return [_sorted(rest[train], rest[val], test)
            for train, val in StratifiedKFold(folds, shuffle=True, random_state=seed).split(np.zeros(len(y)), y)]


def _strata(bundle: "DatasetBundle", graphs) -> np.ndarray:
    """What the folds stratify on, per graph in ``graphs``: its class, or one stratum for
    regression and multi-label tasks (plain k-fold)."""
    if bundle.info.task != "graph_classification":
        return np.zeros(len(graphs), dtype=int)
    return torch.cat([bundle.graphs[int(i)].y.view(-1)[:1] for i in graphs]).numpy()


def scaffold_split(smiles: list[str], train: float = 0.8, val: float = 0.1) -> Splits:
    """Bemis-Murcko scaffold split (the MoleculeNet/OGB convention): molecules grouped by
    scaffold, largest groups first into train, then validation, then test, so test
    scaffolds are unseen in training. Deterministic; needs rdkit."""
    from rdkit import RDLogger
    from rdkit.Chem.Scaffolds import MurckoScaffold

    RDLogger.DisableLog("rdApp.*")
    groups: dict[str, list[int]] = defaultdict(list)
    for i, s in enumerate(smiles):
        try:
            key = MurckoScaffold.MurckoScaffoldSmiles(smiles=s, includeChirality=True)
        except Exception:  # unparsable by this route: its own group
            key = f"#{i}"
        groups[key].append(i)
    # DeepChem's order: larger groups first, ties by the later first molecule
    ordered = sorted(groups.values(), key=lambda g: (len(g), g[0]), reverse=True)
    n, parts = len(smiles), ([], [], [])
    for group in ordered:
        target = 0 if len(parts[0]) + len(group) <= train * n else (
            1 if len(parts[1]) + len(group) <= val * n else 2)
        parts[target].extend(group)
    return _sorted(*parts)
