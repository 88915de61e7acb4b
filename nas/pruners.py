"""Early stopping of hopeless trials: Optuna pruners by name, and the rule that stands in
for them in multi-objective searches.

Optuna prunes single-objective studies only (``Trial.report`` refuses multi-objective
ones). For those our explicit rule is :class:`MetricMedianRule`: the median rule on the
metric objective alone, read from the validation curves that finished trials keep in
their user attributes. The cost objectives are not looked at: they are only known once a
trial ends, and a trial is never stopped for being cheap or expensive.
"""
from __future__ import annotations

import statistics
from typing import Callable, Sequence

import optuna
from optuna.trial import TrialState

from graphnas.search_spaces.registry import Registry

PRUNERS: Registry[Callable[[], optuna.pruners.BasePruner]] = Registry("pruner")

PRUNERS.register("none", "Never stop a trial early")(optuna.pruners.NopPruner)
PRUNERS.register("median", "Stop a trial whose validation is below the median of earlier trials at "
                 "the same epoch (after 5 trials and 10 epochs)")(
    lambda: optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=10))
PRUNERS.register("asha", "Asynchronous successive halving: keep the top third at epochs 10, 30, 90, ...")(
    lambda: optuna.pruners.SuccessiveHalvingPruner(min_resource=10, reduction_factor=3))
PRUNERS.register("hyperband", "Hyperband: successive halving in several brackets from epoch 10, factor 3 "
                 "(Li et al. 2018)")(
    lambda: optuna.pruners.HyperbandPruner(min_resource=10, reduction_factor=3))

# What a search with --pruner auto (the default) uses: successive halving over epochs for a
# search that trains its candidates (cheap low-epoch rungs rank many, the promising ones train
# to the end), none where nothing trains per trial (a table) or one supernet trains (darts).
AUTO = "asha"
PRUNERS.register("auto", "The default: asha when each candidate trains, none for a table or a supernet")(
    lambda: optuna.pruners.SuccessiveHalvingPruner(min_resource=10, reduction_factor=3))
MULTI_OBJECTIVE_PRUNERS = ("none", "median", "asha")  # what the metric rules below stand in for
CURVE_ATTR = "val_curve"  # user attribute: the validation metric of every epoch a trial ran


class MetricMedianRule:
    """``should_prune(study, curve)``: ``curve`` is the running trial's validation metric per
    epoch so far. Stop it when, after ``warmup_epochs`` epochs and once ``startup_trials``
    trials have finished (complete or pruned) with curves, its best value so far is worse
    than the median of those trials' best values up to the same epoch (trials that stopped
    earlier count with their last best). As Optuna's MedianPruner, on one objective."""

    def __init__(self, maximize: bool, startup_trials: int = 5, warmup_epochs: int = 10) -> None:
        self.maximize, self.startup_trials, self.warmup_epochs = maximize, startup_trials, warmup_epochs

    def should_prune(self, study: optuna.Study, curve: Sequence[float]) -> bool:
        epoch = len(curve) - 1
        if epoch < self.warmup_epochs:
            return False
        best = max if self.maximize else min
        others = [t.user_attrs[CURVE_ATTR] for t in study.get_trials(
            deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)) if t.user_attrs.get(CURVE_ATTR)]
        if len(others) < self.startup_trials:
            return False
        median = statistics.median(best(c[:epoch + 1]) for c in others)
        mine = best(curve)
        return mine < median if self.maximize else mine > median


class MetricHalvingRule:
    """Asynchronous successive halving (Li et al., MLSys 2020) on the metric objective alone,
    for multi-objective searches, where Optuna's ``SuccessiveHalvingPruner`` refuses to run.
    Its rule is Optuna's: at the rungs ``min_epochs * reduction_factor**k`` epochs a trial goes
    on only if its best validation so far is within the top ``1 / reduction_factor`` of the
    trials that reached the same rung (their best up to that epoch, from the curves finished
    trials keep); the first trials at a rung, fewer than ``reduction_factor``, go on only if
    they are the best there, as Optuna does (it cannot pause a trial to wait for others)."""

    def __init__(self, maximize: bool, min_epochs: int = 10, reduction_factor: int = 3) -> None:
        self.maximize, self.min_epochs, self.reduction_factor = maximize, min_epochs, reduction_factor

    def is_rung(self, epochs: int) -> bool:
        rung = self.min_epochs
        while rung < epochs:
            rung *= self.reduction_factor
        return rung == epochs

    def should_prune(self, study: optuna.Study, curve: Sequence[float]) -> bool:
        epochs = len(curve)
        if not self.is_rung(epochs):
            return False
        best = max if self.maximize else min
        mine = best(curve)
        values = [best(t.user_attrs[CURVE_ATTR][:epochs]) for t in study.get_trials(
            deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
            if len(t.user_attrs.get(CURVE_ATTR) or ()) >= epochs] + [mine]
        values.sort(reverse=self.maximize)
        threshold = values[max(len(values) // self.reduction_factor - 1, 0)]
        return mine < threshold if self.maximize else mine > threshold


# the rule standing in for each pruner of MULTI_OBJECTIVE_PRUNERS (none needs none)
METRIC_RULES: dict[str, Callable[[bool], object]] = {"median": MetricMedianRule, "asha": MetricHalvingRule}
