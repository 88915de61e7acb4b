"""Evaluators, one concept: what answers a trial's architecture with a :class:`TrialResult`.

A search never asks which evaluator it has by name; it reads what the evaluator declared.

Lifecycle:

1. **Registration** in :data:`EVALUATORS` declares capabilities:

   * ``trains`` (required): it trains each candidate, so its figures depend on the seed. A
     search then confirms its top trials with more seeds, runs the zoo's reference designs,
     may train a supernet, may run on Ray, and registers a finished run in the knowledge
     store. A table (NAS-Bench-Graph) answers from one seed's figures, none of that applies.
   * ``space``: the canonical form of the only space it answers (a table knows its cells).
   * ``flops``: whether it reports FLOPs (a table may not).
2. **Preparation**, once per process: ``EVALUATORS.get(name).prepare(settings, space)`` loads
   what it answers from (the dataset, or the table) before the banner and the first trial.
3. **evaluate(arch, report=None)** per trial. ``report(epoch, value)`` is the early-stopping
   hook of a training evaluator (it returns True to stop); a table ignores it.
   Raises on failure: the caller turns any exception into a failed trial
   (:mod:`nas.outcome`).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Optional, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from graphnas.evaluators.datasets import DataInfo, DatasetBundle, load_dataset
from graphnas.evaluators.result import TrialResult
from graphnas.evaluators.splits import Splits, check_folds
from graphnas.evaluators.training import Report, TrainConfig, evaluate
from graphnas.search_spaces import Architecture, SearchSpace
from graphnas.search_spaces.registry import Registry



class EvaluatorSettings(BaseModel):
    """What an evaluator is prepared from: the data and how to train on it. A
    search derives it from its own settings; the evaluators know nothing else of a search."""

    model_config = ConfigDict(frozen=True)

    dataset: str
    dataset_args: dict = Field(default_factory=dict)
    task: Optional[str] = None
    data_root: Optional[str] = None
    cache_dir: Optional[str] = None
    train: TrainConfig = Field(default_factory=TrainConfig)


@runtime_checkable
class Evaluator(Protocol):
    """What a search asks: ``name`` (the dataset), ``metric`` (its default metric), ``info``
    (what a model built for it must know; None where no model is built) and
    :meth:`evaluate`."""

    name: str
    metric: str
    info: Optional[DataInfo]

    def evaluate(self, arch: Architecture, report: Optional[Report] = None) -> TrialResult:
        """The architecture's figures: trained and measured, or looked up."""


EVALUATORS: Registry[Any] = Registry("evaluator", capabilities={
    "trains": "trains each candidate: figures depend on the seed (confirmation, references, supernets, Ray, "
              "knowledge)",
    "space": "the canonical form of the only space it answers",
    "flops": "reports FLOPs"}, required=("trains",))


@EVALUATORS.register("train", "Train every candidate on the dataset and measure its cost", trains=True, flops=True)
@dataclass
class TrainingEvaluator:
    """Trains each candidate from scratch on ``bundle`` with ``train`` (see
    :func:`evaluators.training.evaluate`). ``bundle`` stays reachable: supernets and the
    knowledge store's fingerprints read the data itself."""

    bundle: DatasetBundle
    train: TrainConfig

    @classmethod
    def prepare(cls, settings: EvaluatorSettings, space: SearchSpace) -> "TrainingEvaluator":
        bundle = load_dataset(settings.dataset, settings.data_root,
                              Path(settings.cache_dir) if settings.cache_dir else None,
                              encodings=space.encodings(), dataset_args=settings.dataset_args,
                              feature_norms=space.feature_norms(), task=settings.task, split=settings.train.split)
        check_folds(bundle, settings.train.folds)  # once, before the first trial
        return cls(bundle, settings.train)

    @property
    def name(self) -> str:
        return self.bundle.name

    @property
    def metric(self) -> str:
        return self.bundle.metric

    @property
    def info(self) -> DataInfo:
        return self.bundle.info

    def evaluate(self, arch: Architecture, report: Optional[Report] = None, seed: Optional[int] = None) -> TrialResult:
        """``seed``: another seed than the run's (a confirmation's)."""
        train = self.train if seed is None else self.train.model_copy(update={"seed": seed})
        return evaluate(arch, self.bundle, train, report)

    def evaluate_splits(self, arch: Architecture, splits: Splits) -> TrialResult:
        """One training on other splits of the same data (a confirmation's fold), with the
        run's seed and settings."""
        return evaluate(arch, replace(self.bundle, splits=splits), self.train.model_copy(update={"folds": 1, "fold": None}))
