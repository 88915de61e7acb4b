"""``TrialResult``: everything measured about one evaluated architecture."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any


@dataclass(frozen=True)
class TrialResult:
    """One record per trial, stored as Optuna user attributes and flattened into trials.csv.

    ``val_metric`` selects architectures; ``test_metric`` (at the epoch of best validation)
    is only ever reported.
    """

    arch_id: str
    arch_json: str
    metric: str
    val_metric: float
    test_metric: float
    flops: int
    params: int
    latency_ms: float
    train_time_s: float
    epochs: int
    best_epoch: int
    device: str
    peak_memory_mib: float = float("nan")  # CUDA max allocated on a GPU, process RSS on the CPU

    def to_attrs(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_attrs(cls, attrs: dict[str, Any]) -> "TrialResult":
        return cls(**{f.name: attrs[f.name] for f in fields(cls) if f.name in attrs})  # older runs lack new fields

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]
