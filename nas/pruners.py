"""Early stopping of hopeless trials: Optuna pruners by name.

Optuna prunes single-objective studies only; a multi-objective search with a pruner other
than ``none`` is refused with a message saying so."""
from __future__ import annotations

from typing import Callable

import optuna

from search_spaces.registry import Registry

PRUNERS: Registry[Callable[[], optuna.pruners.BasePruner]] = Registry("pruner")

PRUNERS.register("none", "Never stop a trial early")(optuna.pruners.NopPruner)
PRUNERS.register("median", "Stop a trial whose validation is below the median of earlier trials at "
                 "the same epoch (after 5 trials and 10 epochs)")(
    lambda: optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=10))
PRUNERS.register("asha", "Asynchronous successive halving: keep the top third at epochs 10, 30, 90, ...")(
    lambda: optuna.pruners.SuccessiveHalvingPruner(min_resource=10, reduction_factor=3))
