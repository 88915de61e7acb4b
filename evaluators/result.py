"""``TrialResult``: everything measured about one evaluated architecture."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

# The Optuna user attribute holding a trial's figures, all in one write (each attribute is
# its own storage transaction); ``arch_id`` and ``arch_json`` are attributes of their own,
# set when the trial's architecture is drawn. Older runs hold every figure as an attribute.
RESULT_ATTR = "result"
IDENTITY_FIELDS = ("arch_id", "arch_json")


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

    def to_record(self) -> dict[str, Any]:
        """The trial attribute that records this result: the figures packed in one (the
        trial already holds ``arch_id`` and ``arch_json``, set when it was drawn)."""
        return {RESULT_ATTR: {k: v for k, v in asdict(self).items() if k not in IDENTITY_FIELDS}}

    @staticmethod
    def unpack(attrs: dict[str, Any]) -> dict[str, Any]:
        """A trial's user attributes with its packed figures spread out (old runs: as they are)."""
        packed = attrs.get(RESULT_ATTR)
        return {**{k: v for k, v in attrs.items() if k != RESULT_ATTR}, **packed} if packed else dict(attrs)

    @classmethod
    def from_attrs(cls, attrs: dict[str, Any]) -> "TrialResult":
        attrs = cls.unpack(attrs)
        return cls(**{f.name: attrs[f.name] for f in fields(cls) if f.name in attrs})  # older runs lack new fields

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]
