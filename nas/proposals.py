"""Strategies that propose whole architectures, as a complete set of the space's parameters,
from the history of the study: :class:`ProposalStrategy` and its Optuna sampler, regularized
evolution (Real et al. 2019) and local search (White et al. 2021); :class:`DistinctSampler`,
which makes a wrapped Optuna sampler propose an unseen neighbour instead of a repeat. They are
written here because no installable package offers them over a define-by-run Optuna space
with conditional choices (nevergrad, HEBO, SMAC and syne-tune each bring their own loop and
space language; our trials must stay Optuna trials).
"""
from __future__ import annotations

import math
from abc import abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterator, Optional

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState

from graphnas.results.store import INTERRUPTED
from graphnas.nas.strategy_base import STRATEGIES, Strategy
from graphnas.search_spaces import SearchSpace
# moved to the space (nas.refine and every strategy share them); the former names stay for
# sampler snapshots pickled before, whose memo holds _DrawTrial objects
from graphnas.search_spaces.neighbours import DrawTrial as _DrawTrial, contains as _in, draw, moves as _moves  # noqa: F401

if TYPE_CHECKING:
    from graphnas.nas.knowledge import Transfer


@dataclass(frozen=True)
class Evaluated:
    """A finished trial as a strategy sees it: its parameters and its objective values,
    signed so that larger is better."""

    number: int
    params: dict[str, Any]
    score: tuple[float, ...]


@dataclass
class History:
    """What a proposal may use: the evaluated trials, best first, and the canonical ids of
    every architecture the study holds (finished, failed or running; not those whose
    process died before they were evaluated)."""

    ranked: list[Evaluated]
    seen: set[str]
    next_number: int  # the number of the trial being proposed

    @property
    def by_number(self) -> list[Evaluated]:
        return sorted(self.ranked, key=lambda e: e.number)


class ProposalStrategy(Strategy):
    """A strategy that proposes the complete parameters of an architecture not yet seen.
    Subclasses implement :meth:`propose`; helpers draw random members and neighbours."""

    def __init__(self, space: SearchSpace, seed: int, n_objectives: int,
                 transfer: Optional["Transfer"] = None) -> None:
        super().__init__(space, seed, n_objectives, transfer)
        self.rng = np.random.default_rng(seed)
        self._ids: dict[int, Optional[str]] = {}  # trial number -> canonical id, for finished trials
        # complete parameter sets -> (parameters asked, canonical id): the space's suggest
        # costs about a millisecond, and the neighbours of the top trials recur proposal
        # after proposal
        self._memo: dict[tuple, tuple[_DrawTrial, str]] = {}

    def __getstate__(self) -> dict:
        # the run store pickles the sampler after every proposal: caches stay out of it (the
        # finished trials' ids made the snapshot grow with the study, 360 kB at 10,000 trials)
        return {**self.__dict__, "_memo": {}, "_ids": {}}

    def sampler(self) -> optuna.samplers.BaseSampler:
        return ProposalSampler(self)

    @abstractmethod
    def propose(self, history: History) -> dict[str, Any]:
        """The Optuna parameters of the next architecture to evaluate."""

    # --- helpers ---------------------------------------------------------------------------
    def complete(self, params: dict[str, Any]) -> tuple[dict[str, Any], str]:
        """``params`` completed with random draws for the choices they lack (a mutation
        that adds a layer adds its choices), restricted to those the space asks; and the
        canonical id of the architecture they build."""
        trial, arch_id = self._draw(params)
        return trial.params, arch_id

    def _draw(self, params: dict[str, Any]) -> tuple["_DrawTrial", str]:
        key = tuple(sorted(params.items()))
        if key in self._memo:  # only complete sets are memoised: a hit draws nothing, as a miss would not
            return self._memo[key]
        trial, arch_id = draw(self.space, params, self.rng)
        if not trial.drawn:
            self._memo[key] = (trial, arch_id)
        return trial, arch_id

    def random_unseen(self, history: History, tries: int = 100) -> dict[str, Any]:
        params: dict[str, Any] = {}
        for _ in range(tries):
            params, arch_id = self.complete({})
            if arch_id not in history.seen:
                return params
        return params  # a space nearly exhausted: a repeat rather than no proposal

    def neighbours(self, params: dict[str, Any], history: History) -> Iterator[dict[str, Any]]:
        """The space's unseen one-choice neighbours of ``params`` (:meth:`SearchSpace.neighbours`),
        drawn with this strategy's random state and memo."""
        return self.space.neighbours(params, self.rng, history.seen, self._draw)

    def _distributions(self, params: dict[str, Any]) -> dict[str, BaseDistribution]:
        return self._draw(params)[0].distributions

    def canonical_id(self, trial: FrozenTrial) -> Optional[str]:
        """The canonical id of a trial's architecture; None while its parameters are partial."""
        if trial.number in self._ids:
            return self._ids[trial.number]
        params = trial.system_attrs.get("fixed_params") or trial.params
        try:
            arch_id = self.space.canonical_id(self.space.suggest(optuna.trial.FixedTrial(params)))
        except (ValueError, KeyError):  # a running trial that has not drawn every choice yet
            arch_id = None
        if trial.state.is_finished():
            self._ids[trial.number] = arch_id
        return arch_id


