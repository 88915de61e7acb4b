"""One place that turns what became of a trial's evaluation (a result, a pruning, or an
exception) into its Optuna state, objective values and recorded attributes; the local loop
and the Ray backend both tell their trials through it (the role of Optuna's
``_optimize._run_trial``)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Optional

import optuna
from optuna.trial import TrialState

from graphnas.evaluators.result import TrialResult
from graphnas.results.objectives import Objective

ERROR_CHARS = 2000  # an error message is kept to this length in the trial's attributes


@dataclass(frozen=True)
class Outcome:
    """A trial's state, its values (COMPLETE only) and the user attributes to record."""

    state: TrialState
    values: Optional[list[float]] = None
    attrs: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        """One line for the log (formatted only when a record is emitted): the state and its
        values, error or reason."""
        detail = (", ".join(f"{v:.4g}" for v in self.values) if self.values
                  else self.attrs.get("error") or self.attrs.get("pruned") or "")
        return f"{self.state.name} {detail}".strip()


def completed(result: TrialResult, objectives: list[Objective]) -> Outcome:
    """COMPLETE with the result's objective values, or FAIL when one is not finite: Optuna
    would store an infinite value as COMPLETE and it would top the Pareto front."""
    attrs = result.to_record()
    values = [float(getattr(result, o.column)) for o in objectives]
    if not all(math.isfinite(v) for v in values):
        return Outcome(TrialState.FAIL, attrs={**attrs, "error": f"non-finite objective values {values}"})
    return Outcome(TrialState.COMPLETE, values, attrs)


def failed(error: BaseException | str) -> Outcome:
    """FAIL with the candidate's error; the search goes on."""
    message = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    return Outcome(TrialState.FAIL, attrs={"error": message[:ERROR_CHARS]})


OVER_BUDGET_ATTR = "over_budget"


def over_budget(reason: str) -> Outcome:
    """FAIL without training: the candidate's estimated cost exceeds the trial's budget. The
    sampler learns to avoid it; the search's budget does not count it."""
    return Outcome(TrialState.FAIL, attrs={"error": reason[:ERROR_CHARS], OVER_BUDGET_ATTR: True})


def pruned(reason: str) -> Outcome:
    """PRUNED: stopped early by a pruner; counted in the budget, not a failure."""
    return Outcome(TrialState.PRUNED, attrs={"pruned": reason})


def tell(study: optuna.Study, trial: optuna.Trial, outcome: Outcome) -> str:
    """Record ``outcome``'s attributes on ``trial`` and tell the study; returns the state's name."""
    for key, value in outcome.attrs.items():
        trial.set_user_attr(key, value)
    study.tell(trial, outcome.values, state=outcome.state)
    return outcome.state.name
