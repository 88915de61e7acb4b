"""Datasets not in the registry: a user's own ``torch.save`` file, or any dataset class
named by its dotted path (``torch_geometric.datasets.FakeDataset``) with keyword
arguments. Both register themselves as data sources (``DATA_SOURCES``) and load into the
registry's shape: one graph with node splits (a node task) or a list of graphs with graph
splits (a graph task)."""
from __future__ import annotations

import hashlib
import importlib
import inspect
import pickle
import re
from dataclasses import replace
from pathlib import Path
from typing import Any, Optional

import torch
from torch_geometric.data import Data, Dataset

from graphnas.evaluators.checks import class_label_problem
from graphnas.evaluators.datasets import (DATA_SOURCES, DataSource, DatasetError, Loaded, TaskInference, check_task_shape,
                                 copied_into_cache, infer_task, inside, load_graphs, repairing)
from graphnas.evaluators.splits import from_masks, holdout_splits


def _is_file(name: str) -> bool:
    return name.endswith(".pt")


def _is_class(name: str) -> bool:
    return "." in name and not name.endswith(".") and "/" not in name and not _is_file(name)


DATA_SOURCES.register("file", "a torch.save file (.pt) of one Data (a node task) or a list of Data (a graph task)")(
    DataSource(_is_file, lambda name, kwargs, root, cache_dir, task: from_file(Path(name), task)))
DATA_SOURCES.register("class", "a dataset class by dotted path, constructed with --dataset-arg KEY=VALUE")(
    DataSource(_is_class, lambda name, kwargs, root, cache_dir, task: from_class(name, kwargs, cache_dir, task, root)))


def from_file(path: Path, task: Optional[str] = None) -> Loaded:
    """A ``torch.save`` of a list of ``Data`` (graph task) or one ``Data`` (node task,
    with ``train_mask``/``val_mask``/``test_mask`` or a seeded stratified split)."""
    if not path.is_file():
        raise DatasetError(f"dataset file {path} not found")
    try:  # tensors and Data only: a pickle that would run code is refused, not run
        obj = load_graphs(path)
    except pickle.UnpicklingError as err:
        found = re.search(r"GLOBAL (\S+)", str(err))
        raise DatasetError(f"dataset file {path}: holds {found.group(1) if found else 'an object'}, not only tensors "
                           "and Data objects; refused without loading (a pickle can run code)") from None
    except Exception as err:
        raise DatasetError(f"dataset file {path}: not a torch.save file ({err})") from None
    return _as_loaded(obj, str(path), task)


def dataset_class(path: str) -> type:
    """The class ``path`` names, checked to be a PyG ``Dataset`` before anything calls it:
    a dotted path is code, and ``os.system`` with a ``command`` argument would run it."""
    module, _, cls_name = path.rpartition(".")
    try:
        obj = getattr(importlib.import_module(module), cls_name)
    except (ImportError, AttributeError) as err:
        raise DatasetError(f"dataset {path!r}: cannot import {cls_name} from {module} ({err}); give a "
                           "registered name, a dotted path to a dataset class, or a .pt file") from None
    if not (inspect.isclass(obj) and issubclass(obj, Dataset)):
        raise DatasetError(f"dataset {path!r}: not a torch_geometric.data.Dataset subclass")
    return obj


def is_dataset_class(name: str) -> bool:
    """Whether ``name`` is taken as a dataset class by dotted path (not a registered name)."""
    from graphnas.evaluators.datasets import DATASETS

    return name not in DATASETS and _is_class(name)


def check_dataset_origin(dataset: str, origin: Optional[str], allowed: bool) -> None:
    """A dataset class by dotted path imports and runs code: from the command line that is
    the user's own choice, from a file (``origin``: a ``--config``, a run's config.yaml)
    only with an explicit opt-in (as Hydra's ``_target_``)."""
    if origin is not None and not allowed and is_dataset_class(dataset):
        raise DatasetError(f"dataset {dataset!r} from {origin} is a dataset class by dotted path (it runs code): "
                           "pass --allow-dataset-class to trust the file, or give --dataset on the command line")


