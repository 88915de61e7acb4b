"""Metrics with their direction. A dataset declares its metric; ``--metric`` overrides it."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import Tensor

from graphnas.search_spaces.registry import Registry


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


def _sklearn(name: str) -> Callable:
    """``sklearn.metrics.<name>``, imported at its first call: sklearn takes about a second
    to import, which every process of a search (the CLI, each worker) would pay for metrics
    that most datasets never use."""
    def score(*args, **kwargs):
        from sklearn import metrics

        return getattr(metrics, name)(*args, **kwargs)
    return score


def _accuracy(logits: Tensor, y: Tensor) -> float:
    return (logits.argmax(-1) == y).float().mean().item()


def _macro_f1(logits: Tensor, y: Tensor) -> float:
    return _sklearn("f1_score")(y.numpy(), logits.argmax(-1).numpy(), average="macro", zero_division=0)


METRICS.register("accuracy", "Fraction of correctly classified items (maximize)")(
    Metric("accuracy", "maximize", _accuracy))
METRICS.register("macro_f1", "F1 averaged over classes with equal weight (maximize)")(
    Metric("macro_f1", "maximize", _macro_f1))


def _mae(pred: Tensor, y: Tensor) -> float:
    return (pred.view(len(y), -1) - y.view(len(y), -1).float()).abs().mean().item()


def _positive_scores(logits: Tensor) -> "np.ndarray":
    return torch.softmax(logits, -1)[:, 1].numpy() if logits.size(-1) == 2 else torch.sigmoid(logits).numpy()


def _binary_or_multilabel(score: Callable) -> Callable[[Tensor, Tensor], float]:
    """A binary score; for multi-label targets (float ``[n, T]``, NaN = missing), its mean
    over the labels that have both classes among the items present (OGB's convention)."""
    def metric(logits: Tensor, y: Tensor) -> float:
        if y.dim() == 2 and y.is_floating_point():
            probs, labels = torch.sigmoid(logits.view(y.shape)).numpy(), y.numpy()
            values = []
            for j in range(labels.shape[1]):
                present = ~np.isnan(labels[:, j])
                if len(np.unique(labels[present, j])) == 2:
                    values.append(score(labels[present, j], probs[present, j]))
            return float(np.mean(values)) if values else float("nan")
        return float(score(y.numpy(), _positive_scores(logits)))
    return metric


_roc_auc = _binary_or_multilabel(_sklearn("roc_auc_score"))
_average_precision = _binary_or_multilabel(_sklearn("average_precision_score"))


METRICS.register("mae", "Mean absolute error of a regression target (minimize)")(Metric("mae", "minimize", _mae))
METRICS.register("roc_auc", "Area under the ROC curve; binary, or mean over labels of a multi-label task (maximize)")(
    Metric("roc_auc", "maximize", _roc_auc))
METRICS.register("average_precision", "Average precision; binary, or mean over labels (maximize)")(
    Metric("average_precision", "maximize", _average_precision))


def get_metric(name: str) -> Metric:
    return METRICS.get(name)


__all__ = ["METRICS", "Metric", "get_metric"]
