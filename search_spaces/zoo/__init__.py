"""The zoo: reference designs from the literature, shipped as files (one YAML per design).

Each file holds the architecture (every choice, as :class:`Architecture` takes it), the
training protocol it was published with (epochs, patience, batch size, folds; lr, weight
decay, dropout, optimiser and preprocessing are choices of the architecture itself), its
source (paper and table) and the published figure per dataset. ``zoo:NAME`` works wherever
an architecture file does (``graphnas train zoo:gat``, ``--reference zoo:gcn``).
"""
from __future__ import annotations

from functools import lru_cache
from importlib import resources
from typing import Any, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from graphnas.search_spaces.architecture import Architecture
from graphnas.search_spaces.schema import DuplicateKeyError, load_yaml

PREFIX = "zoo:"


class ZooError(ValueError):
    """An unknown zoo name or an invalid zoo file."""


class Protocol(BaseModel):
    """How the design is trained, beyond the choices its architecture holds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    epochs: int = Field(default=200, ge=1)
    patience: int = Field(default=200, ge=1)
    batch_size: int = Field(default=32, ge=1)  # graphs per mini-batch (graph tasks)
    folds: int = Field(default=1, ge=1)  # > 1: stratified k-fold cross-validation

    def train_config(self) -> dict[str, int]:
        """The fields of ``evaluators.TrainConfig`` this protocol sets."""
        return self.model_dump()


class Source(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    paper: str
    table: str
    note: str = ""


class ZooEntry(BaseModel):
    """One reference design."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    title: str
    task: str
    source: Source
    published: dict[str, float] = Field(default_factory=dict)  # dataset -> figure (percent or raw metric)
    protocol: Protocol = Field(default_factory=Protocol)
    architecture: Architecture
    # dataset -> the global choices the source publishes for that dataset (weight_decay,
    # dropout, ...), which replace the architecture's own there
    datasets: dict[str, dict[str, Any]] = Field(default_factory=dict)
    # run by default as a reference trial of a search whose space holds it (``--reference``
    # names any entry); false for designs whose protocol does not fit a search's trials
    reference: bool = True

    @model_validator(mode="after")
    def _dataset_settings(self) -> "ZooEntry":
        for dataset in self.datasets:
            self.architecture_for(dataset)  # raises on an unknown or invalid choice
        return self

    def architecture_for(self, dataset: Optional[str]) -> Architecture:
        """The design as published for ``dataset`` (the architecture itself where the source
        gives no settings of that dataset). Besides global choices, the settings may hold
        ``num_layers`` (the layers' repeating pattern, e.g. GT-sep's attention and FFN,
        repeated to that depth) and ``layer`` (per-layer choices set in every layer)."""
        settings = dict(self.datasets.get((dataset or "").lower()) or {})
        if not settings:
            return self.architecture
        bad = [k for k in settings if k == "layers" or (k not in Architecture.model_fields and k != "layer")]
        if bad:
            raise ValueError(f"datasets.{dataset}: {bad[0]!r} is not a global choice of the architecture (nor 'layer')")
        base = self.architecture.model_dump()
        layers = _repeated(base["layers"], settings.get("num_layers", base["num_layers"]), dataset)
        every = settings.pop("layer", {})
        layers = [{**layer, **every} for layer in layers]
        return Architecture.model_validate({**base, **settings, "layers": layers})

    @property
    def ref(self) -> str:
        return f"{PREFIX}{self.name}"

    def summary(self) -> dict[str, Any]:
        arch = self.architecture
        return {"name": self.name, "title": self.title, "task": self.task, "arch_id": arch.arch_id,
                "layers": [layer.mpnn for layer in arch.layers], "published": self.published,
                "protocol": {**self.protocol.model_dump(), "lr": arch.lr, "weight_decay": arch.weight_decay,
                             "dropout": arch.dropout, "optimizer": arch.optimizer, "feature_norm": arch.feature_norm,
                             "lr_schedule": arch.lr_schedule},
                "datasets": self.datasets, "source": self.source.model_dump()}


def _repeated(layers: list[dict], depth: int, dataset: Optional[str]) -> list[dict]:
    """``layers``' shortest repeating pattern repeated to ``depth`` layers."""
    period = next(p for p in range(1, len(layers) + 1)
                  if len(layers) % p == 0 and all(layer == layers[i % p] for i, layer in enumerate(layers)))
    if depth % period:
        raise ValueError(f"datasets.{dataset}: num_layers={depth} is not a multiple of the layers' pattern of {period}")
    return [dict(layers[i % period]) for i in range(depth)]


def is_zoo_ref(text: Any) -> bool:
    return isinstance(text, str) and text.startswith(PREFIX)


def zoo_names() -> list[str]:
    folder = resources.files("graphnas.search_spaces").joinpath("zoo")
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


@lru_cache(maxsize=None)
def zoo_entry(name: str) -> ZooEntry:
    """The entry ``name`` (``gat`` or ``zoo:gat``); unknown names list the zoo."""
    name = name.removeprefix(PREFIX)
    if name not in zoo_names():
        raise ZooError(f"unknown zoo entry {name!r}; the zoo has: {', '.join(zoo_names())}")
    try:
        raw = load_yaml(resources.files("graphnas.search_spaces").joinpath("zoo", f"{name}.yaml").read_text())
    except DuplicateKeyError as err:
        raise ZooError(f"zoo/{name}.yaml: {err}") from None
    arch = raw.get("architecture", {})
    layers = list(arch.get("layers", ()))
    # a pattern of layers written once stands for the stack (a 15-layer GCN, GT-sep's attention and FFN)
    if layers and isinstance(arch.get("num_layers"), int) and arch["num_layers"] % len(layers) == 0:
        layers = _repeated(layers, arch["num_layers"], None)
    raw["architecture"] = {"space": f"{PREFIX}{name}", **arch, "layers": tuple(layers)}
    try:
        return ZooEntry.model_validate(raw)
    except ValidationError as err:
        raise ZooError(f"zoo/{name}.yaml: {err}") from None


def zoo_entries(task: Optional[str] = None) -> list[ZooEntry]:
    """Every entry, or those of one task."""
    return [e for e in map(zoo_entry, zoo_names()) if task is None or e.task == task]