class ProposalSampler(optuna.samplers.BaseSampler):
    """Optuna's side of a :class:`ProposalStrategy`: before each trial it asks the strategy
    for a proposal, then answers each ``suggest_*`` from it. Enqueued trials (reference
    designs, retried trials) keep their fixed parameters."""

    def __init__(self, strategy: ProposalStrategy) -> None:
        self.strategy = strategy
        self._fallback = optuna.samplers.RandomSampler(seed=strategy.seed)
        self._pending: dict[int, dict[str, Any]] = {}
        self._finished: dict[int, tuple[Optional[str], Optional[Evaluated]]] = {}  # trial number -> what it was

    def infer_relative_search_space(self, study, trial) -> dict[str, BaseDistribution]:
        return {}

    def sample_relative(self, study, trial, search_space) -> dict[str, Any]:
        return {}

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if _preset(trial):
            return
        self._pending[trial.number] = self.strategy.propose(self.history(study, trial.number))

    def sample_independent(self, study, trial, param_name: str, param_distribution: BaseDistribution) -> Any:
        params = self._pending.get(trial.number, {})
        if param_name in params and _in(param_distribution, params[param_name]):
            return params[param_name]
        return self._fallback.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study, trial, state, values) -> None:
        self._pending.pop(trial.number, None)

    def history(self, study: optuna.Study, number: int, ranked: bool = True) -> History:
        """The study as the strategy sees it while proposing trial ``number``; with
        ``ranked=False`` only ``seen`` (all a wrapped Optuna sampler needs)."""
        signs = [1.0 if d == optuna.study.StudyDirection.MAXIMIZE else -1.0 for d in study.directions]
        trials = study.get_trials(deepcopy=False)  # in number order
        prefix = self._finished_prefix
        # The leading trials that are all finished never change: they are read once, and each
        # proposal reads only the trials after them (a loop over every trial took 10 ms a
        # proposal at 10,000 trials).
        while prefix.length < len(trials) and trials[prefix.length].state.is_finished() \
                and trials[prefix.length].number != number:
            arch_id, result = self._view(trials[prefix.length], signs)
            if arch_id is not None:
                prefix.seen.add(arch_id)
            if result is not None:
                prefix.evaluated.append(result)
            prefix.length += 1
        evaluated, seen = list(prefix.evaluated), set(prefix.seen)
        for trial in trials[prefix.length:]:
            if trial.number == number:
                continue
            arch_id, result = self._finished.get(trial.number) or self._view(trial, signs)
            if arch_id is not None:
                seen.add(arch_id)
            if result is not None:
                evaluated.append(result)
        seen.update(self.strategy.complete(p)[1] for p in self._pending.values())
        return History(_rank(evaluated) if ranked else evaluated, seen, number)

    @property
    def _finished_prefix(self) -> "_Prefix":
        if getattr(self, "_prefix", None) is None:
            self._prefix = _Prefix()
        return self._prefix

    def _view(self, trial: FrozenTrial, signs: list[float]) -> tuple[Optional[str], Optional[Evaluated]]:
        """A trial's canonical id (None if it was interrupted, never evaluated: not a query)
        and its evaluation if it completed; kept once the trial is finished, because a study
        of 1,000 trials would otherwise be read anew at every proposal (17 ms)."""
        if trial.user_attrs.get(INTERRUPTED):
            view: tuple[Optional[str], Optional[Evaluated]] = (None, None)
        else:
            result = None
            if trial.state == TrialState.COMPLETE and all(math.isfinite(v) for v in trial.values):
                result = Evaluated(trial.number, dict(trial.params), tuple(s * v for s, v in zip(signs, trial.values)))
            view = (self.strategy.canonical_id(trial), result)
        if trial.state.is_finished():
            self._finished[trial.number] = view
        return view

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_finished": {}, "_prefix": None}  # caches; the snapshot after every proposal stays small

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update({"_finished": {}, **state})  # snapshots of older runs have no cache


@dataclass
class _Prefix:
    """The views of a study's leading run of finished trials, accumulated proposal after proposal."""

    length: int = 0
    seen: set = field(default_factory=set)
    evaluated: list = field(default_factory=list)


def _preset(trial: FrozenTrial) -> bool:
    """Whether the trial's parameters were given before it started, so that nothing may be
    drawn for it: an enqueued trial holds them as ``fixed_params``, and a retried one
    (RetryHeartbeatStaleTrialCallback) is created WAITING with them as its params. A draw
    for either would move the random state, and a resumed search would then propose one
    step ahead of the uninterrupted one."""
    return "fixed_params" in trial.system_attrs or bool(trial.params)


class _Ids(ProposalStrategy):
    """The canonical ids and random unseen draws an :class:`OptunaStrategy` needs; it
    proposes nothing itself."""

    def propose(self, history: History) -> dict[str, Any]:
        raise NotImplementedError("DistinctSampler draws its proposals from the wrapped sampler")


