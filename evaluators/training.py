"""Train and measure one architecture: the evaluator that strategies call.

Full-batch node classification with AdamW and early stopping on the validation metric.
The test metric is read at the epoch of best validation and only reported.
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass
from typing import Callable, Literal, Optional

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import nn
from torch_geometric import seed_everything

from evaluators.cost import measure_cost
from evaluators.datasets import DatasetBundle
from evaluators.metrics import get_metric
from evaluators.result import TrialResult
from search_spaces import Architecture, build_model, model_inputs

Report = Callable[[int, float], bool]  # (epoch, validation value) -> stop this trial?


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""


class TrialPruned(RuntimeError):
    """``report`` asked to stop this trial early."""


class TrainConfig(BaseModel):
    """How candidates are trained. Passed explicitly; there is no global config."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    epochs: int = Field(default=200, ge=1)
    patience: int = Field(default=50, ge=1)
    seed: int = 0
    device: str = "auto"
    amp: bool = True  # bf16 autocast, used on CUDA only
    metric: Optional[str] = None  # None: the dataset's own
    latency_repeats: int = Field(default=5, ge=1)


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


@dataclass
class TrainedModel:
    """A model holding the weights of its best validation epoch, and its measured figures."""

    model: nn.Module
    result: TrialResult


def evaluate(arch: Architecture, bundle: DatasetBundle, config: TrainConfig,
             report: Optional[Report] = None) -> TrialResult:
    """Train ``arch`` from scratch on ``bundle`` and measure it. Raises on failure
    (:class:`TrainingDiverged`, out of memory, ...): the caller records a failed trial."""
    return train_model(arch, bundle, config, report).result


def train_model(arch: Architecture, bundle: DatasetBundle, config: TrainConfig,
                report: Optional[Report] = None) -> TrainedModel:
    """As :func:`evaluate`, and keep the model, restored to its best validation epoch (the
    epoch whose figures are reported)."""
    seed_everything(config.seed)
    device = resolve_device(config.device)
    metric = get_metric(config.metric or bundle.metric)
    model = build_model(arch, bundle.info).to(device)
    data = bundle.data.to(device)
    inputs = model_inputs(data, arch)
    y = data.y
    train, val, test = (idx.to(device) for idx in (bundle.splits.train, bundle.splits.val, bundle.splits.test))
    autocast = torch.autocast(device_type=device.type, dtype=torch.bfloat16,
                              enabled=config.amp and device.type == "cuda")
    opt = torch.optim.AdamW(model.parameters(), lr=arch.lr, weight_decay=arch.weight_decay)

    best_val, test_at_best, best_epoch, stale = metric.worst, math.nan, -1, 0
    best_state = copy.deepcopy(model.state_dict())
    start = time.perf_counter()
    epoch = 0
    for epoch in range(config.epochs):
        model.train()
        opt.zero_grad(set_to_none=True)
        with autocast:
            loss = F.cross_entropy(model(**inputs)[train].float(), y[train])
        if not torch.isfinite(loss):
            raise TrainingDiverged(f"loss is {loss.item()} at epoch {epoch}")
        loss.backward()
        opt.step()

        model.eval()
        with torch.no_grad(), autocast:
            out = model(**inputs)
        val_value = metric(out[val], y[val])
        if metric.better(val_value, best_val):
            best_val, test_at_best, best_epoch, stale = val_value, metric(out[test], y[test]), epoch, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            stale += 1
        if report is not None and report(epoch, val_value):
            raise TrialPruned(f"stopped at epoch {epoch} with validation {metric.name} {val_value:.4f}")
        if stale >= config.patience:
            break
    train_time = time.perf_counter() - start
    model.load_state_dict(best_state)

    cost = measure_cost(model, config.latency_repeats, **inputs)
    result = TrialResult(arch_id=arch.arch_id, arch_json=arch.to_json(), metric=metric.name,
                         val_metric=best_val, test_metric=test_at_best, flops=cost.flops,
                         params=cost.params, latency_ms=cost.latency_ms, train_time_s=train_time,
                         epochs=epoch + 1, best_epoch=best_epoch, device=str(device))
    return TrainedModel(model.eval(), result)
