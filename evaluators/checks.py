"""Bad data, found once when a dataset is loaded (before its first trial), each problem one
line (:class:`DatasetError`) naming the dataset and what is wrong, instead of a NaN loss
or an index error in every trial. Each check looks at one graph, or at all of them, and
returns the problem in words or ``None``; the lists below are what ``check_data`` runs."""
from __future__ import annotations

from typing import Callable, Optional, Union

import numpy as np
import torch
from torch import Tensor
from torch_geometric.data import Data

from graphnas.evaluators.datasets import DatasetError

CLASS_TASKS = ("node_classification", "graph_classification")


def finite_features(g: Data) -> Optional[str]:
    if g.x is None or not g.x.is_floating_point():
        return None
    bad = ~torch.isfinite(g.x)
    if not bad.any():
        return None
    return f"node features hold NaN or inf ({int(bad.sum())} values; the first at node {int(bad.nonzero()[0, 0])})"


def edges_in_range(g: Data) -> Optional[str]:
    ei = g.edge_index
    if ei is None or ei.numel() == 0:
        return None
    if ei.dim() != 2 or ei.size(0) != 2:
        return f"edge_index has shape {tuple(ei.shape)}; expected [2, num_edges]"
    low, high = int(ei.min()), int(ei.max())
    if low < 0:
        return f"edge_index holds node {low}: node ids start at 0"
    if high >= g.num_nodes:
        return f"edge_index holds node {high}, past the last of its {g.num_nodes} nodes (ids 0 to {g.num_nodes - 1})"
    return None


def class_label_problem(y: Tensor) -> Optional[str]:
    """Class labels are whole numbers from 0, of at least two classes."""
    y = y.reshape(-1)
    if y.is_floating_point():
        frac = y[~torch.isfinite(y) | (y != y.round())]
        if frac.numel():
            return (f"class labels must be whole numbers, found {float(frac[0]):g} (float targets are regression: "
                    "--task graph_regression)")
    if y.numel() and int(y.min()) < 0:
        return f"class labels must be 0 or more, found {int(y.min())}"
    if y.numel() and int(y.max()) == int(y.min()):
        return f"every label is class {int(y.min())}: classification needs two classes or more"
    return None


def labels_per_node(data: Data) -> Optional[str]:
    if data.y is not None and data.y.size(0) < data.num_nodes:
        return f"y holds {data.y.size(0)} labels for {data.num_nodes} nodes: one per node expected"
    return None


def same_widths(graphs: list[Data]) -> Optional[str]:
    widths = [g.x.size(1) if g.x is not None and g.x.dim() == 2 else 0 for g in graphs]
    other = next((i for i, w in enumerate(widths) if w != widths[0]), None)
    if other is None:
        return None
    return (f"graph {other} has {widths[other]} node features, graph 0 has {widths[0]}: every graph needs the same "
            "width")


PER_GRAPH: tuple[Callable[[Data], Optional[str]], ...] = (finite_features, edges_in_range)


def check_data(name: str, data: Union[Data, list[Data]], task: str) -> None:
    """Every check of ``data`` for ``task``; the first problem is raised."""
    one = isinstance(data, Data)
    graphs = [data] if one else data
    for check in PER_GRAPH:
        for i, g in enumerate(graphs):
            problem = check(g)
            if problem:
                raise DatasetError(f"dataset {name!r}: {'' if one else f'graph {i}: '}{problem}")
    problem = labels_per_node(data) if one else same_widths(graphs)
    if problem is None and task in CLASS_TASKS:
        problem = class_label_problem(data.y if one else torch.cat([g.y.reshape(-1) for g in graphs]))
    if problem:
        raise DatasetError(f"dataset {name!r}: {problem}")


def check_folds(name: str, labels: np.ndarray, folds: int) -> None:
    """Stratified k-fold puts every class in every fold: each needs ``folds`` graphs."""
    classes, counts = np.unique(labels, return_counts=True)
    if folds > 1 and len(counts) and counts.min() < folds:
        smallest = int(counts.argmin())
        raise DatasetError(f"dataset {name!r}: --folds {folds} needs {folds} graphs of every class; class "
                           f"{classes[smallest]} has {counts[smallest]}")
