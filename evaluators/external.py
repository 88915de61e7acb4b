"""Datasets not in the registry: a user's own ``torch.save`` file, or any dataset class
named by its dotted path (``torch_geometric.datasets.FakeDataset``) with keyword
arguments. Both register themselves as data sources (``DATA_SOURCES``) and load into the
registry's shape: one graph with node splits (a node task) or a list of graphs with graph
splits (a graph task)."""
from __future__ import annotations

import importlib
import inspect
from pathlib import Path
from typing import Any

import torch
from torch_geometric.data import Data

from evaluators.datasets import DATA_SOURCES, DataSource, DatasetError, Loaded
from evaluators.splits import from_masks, holdout_splits


def _is_file(name: str) -> bool:
    return name.endswith(".pt")


def _is_class(name: str) -> bool:
    return "." in name and not name.endswith(".") and "/" not in name and not _is_file(name)


DATA_SOURCES.register("file", "a torch.save file (.pt) of one Data (a node task) or a list of Data (a graph task)")(
    DataSource(_is_file, lambda name, kwargs, root, cache_dir: from_file(Path(name))))
DATA_SOURCES.register("class", "a dataset class by dotted path, constructed with --dataset-arg KEY=VALUE")(
    DataSource(_is_class, lambda name, kwargs, root, cache_dir: from_class(name, kwargs, cache_dir)))


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
        return Loaded(out, from_masks(*masks))
    return Loaded(out, holdout_splits(out.y))


def _graph_task(graphs: list[Data], source: str) -> Loaded:
    if any(g.y is None for g in graphs):
        raise DatasetError(f"dataset {source}: every graph needs y (its label or target)")
    out = [Data(x=_features(g), edge_index=g.edge_index, y=g.y.view(1, -1) if g.y.is_floating_point() else g.y.view(-1),
                edge_attr=g.edge_attr.float() if g.edge_attr is not None else None) for g in graphs]
    labels = torch.cat([g.y.view(-1)[:1] for g in out])
    return Loaded(out, holdout_splits(labels))
