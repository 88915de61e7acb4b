"""Export: architectures out of a run, models back from an export file, deployable programs.

An export file is the Architecture JSON plus what rebuilding the exact model needs::

    {"format": "graphnas-architecture", "format_version": 1,
     "arch_id": "...", "architecture": {...}, "data_info": {...},
     "model": {the module tree: where each module sits, its class, its constructor arguments
               or what it computes}, "training": {optimiser, lr, epochs, selection, ...},
     "dataset": "cora",
     "run": {"run_dir": ..., "trial": 12, "seed": 0}, "figures": {val_metric, flops, ...},
     "versions": {"torch": ..., "torch_geometric": ..., "optuna": ..., "graphnas": ...}}
"""
from __future__ import annotations

import dataclasses
import json
import pickle
from importlib import metadata
from pathlib import Path
from typing import Any, Optional

import torch
from pydantic import TypeAdapter, ValidationError
from torch import nn

from graphnas.evaluators.result import TrialResult
from graphnas.results.pareto import ParetoFront, front_objectives
from graphnas.results.store import RunStore, best_row
from graphnas.search_spaces import Architecture, DataInfo, build_model
from graphnas.search_spaces.registry import UnknownNameError

EXPORT_FORMAT = "graphnas-architecture"


def _first(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


class ExportError(ValueError):
    """The requested trial cannot be exported; the message says why."""


def library_versions() -> dict[str, str]:
    versions = {}
    for package in ("graphnas", "torch", "torch_geometric", "optuna"):
        try:
            versions[package] = metadata.version(package.replace("_", "-"))
        except metadata.PackageNotFoundError:
            versions[package] = "unknown"
    return versions


def export_record(run_dir: str | Path, trial: Optional[int] = None, pareto: Optional[int] = None) -> dict[str, Any]:
    """The export record of one trial: ``trial`` by number, the ``pareto``-th member of the
    front (0 = fewest FLOPs), or by default the best by validation metric."""
    store, study = RunStore.open(run_dir)
    frame = store.trials_frame(study)
    objectives = store.objectives_of(study)
    if trial is not None:
        rows = frame[(frame["trial"] == trial)]
        if rows.empty:
            raise ExportError(f"{run_dir}: no trial {trial}; trials are 0..{len(frame) - 1}")
        row = rows.iloc[0]
        if row["state"] != "COMPLETE":
            raise ExportError(f"{run_dir}: trial {trial} is {row['state']}, only COMPLETE trials can be exported")
    elif pareto is not None:
        front = ParetoFront.of(frame, front_objectives(objectives)).trials
        if not 0 <= pareto < len(front):
            raise ExportError(f"{run_dir}: --pareto {pareto} is out of range; the front has {len(front)} trials")
        row = front.iloc[pareto]
    else:
        row = best_row(frame, objectives)
        if row is None:
            raise ExportError(f"{run_dir}: no completed trial to export")
    config = store.read_config()
    attrs = TrialResult.unpack(study.trials[int(row["trial"])].user_attrs)
    arch = Architecture.from_json(row["arch_json"])
    data_info = study.user_attrs.get("data_info")
    return {
        "format": EXPORT_FORMAT,
        "format_version": 1,
        "arch_id": arch.arch_id,
        "architecture": arch.applied_dump(),
        "data_info": data_info,
        **explain(arch, _data_info(data_info), config.get("train", {})),
        "dataset": study.user_attrs.get("dataset", config.get("dataset")),
        "run": {"run_dir": str(run_dir), "trial": int(row["trial"]), "seed": config.get("train", {}).get("seed"),
                "space_source": config.get("space_source")},
        "figures": {k: attrs[k] for k in TrialResult.field_names() if k in attrs and k != "arch_json"},
        "versions": library_versions(),
    }


def explain(arch: Architecture, info: Optional[DataInfo], train: dict[str, Any]) -> dict[str, Any]:
    """The export's ``model`` section (the module tree, :func:`search_spaces.model_tree.model_tree`)
    and ``training`` section (:func:`evaluators.training.training_recipe`). Without data info
    (a run that stored none) there is no model to describe."""
    from graphnas.evaluators.training import TrainConfig, training_recipe
    from graphnas.search_spaces.model_tree import model_tree

    if info is None:
        return {}
    known = {k: v for k, v in train.items() if k in TrainConfig.model_fields}
    return {"model": model_tree(build_model(arch, info)), "training": training_recipe(arch, TrainConfig(**known), info)}


def _data_info(stored: Optional[dict[str, Any]], source: str = "data_info") -> Optional[DataInfo]:
    """The stored data info, checked field by field (pydantic, on the dataclass's own
    annotations): an export someone edited or sent is one line naming the field, never a
    TypeError from the constructor or a model built on a nonsensical histogram."""
    if not stored:
        return None
    if not isinstance(stored, dict):
        raise ExportError(f"{source}: data_info: expected an object, got {type(stored).__name__}")
    known = {f.name: f for f in dataclasses.fields(DataInfo)}
    extra = sorted(set(stored) - set(known))
    missing = sorted(k for k, f in known.items()
                     if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING and k not in stored)
    if extra or missing:
        raise ExportError(f"{source}: data_info: " + "; ".join(
            ([f"unknown key(s) {', '.join(extra)}"] if extra else []) + ([f"missing key(s) {', '.join(missing)}"]
                                                                         if missing else []))
                          + f" (expected {', '.join(known)})")
    try:
        return _DATA_INFO.validate_python(stored)
    except ValidationError as err:
        e = err.errors()[0]
        if not e["loc"]:  # DataInfo's own check (the task), raised from __post_init__
            raise ExportError(f"{source}: data_info: {e['msg'].removeprefix('Value error, ')}") from None
        raise ExportError(f"{source}: data_info.{'.'.join(map(str, e['loc']))}: {e['msg']} (got {e['input']!r})") from None


_DATA_INFO = TypeAdapter(DataInfo)


RECIPE_SETTINGS = ("epochs", "patience", "folds", "batch_size")  # TrainConfig fields an export's recipe states


def export_recipe(record: dict[str, Any]) -> dict[str, int]:
    """The TrainConfig settings an export's ``training`` recipe states (its run's epochs,
    patience, folds, batch size): what ``graphnas train`` retrains with unless told otherwise."""
    recipe = record.get("training") or {}
    return {k: recipe[k] for k in RECIPE_SETTINGS if isinstance(recipe.get(k), int) and recipe[k] >= 1}


def write_export(record: dict[str, Any], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2))
    return path


