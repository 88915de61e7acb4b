"""``Architecture``: one fully resolved point of a search space, and the export format."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, model_validator


class LayerArch(BaseModel):
    """The choices of one layer."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mpnn: str
    attention: str = "none"
    heads: int = 1
    top_m: int = 8
    kv_source: str = "features"
    norm: str = "batch"
    ffn: bool = False


Fraction = Annotated[float, Field(ge=0.0, lt=1.0)]
EdgeMethod = Literal["learned", "teddy"]


class Sparsity(BaseModel):
    """Target sparsity per dimension (GTSP, Liu et al. 2024): the fraction of graph edges,
    of attention heads per layer, of layers, and of prunable weights removed after the
    masks are learned. ``edge_method`` is ``learned`` (a gate per edge of the one graph of
    a node task) or ``teddy`` (one-shot degree-based scores, any graph)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    edges: Fraction = 0.0
    heads: Fraction = 0.0
    layers: Fraction = 0.0
    weights: Fraction = 0.0
    edge_method: EdgeMethod = "learned"

    @property
    def dense(self) -> bool:
        return not (self.edges or self.heads or self.layers or self.weights)


class Architecture(BaseModel):
    """Every value chosen, per layer; immutable, JSON round-trips, hashes stably.

    ``links`` is ``None`` for a GraphGPS-style stack; for a NAS-Bench-Graph cell it says
    which earlier node (0 = the input) feeds each layer, and the outputs of the layers
    that feed no other are summed.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    space: str
    space_version: int = 1
    hidden_dim: int
    num_layers: int
    dropout: float
    lr: float
    weight_decay: float
    encoding: str = "none"
    encoding_dim: int = 8
    pooling: str = "mean"
    residual: bool = True
    links: Optional[tuple[int, ...]] = None
    layers: tuple[LayerArch, ...]
    sparsity: Optional[Sparsity] = None  # None: dense (what every architecture without the section is)

    @model_validator(mode="after")
    def _consistent(self) -> "Architecture":
        if len(self.layers) != self.num_layers:
            raise ValueError(f"num_layers={self.num_layers} but {len(self.layers)} layers are given")
        if self.links is not None:
            if len(self.links) != self.num_layers:
                raise ValueError(f"links has {len(self.links)} entries, num_layers is {self.num_layers}")
            for i, j in enumerate(self.links):
                if not 0 <= j <= i:
                    raise ValueError(f"links[{i}]={j}: a layer can only read the input (0) or an earlier layer")
        if self.sparsity is not None and self.links is not None:
            raise ValueError("sparsity applies to layer stacks, not to NAS-Bench-Graph cells (links)")
        return self

    @property
    def sparsity_targets(self) -> Sparsity:
        """The targets, all 0 for a dense architecture."""
        return self.sparsity or Sparsity()

    def to_json(self, **kwargs: Any) -> str:
        return self.model_dump_json(**kwargs)

    @classmethod
    def from_json(cls, text: str) -> "Architecture":
        return cls.model_validate_json(text)

    @classmethod
    def load(cls, path: str | Path) -> "Architecture":
        """Read an architecture file; an export file with an ``architecture`` key also works."""
        data = json.loads(Path(path).read_text())
        return cls.model_validate(data.get("architecture", data))

    @property
    def arch_id(self) -> str:
        """Stable 12-hex-digit id: a hash of the canonical JSON of every choice."""
        data = self.model_dump(mode="json")
        if data["sparsity"] is None:  # dense architectures keep the ids they had before sparsity existed
            del data["sparsity"]
        canonical = json.dumps(data, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]

    def flat(self) -> dict[str, Any]:
        """Choices as one flat dict: globals by name, per-layer ones as ``layer{i}.{field}``."""
        out = self.model_dump(mode="json", exclude={"layers", "space", "space_version", "sparsity"})
        if self.sparsity is not None:
            out.update({f"sparsity.{k}": v for k, v in self.sparsity.model_dump().items()})
        if out["links"] is not None:
            out["links"] = "-".join(map(str, out["links"]))
        for i, layer in enumerate(self.layers):
            for field, value in layer.model_dump().items():
                out[f"layer{i}.{field}"] = value
        return out
