"""Figures of a run that reports and comparisons show: progress, hypervolume, importances,
operator frequencies and a one-row summary. Pure functions of the trials table."""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Optional

import moocore
import numpy as np
import optuna
import pandas as pd

from graphnas.results.objectives import Objective
from graphnas.search_spaces.param_key import ParamKey


def completed(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[frame["state"] == "COMPLETE"].sort_values("trial")


def references(frame: pd.DataFrame) -> pd.DataFrame:
    """The trials that are zoo designs run as references (``--reference``)."""
    if "reference" not in frame:
        return frame.iloc[:0]
    return frame[frame["reference"].fillna("").astype(str) != ""]


def best_so_far(frame: pd.DataFrame, maximize: bool) -> pd.DataFrame:
    """Per completed trial, in completion order: ``trial, elapsed_s, value, best``."""
    done = completed(frame)
    if "elapsed_s" in done:
        done = done.sort_values("elapsed_s")
    values = done["val_metric"].to_numpy(dtype=float)
    best = np.maximum.accumulate(values) if maximize else np.minimum.accumulate(values)
    return pd.DataFrame({"trial": done["trial"].to_numpy(), "elapsed_s": done.get("elapsed_s", done["trial"]).to_numpy(),
                         "value": values, "best": best})


@dataclass(frozen=True)
class Reference:
    """Hypervolume reference point: the worst validation metric and the most cost that
    counts; points beyond it add nothing. ``flops`` holds the cost's reference value, in
    the column ``cost`` (FLOPs, or latency_ms for a table that has no FLOPs)."""

    metric: float
    flops: float
    cost: str = "flops"

    @classmethod
    def of(cls, frames: list[pd.DataFrame], maximize: bool, cost: str = "flops") -> "Reference":
        done = pd.concat([completed(f) for f in frames])
        worst = done["val_metric"].min() if maximize else done["val_metric"].max()
        return cls(float(worst), float(done[cost].max()) * 1.1, cost)


def hypervolume(frame: pd.DataFrame, ref: Reference, maximize: bool) -> float:
    """Area dominated by the completed trials in (validation metric, FLOPs / ref.flops),
    bounded by ``ref``: a front that is better everywhere has a larger value."""
    done = completed(frame)
    if done.empty:
        return 0.0
    points = np.column_stack([done["val_metric"].to_numpy(float), done[ref.cost].to_numpy(float) / ref.flops])
    return _hypervolume(points, ref, maximize)


def _hypervolume(points: np.ndarray, ref: Reference, maximize: bool) -> float:
    """Of ``points`` (metric, cost / ref.flops), bounded by ``ref``."""
    return float(moocore.hypervolume(points, ref=[ref.metric, 1.0], maximise=[maximize, False]))


def hypervolume_history(frame: pd.DataFrame, ref: Reference, maximize: bool) -> pd.DataFrame:
    """The hypervolume after each completed trial, in trial order. Only a trial that joins
    the front changes it, so only then is it computed, from the front alone: recomputing it
    from every earlier trial after each one took 28 s at 10,000 trials."""
    done = completed(frame)
    sign = 1.0 if maximize else -1.0  # as "larger is better" for the metric
    front = np.empty((0, 2))  # (metric as larger-is-better, cost / ref), non-dominated
    value, rows = 0.0, []
    for trial, metric, cost in zip(done["trial"], done["val_metric"].to_numpy(float),
                                   done[ref.cost].to_numpy(float) / ref.flops):
        point = np.array([sign * metric, cost])
        if not ((front[:, 0] >= point[0]) & (front[:, 1] <= point[1])).any():  # adds to the dominated area
            keep = ~((front[:, 0] <= point[0]) & (front[:, 1] >= point[1]))
            front = np.vstack([front[keep], point])
            value = _hypervolume(np.column_stack([sign * front[:, 0], front[:, 1]]), ref, maximize)
        rows.append((int(trial), value))
    return pd.DataFrame(rows, columns=["trial", "hypervolume"])


def time_to_fraction(frame: pd.DataFrame, maximize: bool, fraction: float = 0.99) -> Optional[float]:
    """Seconds from the run's start until the best-so-far value first came within
    ``1 - fraction`` of the final best (relative)."""
    curve = best_so_far(frame, maximize)
    if curve.empty:
        return None
    final = curve["best"].iloc[-1]
    target = final - (1 - fraction) * abs(final) if maximize else final + (1 - fraction) * abs(final)
    reached = curve[curve["best"] >= target] if maximize else curve[curve["best"] <= target]
    return float(reached["elapsed_s"].iloc[0])


def operator_frequency(frame: pd.DataFrame, maximize: bool, top_fraction: float = 0.25,
                       field: str = "mpnn") -> pd.DataFrame:
    """Counts of each operator per layer among the top ``top_fraction`` completed trials:
    rows are layers (``layer0``, ...), columns operators."""
    done = completed(frame).sort_values("val_metric", ascending=not maximize)
    top = done.head(max(1, math.ceil(len(done) * top_fraction)))
    keys = {c: ParamKey.parse(c) for c in top.columns}
    columns = sorted(c for c, key in keys.items() if key.layer is not None and key.field == field)
    counts = {f"layer{keys[c].layer}": top[c].value_counts() for c in columns}
    return pd.DataFrame(counts).T.fillna(0).astype(int) if counts else pd.DataFrame()


# fANOVA's random forest grows with the trials: a 2,000-trial tabular run took 170 s to
# score, and 10,000 would not finish in the report's 30 s. Above this many completed trials
# the report uses Optuna's PED-ANOVA (0.1 s at 2,000 trials), which scores each choice by
# how differently the top 10% of trials pick it than all trials do.
FANOVA_MAX_TRIALS = 200


def importance_method(completed: int) -> str:
    """The importance measure a report uses for a run of ``completed`` trials."""
    return "fANOVA" if completed <= FANOVA_MAX_TRIALS else "PED-ANOVA, top 10%"


def importances(study: optuna.Study) -> dict[str, float]:
    """Importance of each choice for the first objective (the validation metric), by the
    measure of :func:`importance_method`; empty when there are too few completed trials
    to fit it."""
    done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if len(done) < 3:
        return {}
    fanova = len(done) <= FANOVA_MAX_TRIALS
    evaluator = (optuna.importance.FanovaImportanceEvaluator(seed=0) if fanova
                 else optuna.importance.PedAnovaImportanceEvaluator())
    # PED-ANOVA asks which choices the best trials share, the best being the lowest values:
    # a metric to maximise is negated (fANOVA's variance does not care)
    sign = -1.0 if not fanova and study.directions[0] == optuna.study.StudyDirection.MAXIMIZE else 1.0
    try:
        with warnings.catch_warnings():  # PED-ANOVA is marked experimental
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            found = optuna.importance.get_param_importances(study, evaluator=evaluator,
                                                            target=lambda t: sign * t.values[0])
        return {name: float(value) for name, value in found.items()}
    except (ValueError, RuntimeError):  # e.g. no parameter common to all trials
        return {}


def elapsed_column(study: optuna.Study, frame: pd.DataFrame) -> pd.DataFrame:
    """Add ``elapsed_s``: seconds from the run's first trial start to each trial's end."""
    trials = study.get_trials(deepcopy=False)  # study.trials deep-copies them: 3 s at 10,000 trials
    starts = [t.datetime_start for t in trials if t.datetime_start]
    if not starts or frame.empty:
        return frame.assign(elapsed_s=np.nan)
    origin = min(starts)
    ends = {t.number: (t.datetime_complete - origin).total_seconds() if t.datetime_complete else np.nan
            for t in trials}
    return frame.assign(elapsed_s=frame["trial"].map(ends))


@dataclass(frozen=True)
class RunSummary:
    """One row of a comparison."""

    run: str
    strategy: str
    space: str
    dataset: str
    metric: str
    trials: int
    wall_time_s: float
    best_val: float
    test_of_best: float
    flops_of_best: float
    hypervolume: float
    time_to_99pct_s: Optional[float]
    # the best (by validation) zoo design run as a reference trial, if the run had any
    best_reference: Optional[str] = None
    reference_val: Optional[float] = None
    reference_flops: Optional[float] = None


def best_reference(frame: pd.DataFrame, maximize: bool) -> Optional[pd.Series]:
    """The completed reference trial with the best validation metric (ties: fewer FLOPs)."""
    refs = references(completed(frame))
    if refs.empty:
        return None
    return refs.sort_values(["val_metric", "flops"], ascending=[not maximize, True]).iloc[0]


def objective_direction(objectives: list[Objective]) -> bool:
    """Is the validation metric maximised?"""
    metric = next((o for o in objectives if o.name == "metric"), None)
    return metric is None or metric.direction == "maximize"
