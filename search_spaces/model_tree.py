"""The module tree of a built model, written out so that a person can rebuild it.

``model_tree(model)`` lists every module of a :class:`~search_spaces.builder.GraphModel`
with where it sits (its ``state_dict`` prefix), its class and its parameter count. What
kind of entry it is decides what else it says:

* a ``torch`` or PyG module carries ``args``, the constructor arguments that rebuild it
  with the same parameter shapes (``{"module": "nn"}`` names a child passed as an argument,
  ``{"data_info": "deg"}`` a value of the export's ``data_info``). Its children are built by
  its constructor: rebuild the outermost such module and load the weights by its prefix.
* a graphnas module (the layers, the wrappers) carries ``forward``: what it computes from
  its children, in words and formulas, and ``settings``: the plain values that decide it
  (``residual``, ``dropout``, ``links``).

The arguments are read from the module's attributes named like its constructor's
parameters; PyG and torch keep most of them. The few they do not keep are derived from
the module below (``_derived``), so the table grows only when a new kind of module appears,
and the export test rebuilds one architecture per preset from the tree alone.
"""
from __future__ import annotations

import functools
import inspect
from typing import Any, Callable, Optional

from torch import Tensor, nn

_LIBRARIES = ("torch", "torch_geometric")


def model_tree(model: nn.Module) -> dict[str, Any]:
    """``{"class", "parameters", "forward", "settings", "modules": [...]}`` for ``model``; every module
    below it in ``named_modules`` order (parents before children)."""
    modules = []
    for path, module in model.named_modules():
        if not path:
            continue
        modules.append(module_entry(path, module))
    return {"class": _class_path(model), "parameters": _count(model), "forward": forward_text(model),
            "settings": module_settings(model), "modules": modules}


def module_entry(path: str, module: nn.Module) -> dict[str, Any]:
    entry: dict[str, Any] = {"path": path, "class": _class_path(module), "parameters": _count(module)}
    own = {name: list(p.shape) for name, p in module.named_parameters(recurse=False)}
    if own:
        entry["own_parameters"] = own
    args = constructor_args(module)
    if args is not None:
        entry["args"] = args
    else:
        entry["forward"] = forward_text(module)
        settings = module_settings(module)
        if settings:
            entry["settings"] = settings
    return entry


def module_settings(module: nn.Module) -> dict[str, Any]:
    """A graphnas module's plain attributes (flags, rates, indices) that its forward reads."""
    out = {}
    for name, value in vars(module).items():
        if name.startswith("_") or name == "training":
            continue
        plain = _plain(value, {}, name)
        if plain is not _SKIP:
            out[name] = plain
    return out


def constructor_args(module: nn.Module) -> Optional[dict[str, Any]]:
    """Arguments that rebuild a torch or PyG ``module``; ``None`` for graphnas' own modules."""
    if type(module).__module__.split(".")[0] not in _LIBRARIES:
        return None
    if isinstance(module, (nn.Sequential, nn.ModuleList)):
        return {"modules": [{"module": name} for name, _ in module.named_children()]}
    children = {id(child): name for name, child in module.named_children()}
    args: dict[str, Any] = {}
    for name, param in inspect.signature(type(module).__init__).parameters.items():
        if name == "self" or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD) or name in ("device", "dtype"):
            continue
        if hasattr(module, name):
            value = _plain(getattr(module, name), children, name)
            if value is not _SKIP:
                args[name] = value
    for cls, derive in _derived().items():
        if type(module) is cls:
            args.update(derive(module))
    return args


_SKIP = object()


def _plain(value: Any, children: dict[int, str], name: str) -> Any:
    """A JSON value for a constructor argument, or ``_SKIP`` when it has none."""
    if isinstance(value, nn.Module):
        return {"module": children[id(value)]} if id(value) in children else _SKIP
    if name == "bias" and (value is None or isinstance(value, Tensor)):
        return value is not None  # the constructor's flag, stored as the tensor it made
    if isinstance(value, Tensor):
        return value.item() if value.numel() == 1 else _SKIP  # GIN's eps
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if isinstance(value, (list, tuple)) and all(isinstance(v, (bool, int, float, str)) for v in value):
        return list(value)
    return _SKIP


def _mlp_args(mlp: nn.Module) -> dict[str, Any]:
    """PyG's MLP: its channel list and norm; its ``in_channels`` and ``num_layers`` are
    properties of the list, and passing them too would make MLP build another list."""
    from torch_geometric.nn.norm import BatchNorm, LayerNorm

    first = mlp.norms[0] if len(mlp.norms) else nn.Identity()
    norm = "batch_norm" if isinstance(first, BatchNorm) else "layer_norm" if isinstance(first, LayerNorm) else None
    return {"in_channels": None, "out_channels": None, "num_layers": None, "hidden_channels": None,
            "norm": norm, "act": {"module": "act"} if mlp.act is not None else None}


def _pna_args(pna: nn.Module) -> dict[str, Any]:
    """PNAConv keeps its aggregators and scalers inside its aggregation module, and its
    degree histogram only as averages: ``deg`` is the export's ``data_info.deg``."""
    aggregators = [type(a).__name__.removesuffix("Aggregation").lower() for a in pna.aggr_module.aggr.aggrs]
    return {"aggregators": aggregators, "scalers": list(pna.aggr_module.scaler), "deg": {"data_info": "deg"},
            "pre_layers": len(pna.pre_nns[0]), "post_layers": len(pna.post_nns[0])}


@functools.cache  # built on first use: it imports PyG, which reading a space does not
def _derived() -> dict[type, Callable[[nn.Module], dict[str, Any]]]:
    """Constructor arguments that the modules do not keep under their own names."""
    from torch_geometric import nn as gnn

    gin_eps = lambda m: {"train_eps": isinstance(m.eps, nn.Parameter)}  # noqa: E731
    return {
        gnn.MLP: _mlp_args,
        gnn.GINConv: gin_eps,
        gnn.GINEConv: lambda m: {**gin_eps(m), "edge_dim": m.lin.in_features if m.lin is not None else None},
        gnn.ChebConv: lambda m: {"K": len(m.lins)},
        gnn.PNAConv: _pna_args,
        gnn.BatchNorm: lambda m: {"eps": m.module.eps, "momentum": m.module.momentum,
                                  "affine": m.module.affine, "track_running_stats": m.module.track_running_stats},
    }


def forward_text(module: nn.Module) -> str:
    """What a graphnas module computes: its ``dataflow()`` where it has one, else the first
    paragraph of its class docstring."""
    dataflow = getattr(module, "dataflow", None)
    if callable(dataflow):
        return dataflow()
    doc = inspect.getdoc(type(module)) or type(module).__name__
    return " ".join(doc.split("\n\n")[0].split())


def _class_path(module: nn.Module) -> str:
    cls = type(module)
    return f"{cls.__module__}.{cls.__qualname__}"


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
