"""Optuna's samplers as strategies (TPE, random, NSGA-II), each wrapped by
:class:`~nas.proposals.DistinctSampler`, which turns a repeat into an unseen neighbour."""
from __future__ import annotations

import threading
import warnings
from abc import abstractmethod
from typing import TYPE_CHECKING, Optional

import optuna

from graphnas.nas.tpe import IncrementalTPESampler
from graphnas.nas.strategy_base import STRATEGIES, Strategy
from graphnas.search_spaces import SearchSpace
from graphnas.nas.proposals import DistinctSampler, _Ids

if TYPE_CHECKING:
    from graphnas.nas.knowledge import Transfer


class OptunaStrategy(Strategy):
    """An Optuna sampler made distinct: :class:`DistinctSampler` draws its proposal whole
    before the trial starts and, where the architecture is one the study holds, proposes an
    unseen neighbour of it instead. Subclasses give the sampler."""

    def __init__(self, space: SearchSpace, seed: int, n_objectives: int,
                 transfer: Optional["Transfer"] = None) -> None:
        super().__init__(space, seed, n_objectives, transfer)
        self.ids = _Ids(space, seed, n_objectives, transfer)  # canonical ids and random unseen draws

    @abstractmethod
    def optuna_sampler(self) -> optuna.samplers.BaseSampler:
        """The wrapped Optuna sampler."""

    def sampler(self) -> optuna.samplers.BaseSampler:
        return DistinctSampler(self.ids, self.optuna_sampler())


@STRATEGIES.register("tpe", "Tree-structured Parzen estimator (multi-objective MOTPE when several objectives)",
                     multi_objective=True, parallel=True, distinct=True, transfers=True)
class TPE(OptunaStrategy):
    def optuna_sampler(self) -> optuna.samplers.BaseSampler:
        # multivariate + group model the choices jointly, per set of parameters that occur
        # together (layer2.* exists only with 3 layers); constant_liar keeps parallel workers
        # from proposing the same candidate. IncrementalTPESampler is Optuna's TPE, with the
        # same proposals, at a cost that does not grow with the trials seen (nas/tpe.py).
        with warnings.catch_warnings():  # these options are marked experimental
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return IncrementalTPESampler(seed=self.seed, n_startup_trials=8, multivariate=True, group=True,
                                         constant_liar=True)


@STRATEGIES.register("random", "Uniform random sampling of the space", multi_objective=True, parallel=True,
                     distinct=True)
class Random(OptunaStrategy):
    def optuna_sampler(self) -> optuna.samplers.BaseSampler:
        return optuna.samplers.RandomSampler(seed=self.seed)


@STRATEGIES.register("nsga2", "NSGA-II evolutionary multi-objective search", multi_objective=True, parallel=True,
                     distinct=True, transfers=True)
class NSGA2(OptunaStrategy):
    def optuna_sampler(self) -> optuna.samplers.BaseSampler:
        return PicklableNSGAII(seed=self.seed, population_size=10)


class PicklableNSGAII(optuna.samplers.NSGAIISampler):
    """NSGA-II that pickles. Optuna 5 guards the GA samplers' generation cache with a
    ``threading.Lock`` (``_thread_lock``), which pickle refuses; the run store pickles the
    sampler after every proposal so that a resumed search goes on exactly, so the lock is
    left out and a fresh one made on unpickling (a lock holds no state worth keeping)."""

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state.pop("_thread_lock", None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._thread_lock = threading.Lock()  # unused by a release without it
