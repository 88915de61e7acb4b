"""Datasets not in the registry: a user's own ``torch.save`` file, or any dataset class
named by its dotted path (``torch_geometric.datasets.FakeDataset``) with keyword
arguments. Both become the registry's shape: one graph with node splits (a node task) or
a list of graphs with graph splits (a graph task)."""
from __future__ import annotations

import importlib
import inspect
from pathlib import Path
from typing import Any, Union

import torch
from torch_geometric.data import Data

from evaluators.datasets import DatasetError, Splits, stratified_splits

Loaded = tuple[Union[Data, list[Data]], Splits]


def is_external(name: str) -> bool:
    return name.endswith(".pt") or ("." in name and not name.endswith(".") and "/" not in name)


def load_external(name: str, kwargs: dict[str, Any], root: Path, cache_dir: Path) -> Loaded:
    if name.endswith(".pt"):
        return from_file(Path(name))
    return from_class(name, kwargs, cache_dir)


def from_file(path: Path) -> Loaded:
    """A ``torch.save`` of a list of ``Data`` (graph task) or one ``Data`` (node task,
    with ``train_mask``/``val_mask``/``test_mask`` or a seeded stratified split)."""
    if not path.is_file():
        raise DatasetError(f"dataset file {path} not found")
    try:  # the user's own file: full unpickling is what torch.save of Data objects needs
        obj = torch.load(path, weights_only=False)
    except Exception as err:
        raise DatasetError(f"dataset file {path}: not a torch.save file ({err})") from None
    return _as_loaded(obj, str(path))


def from_class(path: str, kwargs: dict[str, Any], cache_dir: Path) -> Loaded:
    """``module.Class(**kwargs)``; a ``root`` argument, when the class takes one and it is
    not given, is a folder of the cache named after the class and its arguments."""
    module, _, cls_name = path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), cls_name)
    except (ImportError, AttributeError) as err:
        raise DatasetError(f"dataset {path!r}: cannot import {cls_name} from {module} ({err}); give a "
                           "registered name, a dotted path to a dataset class, or a .pt file") from None
    kwargs = dict(kwargs)
    if "root" in inspect.signature(cls).parameters and "root" not in kwargs:
        tag = "-".join(f"{k}={v}" for k, v in sorted(kwargs.items()))
        kwargs["root"] = str(cache_dir / "external" / f"{cls_name}{'-' + tag if tag else ''}")
    try:
        dataset = cls(**kwargs)
    except Exception as err:
        raise DatasetError(f"dataset {path}({kwargs}): {type(err).__name__}: {err}") from None
    return _as_loaded(list(dataset) if len(dataset) > 1 else dataset[0], path)


def _as_loaded(obj: Any, source: str) -> Loaded:
    if isinstance(obj, Data):
        return _node_task(obj, source)
    if isinstance(obj, (list, tuple)) and obj and all(isinstance(g, Data) for g in obj):
        return _graph_task(list(obj), source)
    raise DatasetError(f"dataset {source}: expected a Data object or a non-empty list of Data, got "
                       f"{type(obj).__name__}")


def _features(g: Data) -> torch.Tensor:
    return g.x.float() if g.x is not None else torch.ones(g.num_nodes, 1)  # structure-only graphs


def _node_task(data: Data, source: str) -> Loaded:
    if data.y is None:
        raise DatasetError(f"dataset {source}: the graph has no y (node labels)")
    out = Data(x=_features(data), edge_index=data.edge_index, y=data.y.view(-1).long())
    masks = [getattr(data, f"{s}_mask", None) for s in ("train", "val", "test")]
    if all(m is not None for m in masks):
        idx = torch.arange(data.num_nodes)
        return out, Splits(*(idx[m.view(-1).bool()] for m in masks))
    return out, _split(out.y, source)


def _graph_task(graphs: list[Data], source: str) -> Loaded:
    if any(g.y is None for g in graphs):
        raise DatasetError(f"dataset {source}: every graph needs y (its label or target)")
    out = [Data(x=_features(g), edge_index=g.edge_index, y=g.y.view(1, -1) if g.y.is_floating_point() else g.y.view(-1),
                edge_attr=g.edge_attr.float() if g.edge_attr is not None else None) for g in graphs]
    labels = torch.cat([g.y.view(-1)[:1] for g in out])
    return out, _split(labels, source)


def _split(y: torch.Tensor, source: str) -> Splits:
    """Seeded stratified 80/10/10 for class labels, seeded random for regression targets or
    classes too small to stratify."""
    if not y.is_floating_point():
        try:
            return stratified_splits(y, seed=0)
        except ValueError:
            pass
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    n_val = n_test = max(1, len(y) // 10)
    return Splits(*(torch.sort(p).values for p in (perm[n_val + n_test:], perm[:n_val], perm[n_val:n_val + n_test])))