def read_export(path: str | Path) -> tuple[Architecture, Optional[DataInfo], dict[str, Any]]:
    """Architecture, data info (``None`` for a bare architecture file or a zoo entry) and the
    whole record. ``zoo:NAME`` reads a zoo entry: its record holds ``zoo`` and ``protocol``."""
    from graphnas.search_spaces.zoo import ZooError, is_zoo_ref, zoo_entry

    if is_zoo_ref(str(path)):
        try:
            entry = zoo_entry(str(path))
        except ZooError as err:
            raise ExportError(str(err)) from None
        return entry.architecture, None, {"zoo": entry.name, "protocol": entry.protocol.train_config()}
    path = Path(path)
    if not path.is_file():
        raise ExportError(f"{path}: file not found")
    try:
        record = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ExportError(f"{path}: not JSON: {err}") from None
    if not isinstance(record, dict) or not isinstance(record.get("architecture", record), dict):
        raise ExportError(f"{path}: expected a JSON object (an export file or an architecture), got "
                          f"{type(record).__name__}")
    try:
        arch = Architecture.model_validate(record.get("architecture", record))  # names checked by the registries
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'architecture'}: {e['msg']}" for e in err.errors()[:3])
        more = f" (and {err.error_count() - 3} more)" if err.error_count() > 3 else ""
        raise ExportError(f"{path}: not an architecture: {problems}{more}") from None
    except UnknownNameError as err:
        raise ExportError(f"{path}: {err}") from None
    return arch, _data_info(record.get("data_info"), str(path)), record


def load_model(path: str | Path, weights: Optional[str | Path] = None, data_info: Optional[DataInfo] = None) -> nn.Module:
    """Rebuild the exact model of an export file; load ``weights`` (a state_dict file) if given.

    A bare architecture file carries no data info: pass ``data_info`` then."""
    arch, info, _ = read_export(path)
    info = data_info or info
    if info is None:
        raise ExportError(f"{path}: no data_info in the file; pass data_info= to load_model")
    model = build_model(arch, info)
    if weights is not None:
        # weights_only: a state dict someone sent is tensors, never code (torch < 2.6 unpickled anything)
        try:
            state = torch.load(weights, map_location="cpu", weights_only=True)
        except (pickle.UnpicklingError, RuntimeError, OSError) as err:
            raise ExportError(f"{weights}: not a state dict of tensors ({_first(err)}); it is not loaded") from None
        model.load_trained_state(state)
    return model.eval()


def export_program(model: nn.Module, inputs: dict[str, Any], path: str | Path, fmt: str = "pt2") -> str:
    """Export ``model`` for inference with ``torch.export`` (``pt2``) or
    ``torch.onnx.export(dynamo=True)`` (``onnx``). The node and edge counts are dynamic where
    the model allows it; otherwise the program is fixed to the sizes of ``inputs``, and the
    returned note says so."""
    from torch.export import Dim

    kwargs = {k: v for k, v in inputs.items() if v is not None}
    dims = {"x": {0: Dim("num_nodes")}, "edge_index": {1: Dim("num_edges")}}
    dims.update({k: {0: dims["x"][0]} for k in ("pe", "batch") if k in kwargs})
    if "edge_attr" in kwargs:
        dims["edge_attr"] = {0: dims["edge_index"][1]}
    model = model.eval()
    try:
        program = torch.export.export(model, args=(), kwargs=kwargs, dynamic_shapes=dims)
        note = "dynamic node and edge counts"
    except Exception as err:  # data-dependent shapes (e.g. dense attention padding)
        program = torch.export.export(model, args=(), kwargs=kwargs)
        note = (f"fixed to {kwargs['x'].size(0)} nodes and {kwargs['edge_index'].size(1)} edges: "
                f"this model cannot be exported with dynamic sizes ({type(err).__name__})")
    path = Path(path)
    if fmt == "pt2":
        torch.export.save(program, path)
    elif fmt == "onnx":
        try:
            torch.onnx.export(program, args=(), kwargs=kwargs, f=str(path), dynamo=True)
        except ImportError as err:
            raise ExportError(f"--format onnx needs onnx and onnxscript: pip install 'graphnas[export]' ({err})") from None
    else:
        raise ExportError(f"unknown format {fmt!r}; use pt2 or onnx")
    return note


__all__ = ["EXPORT_FORMAT", "ExportError", "export_program", "export_recipe", "export_record", "load_model", "read_export",
           "write_export"]