class DistinctSampler(ProposalSampler):
    """An Optuna sampler that never proposes an architecture the study already holds.
    Before each trial it runs the space's ``suggest`` against the wrapped sampler (its
    relative sample, then each remaining choice independently, as a trial would) and keeps
    the draw; where its canonical architecture is one the study holds, the proposal is an
    unseen neighbour of it (one choice changed: the closest fresh architecture to what the
    sampler wanted), or a random unseen one where it has none. The trial then takes that
    proposal. Written here because Optuna's samplers decide choice by choice, inside the
    trial, and cannot be asked again once a repeat is complete; a neighbour, not a second
    draw, because a converged TPE repeats itself draw after draw, at 15 ms a draw."""

    def __init__(self, strategy: ProposalStrategy, inner: optuna.samplers.BaseSampler) -> None:
        super().__init__(strategy)
        self.inner = inner
        self._fallback = inner  # a choice the drawn proposal lacks is the wrapped sampler's to draw

    def __setstate__(self, state: dict) -> None:
        super().__setstate__(state)
        self._fallback = self.inner  # snapshots pickled before the fallback was the wrapped sampler

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.inner.before_trial(study, trial)
        if _preset(trial):
            return
        history = self.history(study, trial.number, ranked=False)
        params, arch_id = self._draw(study, trial)
        if arch_id in history.seen:
            params = next(self.strategy.neighbours(params, history), None) or self.strategy.random_unseen(history)
        self._pending[trial.number] = params

    def _draw(self, study: optuna.Study, trial: FrozenTrial) -> tuple[dict[str, Any], str]:
        relative = self.inner.sample_relative(study, trial, self.inner.infer_relative_search_space(study, trial))
        probe = _DrawTrial(relative, self.strategy.rng,
                           sample=lambda name, dist: self.inner.sample_independent(study, trial, name, dist))
        arch_id = self.strategy.space.canonical_id(self.strategy.space.suggest(probe))
        return probe.params, arch_id

    def after_trial(self, study, trial, state, values) -> None:
        super().after_trial(study, trial, state, values)
        self.inner.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self.inner.reseed_rng()


@STRATEGIES.register("evolution", "Regularized evolution (Real et al. 2019): tournament parents from the youngest "
                     "trials, one-choice mutations, never a repeat", multi_objective=True, parallel=True, distinct=True,
                     transfers=True)
class RegularizedEvolution(ProposalStrategy):
    """The population is the ``population`` most recent evaluated trials (the oldest dies
    as each new one joins: aging); the parent is the best of ``tournament`` of them drawn
    at random (Pareto rank first with several objectives); the child is a random unseen
    neighbour of the parent. The first ``population`` proposals are random."""

    population, tournament = 20, 5

    def propose(self, history: History) -> dict[str, Any]:
        alive = history.by_number[-self.population:]
        if len(alive) < self.population:
            return self.random_unseen(history)
        rank = {e.number: i for i, e in enumerate(history.ranked)}
        picks = self.rng.choice(len(alive), size=min(self.tournament, len(alive)), replace=False)
        parent = min((alive[i] for i in picks), key=lambda e: rank[e.number])
        return next(self.neighbours(parent.params, history), None) or self.random_unseen(history)


@STRATEGIES.register("local", "Local search (White et al. 2021): the unseen neighbours of the best architecture of "
                     "the current climb; a random restart at a local optimum", multi_objective=True, parallel=True,
                     distinct=True, transfers=True)
class LocalSearch(ProposalStrategy):
    """After ``initial`` random proposals, each proposal is an unseen neighbour of the best
    trial of the current climb (all trials since the last restart). When that trial has no
    unseen neighbour left, it is a local optimum: the climb restarts from a random
    architecture."""

    initial = 5

    def __init__(self, space: SearchSpace, seed: int, n_objectives: int,
                 transfer: Optional["Transfer"] = None) -> None:
        super().__init__(space, seed, n_objectives, transfer)
        self.climb_start = 0  # trial number at which the current climb began

    def propose(self, history: History) -> dict[str, Any]:
        if len(history.ranked) < self.initial:
            return self.random_unseen(history)
        climb = [e for e in history.ranked if e.number >= self.climb_start]  # best first
        if climb:
            child = next(self.neighbours(climb[0].params, history), None)
            if child is not None:
                return child
        self.climb_start = history.next_number
        return self.random_unseen(history)


# --- helpers ---------------------------------------------------------------------------------
def _rank(evaluated: list[Evaluated]) -> list[Evaluated]:
    """Best first: by objective with one; with several, by the number of trials that
    dominate it (0 = Pareto front), then by the first objective (the metric)."""
    if not evaluated:
        return []
    scores = np.array([e.score for e in evaluated])
    if scores.shape[1] == 1:
        order = np.lexsort(([e.number for e in evaluated], -scores[:, 0]))
    else:
        dominated = ((scores[None, :, :] >= scores[:, None, :]).all(-1)
                     & (scores[None, :, :] > scores[:, None, :]).any(-1)).sum(1)
        order = np.lexsort(([e.number for e in evaluated], -scores[:, 0], dominated))
    return [evaluated[i] for i in order]
