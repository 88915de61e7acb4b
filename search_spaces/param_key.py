"""The name of one architecture choice, as Optuna parameters, ``Architecture.flat`` keys,
``--fix`` options and trials.csv columns spell it.

Three forms: ``hidden_dim`` (a global choice, or a per-layer one tied across layers),
``layer2.mpnn`` (layer 2's own choice) and ``sparsity.edge_keep`` (a sparsification
target). Built and read here only, so that the spelling has one home.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

_LAYER = re.compile(r"layer(\d+)\.(\w+)")
SPARSITY_PREFIX = "sparsity."


@dataclass(frozen=True)
class ParamKey:
    field: str
    layer: Optional[int] = None  # the layer of a per-layer choice that is not tied
    sparsity: bool = False  # a field of the sparsification targets

    @classmethod
    def parse(cls, name: str) -> "ParamKey":
        match = _LAYER.fullmatch(name)
        if match:
            return cls(match.group(2), layer=int(match.group(1)))
        if name.startswith(SPARSITY_PREFIX):
            return cls(name[len(SPARSITY_PREFIX):], sparsity=True)
        return cls(name)

    def __str__(self) -> str:
        if self.layer is not None:
            return f"layer{self.layer}.{self.field}"
        return SPARSITY_PREFIX + self.field if self.sparsity else self.field


def layer_key(layer: int, field: str) -> str:
    """``layer{layer}.{field}``: the spelling most call sites need, as a string."""
    return str(ParamKey(field, layer=layer))
