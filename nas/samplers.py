"""Black-box strategies: each name builds an Optuna sampler."""
from __future__ import annotations

import warnings
from typing import Callable

import optuna

from search_spaces.registry import Registry

SamplerFactory = Callable[[int, int], optuna.samplers.BaseSampler]  # (seed, n_objectives) -> sampler
STRATEGIES: Registry[SamplerFactory] = Registry("strategy")


@STRATEGIES.register("tpe", "Tree-structured Parzen estimator (multi-objective MOTPE when several objectives)")
def tpe(seed: int, n_objectives: int) -> optuna.samplers.BaseSampler:
    # multivariate + group model the choices jointly, per set of parameters that occur
    # together (layer2.* exists only with 3 layers); constant_liar keeps parallel workers
    # from proposing the same candidate.
    with warnings.catch_warnings():  # these options are marked experimental
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=8, multivariate=True, group=True,
                                          constant_liar=True)


@STRATEGIES.register("random", "Uniform random sampling of the space")
def random(seed: int, n_objectives: int) -> optuna.samplers.BaseSampler:
    return optuna.samplers.RandomSampler(seed=seed)


@STRATEGIES.register("nsga2", "NSGA-II evolutionary multi-objective search")
def nsga2(seed: int, n_objectives: int) -> optuna.samplers.BaseSampler:
    return optuna.samplers.NSGAIISampler(seed=seed, population_size=10)
