"""Pareto fronts over trials (moocore's non-dominated filter)."""
from __future__ import annotations

from dataclasses import dataclass

import moocore
import numpy as np
import pandas as pd

from graphnas.results.objectives import Objective


@dataclass(frozen=True)
class ParetoFront:
    """The non-dominated completed trials on ``objectives``, sorted by the first objective's
    cost column (FLOPs when present) ascending."""

    objectives: tuple[Objective, ...]
    trials: pd.DataFrame

    @classmethod
    def of(cls, frame: pd.DataFrame, objectives: list[Objective]) -> "ParetoFront":
        done = frame[frame["state"] == "COMPLETE"] if len(frame) else frame
        if done.empty:
            return cls(tuple(objectives), done)
        points = done[[o.column for o in objectives]].to_numpy(dtype=float)
        maximise = np.array([o.direction == "maximize" for o in objectives])
        mask = moocore.is_nondominated(points, maximise=maximise, keep_weakly=True)
        front = done[mask]
        sort_cols = [o.column for o in objectives if o.direction == "minimize"] or [objectives[0].column]
        return cls(tuple(objectives), front.sort_values(sort_cols + ["trial"]))

    def __len__(self) -> int:
        return len(self.trials)

    @property
    def cost(self) -> str:
        """The cost column the front trades the metric against: its first cost objective
        (FLOPs unless the run optimised latency or parameters, as a table without FLOPs does)."""
        return next((o.column for o in self.objectives if o.column != "val_metric"), "flops")

    def to_records(self) -> list[dict]:
        cols = ["trial", "arch_id", "val_metric", "test_metric", "flops", "params", "latency_ms", "arch_json"]
        return [{c: _plain(row[c]) for c in cols if c in row} for _, row in self.trials.iterrows()]


def _plain(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    return value


def front_objectives(objectives: list[Objective]) -> list[Objective]:
    """The objectives of a run's Pareto front: its own when there are several; a
    single-objective run gets FLOPs added, so that every search logs a trade-off front."""
    if len(objectives) > 1 or objectives[0].column == "flops":
        return list(objectives)
    return list(objectives) + [Objective("flops", "flops", "minimize")]
