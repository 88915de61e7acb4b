"""The strategy contract and its registry: a :class:`Strategy` is given the space and hands
the study an Optuna sampler, so storage, resume, parallel workers and Ray work unchanged
whichever strategy runs.

Lifecycle (in the style of Optuna's ``BaseSampler``):

1. **Registration** in :data:`STRATEGIES` declares what a strategy can do: ``multi_objective``
   (it uses every objective, not just the first), ``parallel`` (safe with several workers on
   one study), ``distinct`` (it never proposes a canonical architecture the study already
   holds, so no query is spent on a repeat). An entry declared ``differentiable`` is no
   strategy: a supernet search with a runner of its own (:mod:`nas.differentiable`), which
   names the strategy of its study's sampler.
2. **Construction**, once per process: ``STRATEGIES.get(name)(space, seed, n_objectives)``.
3. **sampler()** gives the sampler of the study. A resumed single-process run restores the
   sampler it pickled after each proposal, so the search goes on as if never stopped.

The strategies themselves: :mod:`nas.optuna_strategies` (Optuna's samplers, made distinct),
:mod:`nas.proposals` (strategies that propose whole architectures: evolution, local search)
and :mod:`nas.predictor` (the BANANAS-style predictor, the default). :mod:`nas.strategies`
imports them all.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import optuna

from graphnas.search_spaces import SearchSpace
from graphnas.search_spaces.registry import Registry

if TYPE_CHECKING:
    from graphnas.nas.knowledge import Transfer
    from graphnas.nas.search import SearchConfig


class Strategy(ABC):
    """A black-box strategy over ``space`` (see the module docstring for its lifecycle).
    ``transfer``: what the search took from earlier searches (:mod:`nas.knowledge`); its
    first proposals are queued as trials for every strategy, and a strategy with a
    surrogate may also use it as a prior."""

    def __init__(self, space: SearchSpace, seed: int, n_objectives: int,
                 transfer: Optional["Transfer"] = None) -> None:
        self.space, self.seed, self.n_objectives, self.transfer = space, seed, n_objectives, transfer

    @abstractmethod
    def sampler(self) -> optuna.samplers.BaseSampler:
        """The Optuna sampler that proposes this strategy's trials."""

    @classmethod
    def space_of(cls, space: SearchSpace, run_dir: Path, resume: bool) -> SearchSpace:
        """The space the run's trials are drawn from (a differentiable strategy may narrow it)."""
        return space

    @classmethod
    def budget(cls, config: "SearchConfig") -> int:
        """The trials the run records."""
        return config.trials


# a Strategy class, or for ``differentiable`` a nas.differentiable.SupernetSearch: both are called
# with (space, seed, n_objectives, transfer) for the study's strategy, and answer space_of and budget
STRATEGIES: Registry[Any] = Registry("strategy", capabilities={
    "multi_objective": "proposes for several objectives", "parallel": "safe with several workers sharing the study",
    "distinct": "never proposes an architecture the study already holds",
    "differentiable": "a supernet search with a runner of its own, not a proposal strategy (nas.differentiable)",
    # random is the baseline and must stay random: an Optuna user expects RandomSampler's
    # proposals to depend on its seed alone, never on what other jobs left in the store
    "transfers": "starts from the knowledge store: the closest earlier searches' best come first, a share of the "
                 "budget (nas.knowledge.replay_count)"})