def from_class(path: str, kwargs: dict[str, Any], cache_dir: Path, task: Optional[str] = None,
               data_root: Optional[Path] = None) -> Loaded:
    """``module.Class(**kwargs)``, with a ``root`` in the cache when the class takes one
    (:func:`class_root`)."""
    cls = dataset_class(path)
    kwargs = dict(kwargs)
    if "root" in inspect.signature(cls).parameters:
        kwargs["root"] = str(class_root(cls.__name__, kwargs, Path(cache_dir), data_root))
    try:
        dataset = repairing(lambda: cls(**kwargs), Path(kwargs["root"]), Path(cache_dir), path) if "root" in kwargs \
            else cls(**kwargs)
    except Exception as err:
        raise DatasetError(f"dataset {path}({kwargs}): {type(err).__name__}: {err}") from None
    return _as_loaded(list(dataset) if len(dataset) > 1 else dataset[0], path, task)


def class_root(cls_name: str, kwargs: dict[str, Any], cache_dir: Path, data_root: Optional[Path]) -> Path:
    """Where a dataset class may download and process (issue 46): never a folder outside the
    cache. A ``root`` given in its arguments, or the data root's ``<ClassName>`` folder, is
    copied into the cache (its raw files, not what was processed) and processed there; the
    cache's own data root is used in place; else a folder of the cache named after the
    class and its other arguments."""
    own = (cache_dir / "data").resolve()
    given = kwargs.get("root")
    if given is not None:
        return Path(given).expanduser().resolve() if inside(Path(given), cache_dir) else \
            copied_into_cache(Path(given), cache_dir, cls_name)
    folder = _folder_name(cls_name, kwargs)
    if data_root is not None and Path(data_root).resolve() == own:
        return own / folder
    if data_root is not None and (Path(data_root) / cls_name).is_dir():
        return copied_into_cache(Path(data_root) / cls_name, cache_dir, cls_name)
    return cache_dir / "external" / folder


def _folder_name(cls_name: str, kwargs: dict[str, Any]) -> str:
    """``FakeDataset-num_graphs=40``: readable, and one folder name (no ``/`` of a value
    that is a path); long or unsafe names end in a hash of the arguments instead."""
    name = "-".join([cls_name, *(f"{k}={v}" for k, v in sorted(kwargs.items()))])
    safe = re.sub(r"[^A-Za-z0-9_.=-]+", "_", name)
    if safe == name and len(name) <= 80:
        return name
    return f"{safe[:60]}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"


def _as_loaded(obj: Any, source: str, task: Optional[str]) -> Loaded:
    """The task ``task``, else the one the data shows (:func:`infer_task`), with labels cast
    to it: class indices, or float targets of shape ``[1, T]`` per graph."""
    if isinstance(obj, (list, tuple)) and obj and all(isinstance(g, Data) for g in obj):
        obj = list(obj)
    elif not isinstance(obj, Data):
        raise DatasetError(f"dataset {source}: expected a Data object or a non-empty list of Data, got "
                           f"{type(obj).__name__}")
    name = Path(source).name if _is_file(source) else source
    found = infer_task(obj, name) if task is None else TaskInference(task, "as given (--task)")
    check_task_shape(found.task, obj, source)
    loaded = _node_task(obj, source) if isinstance(obj, Data) else _graph_task(obj, source, found.task)
    return replace(loaded, task=found)


def _check_classes(y: torch.Tensor, source: str) -> None:
    problem = class_label_problem(y)
    if problem:
        raise DatasetError(f"dataset {source}: {problem}")


def _features(g: Data) -> torch.Tensor:
    return g.x.float() if g.x is not None else torch.ones(g.num_nodes, 1)  # structure-only graphs


def _node_task(data: Data, source: str) -> Loaded:
    if data.y is None:
        raise DatasetError(f"dataset {source}: the graph has no y (node labels)")
    _check_classes(data.y, source)  # before the cast to class indices hides a fraction
    out = Data(x=_features(data), edge_index=data.edge_index, y=data.y.view(-1).long())
    masks = [getattr(data, f"{s}_mask", None) for s in ("train", "val", "test")]
    if all(m is not None for m in masks):
        return Loaded(out, from_masks(*masks))
    return Loaded(out, holdout_splits(out.y))


def _graph_task(graphs: list[Data], source: str, task: str) -> Loaded:
    if any(g.y is None for g in graphs):
        raise DatasetError(f"dataset {source}: every graph needs y (its label or target)")
    classes = task == "graph_classification"
    if classes:
        _check_classes(torch.cat([g.y.reshape(-1) for g in graphs]), source)
    out = [Data(x=_features(g), edge_index=g.edge_index, y=g.y.view(-1).long() if classes else g.y.float().view(1, -1),
                edge_attr=g.edge_attr.float() if g.edge_attr is not None else None) for g in graphs]
    labels = torch.cat([g.y.view(-1)[:1] for g in out])
    return Loaded(out, holdout_splits(labels))
