"""Metrics with their direction. A dataset declares its metric; ``--metric`` overrides it."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from sklearn.metrics import f1_score
from torch import Tensor

from search_spaces.registry import Registry


@dataclass(frozen=True)
class Metric:
    name: str
    direction: str  # "maximize" | "minimize"
    fn: Callable[[Tensor, Tensor], float]  # (logits [n, C], labels [n]) -> value

    def __call__(self, logits: Tensor, y: Tensor) -> float:
        return float(self.fn(logits.detach().float().cpu(), y.detach().cpu()))

    def better(self, a: float, b: float) -> bool:
        """Is ``a`` strictly better than ``b``?"""
        return a > b if self.direction == "maximize" else a < b

    @property
    def worst(self) -> float:
        return float("-inf") if self.direction == "maximize" else float("inf")


METRICS: Registry[Metric] = Registry("metric")


def _accuracy(logits: Tensor, y: Tensor) -> float:
    return (logits.argmax(-1) == y).float().mean().item()


def _macro_f1(logits: Tensor, y: Tensor) -> float:
    return f1_score(y.numpy(), logits.argmax(-1).numpy(), average="macro", zero_division=0)


METRICS.register("accuracy", "Fraction of correctly classified items (maximize)")(
    Metric("accuracy", "maximize", _accuracy))
METRICS.register("macro_f1", "F1 averaged over classes with equal weight (maximize)")(
    Metric("macro_f1", "maximize", _macro_f1))


def get_metric(name: str) -> Metric:
    return METRICS.get(name)


__all__ = ["METRICS", "Metric", "get_metric"]
