"""The one-choice neighbours a search's confirmation adds to its finalists
(``--confirm-neighbours M``).

A search selects on one validation split. On a graph task of a few hundred graphs that split
cannot tell the best trial from a design one choice away, and one choice can be worth points:
on IMDB-BINARY the selected design with weight decay 0 instead of 1e-4 measured 75.9 against
73.3 over 10 folds (benchmarks/README.md). So the confirmation may train the best trial's
unseen neighbours too, and rank them with the finalists on the same folds.

Which neighbours, when there are more than ``M``: those whose changed choice did best across
the search's own trials (its main effect: the mean validation of the trials that made that
choice, against the best trial's value). The search already paid for that evidence; a
neighbour with a choice no trial made scores the mean of all trials. Optuna's importance
evaluators rank parameters, not values, so they do not say which way to move.
"""
from __future__ import annotations

import math
from typing import Any, Optional

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

from graphnas.evaluators.result import TrialResult
from graphnas.results.store import NEIGHBOUR_ATTR
from graphnas.search_spaces import SearchSpace

__all__ = ["NEIGHBOUR_ATTR", "neighbour_params"]


def neighbour_params(space: SearchSpace, best: FrozenTrial, trials: list[FrozenTrial], limit: int,
                     seed: int, maximize: bool) -> list[dict[str, Any]]:
    """The parameters of up to ``limit`` unseen neighbours of ``best``, the most promising
    first (see the module docstring); ties in a seeded random order."""
    seen = {_canonical_id(space, t) for t in trials} - {None}
    children = list(space.neighbours(dict(best.params), np.random.default_rng(seed), seen))
    effects = _main_effects(trials)
    fallback = float(np.mean(list(effects.values()))) if effects else 0.0

    def gain(child: dict[str, Any]) -> float:
        changed = [k for k in child if best.params.get(k) != child[k]]
        delta = sum(effects.get((k, child[k]), fallback) - effects.get((k, best.params.get(k)), fallback)
                    for k in changed)
        return delta if maximize else -delta

    return sorted(children, key=gain, reverse=True)[:limit]  # sorted is stable: ties keep the random order


def _canonical_id(space: SearchSpace, trial: FrozenTrial) -> Optional[str]:
    """The canonical id of a trial's architecture; None while its parameters are partial."""
    params = trial.system_attrs.get("fixed_params") or trial.params
    try:
        return space.canonical_id(space.suggest(optuna.trial.FixedTrial(params)))
    except (ValueError, KeyError):  # a running trial that has not drawn every choice yet
        return None


def _main_effects(trials: list[FrozenTrial]) -> dict[tuple[str, Any], float]:
    """(parameter, value) -> mean validation metric of the completed trials with that value."""
    by_value: dict[tuple[str, Any], list[float]] = {}
    for t in trials:
        val = _val(t)
        if t.state != TrialState.COMPLETE or val is None:
            continue
        for name, value in t.params.items():
            by_value.setdefault((name, value), []).append(val)
    return {key: float(np.mean(vals)) for key, vals in by_value.items()}


def _val(trial: FrozenTrial) -> Optional[float]:
    val = TrialResult.unpack(trial.user_attrs).get("val_metric")
    return float(val) if val is not None and math.isfinite(val) else None
