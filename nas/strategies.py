"""Black-box search strategies, one concept: a :class:`Strategy` is given the space and
hands the study an Optuna sampler, so storage, resume, parallel workers and Ray work
unchanged whichever strategy runs.

Lifecycle (in the style of Optuna's ``BaseSampler``):

1. **Registration** declares what a strategy can do: ``multi_objective`` (it uses every
   objective, not just the first), ``parallel`` (safe with several workers on one study),
   ``distinct`` (it never proposes a canonical architecture the study already holds, so no
   query is spent on a repeat), ``differentiable`` (it trains a supernet and has a ``run``
   of its own: :mod:`nas.differentiable`).
2. **Construction**, once per process: ``STRATEGIES.get(name)(space, seed, n_objectives)``.
3. **sampler()** gives the sampler of the study. A resumed single-process run restores the
   sampler it pickled after each proposal, so the search goes on as if never stopped.

Optuna's samplers (TPE, NSGA-II, random) are wrapped by :class:`DistinctSampler`, which
turns a repeat into an unseen neighbour. The strategies Optuna does not have, regularized
evolution (Real et al. 2019), local search (White et al. 2021) and the BANANAS-style
predictor, are :class:`ProposalStrategy` subclasses: they propose whole architectures, as a
complete set of the space's parameters, from the history of the study. They are written
here because no installable package offers them over a define-by-run Optuna space with
conditional choices (nevergrad, HEBO, SMAC and syne-tune each bring their own loop and
space language; our trials must stay Optuna trials).
"""
from __future__ import annotations

import math
import threading
import warnings
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Optional

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState

from graphnas.nas.tpe import IncrementalTPESampler
from graphnas.results.store import INTERRUPTED
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


STRATEGIES: Registry[type[Strategy]] = Registry("strategy", capabilities={
    "multi_objective": "proposes for several objectives", "parallel": "safe with several workers sharing the study",
    "distinct": "never proposes an architecture the study already holds",
    "differentiable": "trains a supernet and has its own run (nas.differentiable)",
    # random is the baseline and must stay random: an Optuna user expects RandomSampler's
    # proposals to depend on its seed alone, never on what other jobs left in the store
    "transfers": "starts from the knowledge store: the closest earlier searches' best come first, a share of the "
                 "budget (nas.knowledge.replay_count)"})


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


@STRATEGIES.register("auto", "The default: the predictor, with the knowledge of earlier searches as its prior", multi_objective=True, parallel=True, distinct=True, transfers=True)
class Auto(Strategy):
    """The default strategy, chosen on NAS-Bench-Graph (benchmarks/search_quality.py, README
    "Strategies"): the predictor with transfer had the lowest regret of every strategy at 30
    and 100 queries, and with two objectives the highest hypervolume at 200."""

    def sampler(self) -> optuna.samplers.BaseSampler:
        return PredictorSearch(self.space, self.seed, self.n_objectives, self.transfer).sampler()


# --- strategies that propose whole architectures -------------------------------------------
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
        trial = _DrawTrial(params, self.rng)
        arch_id = self.space.canonical_id(self.space.suggest(trial))
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
        """Every architecture one choice away from ``params`` and not yet seen, in a random
        order: another value of a categorical or integer choice, a step of a float choice
        (x2 or /2 on a log scale, a tenth of the range otherwise)."""
        distributions = self._distributions(params)
        moves = [(name, value) for name, dist in distributions.items() for value in _moves(dist, params[name])]
        own = self.complete(params)[1]
        found = {own}
        for i in self.rng.permutation(len(moves)):
            name, value = moves[i]
            child, arch_id = self.complete({**params, name: value})
            if arch_id in history.seen or arch_id in found:
                continue
            found.add(arch_id)
            yield child

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


@STRATEGIES.register("predictor", "Surrogate-guided search (BANANAS-style): an ensemble of small MLPs on a one-hot "
                     "encoding proposes the mutation of a top architecture that one member, drawn at random, "
                     "predicts best (Thompson sampling); with two objectives, of the highest expected hypervolume "
                     "improvement, or in turn of either objective's extreme by Thompson sampling; with more, "
                     "of a random Chebyshev scalarisation of them (ParEGO)",
                     multi_objective=True, parallel=True, distinct=True, transfers=True)
class PredictorSearch(ProposalStrategy):
    """BANANAS (White et al. 2021) over a stack space: after ``initial`` random proposals,
    an ensemble of ``members`` MLPs (:class:`MLPEnsemble`, each its own initialisation) is
    fitted to each objective of the evaluated trials, each encoded one-hot per choice
    (floats as their position in the range). The candidates are the unseen neighbours of the
    ``top`` best trials; with one objective the proposal is the candidate that one member of
    the ensemble, drawn at random per proposal, predicts best (Thompson sampling: the
    members' disagreement explores, without expected improvement's pull towards the
    candidates every member is unsure of). The ensembles are refitted when the history has
    grown by a tenth since the last fit, and by at least ``refit_after`` trials (BANANAS too
    proposes in batches from one fit), so proposals stay cheap at 1,000 trials.

    Two objectives (a metric, then a cost): a ``metric_extreme`` share of the proposals
    looks for the most accurate architecture, whatever its cost, and a ``cost_extreme`` share
    for the cheapest, each by Thompson sampling on that objective alone; the rest maximise
    expected hypervolume improvement. Why: the improvement is measured from the worst point
    found, and a search that avoids slow cells finds a worst latency far below the space's
    (7-10 ms of pubmed's 19 on NAS-Bench-Graph), so it gives the accurate, slow end of the
    front almost no weight; that end is also the hardest to find (the cost of a cell is
    predictable from its operators, its accuracy is not). On NAS-Bench-Graph (20 seeds,
    auto with knowledge) the hypervolume ratio at 200 queries went from 0.987/0.988/0.960 to
    0.990/0.993/0.979 on cora/citeseer/pubmed; 0.5 for the metric alone gave pubmed 0.981
    but cora 0.977 (its front's cheap end weighs more), and 0.25 each gave pubmed 0.953.

    More objectives (ParEGO, Knowles 2006): each objective is fitted on its ranks among
    the evaluated trials (so a heavy-tailed latency and a bounded accuracy weigh alike); each
    proposal draws random weights, and "best" and "improvement" are those of the augmented
    Chebyshev scalarisation under them. Over the proposals the weights sweep the front, its
    cheap corner as much as its accurate one.

    With a transfer (earlier searches of the space), each source's rank score of an
    architecture is one more input, so the ensemble learns how far this dataset follows
    each source; the best unseen architectures of the sources' pooled prior join the
    candidates; and the transferred trials queued first replace the random start-up."""

    initial, members, top, candidates = 10, 5, 5, 50
    # With a transfer and one objective: the best unseen architectures of each ranking (the
    # pooled prior, each source) that join the neighbours as candidates. 20 from each of the
    # (usually four) rankings weigh about alike with the 50 neighbours; at 50 each (before)
    # the sources' picks were 4 in 5 candidates, and on NAS-Bench-Graph (20 seeds, auto with
    # knowledge) regret at 30 / 100 queries went from 0.67/1.12/1.07 / 0.48/0.24/0.31 to
    # 0.65/1.09/0.96 / 0.47/0.17/0.28 on cora/citeseer/pubmed; 5 or 10 hurt citeseer at 30
    # (1.48), 30 gave 0.65/1.11/0.96 / 0.48/0.22/0.31. Several objectives keep ``candidates``
    # (50) from each: there the sources' best also serve the accurate end of the front, and
    # 20 lowered pubmed's hypervolume at 200 queries from 0.979 to 0.967.
    prior_candidates = 20
    augment = 0.05  # the augmented Chebyshev term: keeps weakly dominated points from tying
    metric_extreme, cost_extreme = 0.4, 0.15  # with two objectives: shares of extreme proposals
    # Fewest new trials before a refit: (one objective, several). Early on each trial changes
    # the fit most. On the five NAS-Bench-Graph datasets the default was not designed on (cs,
    # physics, photo, computers, arxiv; 20 seeds, auto with knowledge) 2 instead of 5 lowered
    # regret at 30 queries on all five (mean 0.63x -> 0.56x random's; at 100 0.30x either
    # way); with two objectives it lowered pubmed's hypervolume at 200 from 0.979 to 0.957.
    refit_after = (2, 5)
    # With ``warm_steps``, a refit starts from the last fit's weights and takes that many Adam
    # steps instead of a fresh fit's 300; None: every fit fresh. Measured in one run
    # (benchmarks/surrogate_refit.py, 20 seeds, auto with knowledge, warm - fresh paired by
    # seed): 100 warm steps made the 30-query search 0.83x as long (the fit 0.46x) but raised
    # cora's regret at 200 queries by 0.08 ± 0.04 and lowered pubmed's hypervolume at 200 by
    # 0.017 ± 0.006, so fits stay fresh.
    warm_steps: Optional[int] = None

    def __init__(self, space: SearchSpace, seed: int, n_objectives: int,
                 transfer: Optional["Transfer"] = None) -> None:
        super().__init__(space, seed, n_objectives, transfer)
        self._fitted_on, self._ensembles = 0, None
        self._by_prior: Optional[list[list[tuple[dict[str, Any], str]]]] = None  # the sources' best, once
        self._columns: dict[tuple[str, Any], int] = {}  # (choice, value) -> column; (choice, None) for a float
        # (a float's name is in self._floats; a categorical None value shares the key shape, not the name)
        self._floats: dict[str, optuna.distributions.FloatDistribution] = {}

    @property
    def start_up(self) -> int:
        """Evaluated trials before the first fit: ``initial`` random ones, or with a transfer
        the transferred trials the search queues first (random proposals would add nothing
        the sources do not already say)."""
        if self.transfer is None:
            return self.initial
        from graphnas.nas.knowledge import FIRST_PROPOSALS

        return min(self.initial, FIRST_PROPOSALS)

    def propose(self, history: History) -> dict[str, Any]:
        if len(history.ranked) < self.start_up:
            return self.random_unseen(history)
        self._refit(history.ranked)
        scores = np.array([e.score for e in history.ranked], dtype=float)
        weights = self._weights()
        parents = [history.ranked[i] for i in np.argsort(-self._utility(_ranks(scores), weights), kind="stable")]
        pool: list[dict[str, Any]] = []
        for k, parent in enumerate(parents[:self.top]):  # an equal share of candidates per parent
            for child in self.neighbours(parent.params, history):
                pool.append(child)
                if len(pool) >= self.candidates * (k + 1) // self.top:
                    break
        pool += self._prior_candidates(history)
        if not pool:
            return self.random_unseen(history)
        x = self._encode(pool)
        predicted = np.stack([e.predict(x) for e in self._ensembles], -1)  # (members, candidates, objectives)
        return pool[int(np.argmax(self._acquisition(predicted, scores, weights)))]

    def _acquisition(self, predicted: np.ndarray, scores: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """Per candidate: the prediction of one ensemble member drawn at random (Thompson
        sampling; one objective); expected hypervolume improvement over the found front, plus
        that of the optimistic point mean + spread (SMS-EGO's), which ranks the candidates no
        member expects to improve (two; on an extreme proposal, one member's prediction of
        that objective); expected improvement of the Chebyshev scalarisation of the
        objectives' ranks (ParEGO, more)."""
        if np.count_nonzero(weights) == 1:  # one objective, or an extreme proposal (see _weights)
            # Thompson sampling over the ensemble: one member's prediction, drawn per proposal.
            # On NAS-Bench-Graph it gave lower regret than EI at 100 queries on cora, citeseer
            # and pubmed, and at 30 on cora and pubmed (citeseer's +0.03 is within its noise)
            return predicted[int(self.rng.integers(len(predicted))), :, int(weights.argmax())]
        if self.n_objectives == 2:
            reference = scores.min(0)
            front = scores[_nondominated(scores)]
            expected = np.mean([_hvi_2d(member, front, reference) for member in predicted], axis=0)
            return expected + _hvi_2d(predicted.mean(0) + predicted.std(0), front, reference)
        utility, best = self._utility(predicted, weights), self._utility(_ranks(scores), weights).max()
        mean, std = utility.mean(0), utility.std(0) + 1e-9
        z = (mean - best) / std
        return std * (z * _normal_cdf(z) + np.exp(-z * z / 2) / math.sqrt(2 * math.pi))

    def _weights(self) -> np.ndarray:
        """This proposal's weight per objective: 1 for one; with two, all on the metric (a
        ``metric_extreme`` share of the proposals) or all on the cost (``cost_extreme``), else
        uniform on the simplex, as for more."""
        if self.n_objectives == 1:
            return np.ones(1)
        if self.n_objectives == 2:
            draw = self.rng.random()
            if draw < self.metric_extreme + self.cost_extreme:
                return np.array([1.0, 0.0]) if draw < self.metric_extreme else np.array([0.0, 1.0])
        return self.rng.dirichlet(np.ones(self.n_objectives))

    def _targets(self, ranked: list[Evaluated]) -> np.ndarray:
        """(trials, objectives) what the ensembles fit: the scores themselves for one or two
        objectives (hypervolume is measured in their units); each objective's rank among the
        trials for more (ParEGO's scalarisation weighs objectives of any scale alike)."""
        scores = np.array([e.score for e in ranked], dtype=float)
        return scores if self.n_objectives <= 2 else _ranks(scores)

    def _utility(self, values: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """(..., objectives) ranks in [0, 1] -> (...), larger is better: minus the augmented
        Chebyshev distance to the ideal point (every rank 1), the largest weighted shortfall
        plus a little of their sum. With one objective, the value itself."""
        if self.n_objectives == 1:
            return values[..., 0]
        shortfall = (1.0 - values) * weights
        return -(shortfall.max(-1) + self.augment * shortfall.sum(-1))

    def _prior_candidates(self, history: History) -> list[dict[str, Any]]:
        """The ``prior_candidates`` best unseen architectures (``candidates`` with several
        objectives) by the transfer's pooled prior and by each of its sources."""
        if self.transfer is None:
            return []
        if self._by_prior is None:
            rankings = [self.transfer.ranked_by_prior()] + [e.trials for e in self.transfer.sources]
            self._by_prior = [[(t.params, t.key) for t in ranking[:20 * self.candidates]] for ranking in rankings]
        count = self.prior_candidates if self.n_objectives == 1 else self.candidates
        pool, keys = [], set()
        for ranking in self._by_prior:
            fresh = [(p, k) for p, k in ranking if k not in history.seen and k not in keys][:count]
            pool += [p for p, _ in fresh]
            keys.update(k for _, k in fresh)
        return pool

    def __getstate__(self) -> dict:
        return {**super().__getstate__(), "_by_prior": None}

    def _refit(self, ranked: list[Evaluated]) -> None:
        step = self.refit_after[0] if self.n_objectives == 1 else self.refit_after[1]
        if self._ensembles is not None and len(ranked) < max(self._fitted_on + step, self._fitted_on * 1.1):
            return
        for e in ranked:  # the encoding's columns: every (choice, value) seen so far
            self._add_columns(e.params)
        x, targets = self._encode([e.params for e in ranked]), self._targets(ranked)
        last = self._ensembles if self.warm_steps is not None else None
        self._ensembles = [MLPEnsemble.fit(x, targets[:, j], self.members, seed=int(self.rng.integers(2 ** 31)),
                                           **({"start": last[j], "steps": self.warm_steps} if last else {}))
                           for j in range(targets.shape[1])]
        self._fitted_on = len(ranked)

    def _add_columns(self, params: dict[str, Any]) -> None:
        for name, dist in self._distributions(params).items():
            if isinstance(dist, optuna.distributions.FloatDistribution):
                self._columns.setdefault((name, None), len(self._columns))
                self._floats[name] = dist
            else:
                self._columns.setdefault((name, params[name]), len(self._columns))

    def _encode(self, batch: list[dict[str, Any]]) -> np.ndarray:
        x = np.zeros((len(batch), len(self._columns)))
        for i, params in enumerate(batch):
            for name, value in params.items():
                # a float: its position in the range. Asked by name, not by the (name, None)
                # column: a categorical choice may hold None itself (input_dropout: [null, 0.0])
                if name in self._floats:
                    dist = self._floats[name]
                    lo, hi, v = (map(math.log, (dist.low, dist.high, value)) if dist.log
                                 else (dist.low, dist.high, value))
                    x[i, self._columns[(name, None)]] = (v - lo) / ((hi - lo) or 1.0)
                elif (name, value) in self._columns:  # a value no evaluated trial had stays all-zero
                    x[i, self._columns[(name, value)]] = 1.0
        if self.transfer is not None:
            x = np.hstack([x, self.transfer.features([self.complete(params)[1] for params in batch])])
        return x


class MLPEnsemble:
    """``members`` two-layer MLPs (32 units) trained together, full batch, on standardised
    targets: one batched matrix product per layer, so a fit on 1,000 trials takes a tenth
    of a second where scikit-learn's per-model minibatch loop took seconds."""

    def __init__(self, layers: list, mean: float, scale: float) -> None:
        self.layers, self.mean, self.scale = layers, mean, scale

    @classmethod
    def fit(cls, x: np.ndarray, y: np.ndarray, members: int, seed: int, hidden: int = 32, steps: int = 300,
            lr: float = 0.01, start: Optional["MLPEnsemble"] = None) -> "MLPEnsemble":
        """``start``: begin from its weights (fine-tuning) instead of a fresh initialisation;
        input columns ``x`` has beyond ``start``'s (choices seen since) start from fresh weights."""
        import torch

        gen = torch.Generator().manual_seed(seed)
        mean, scale = float(y.mean()), float(y.std()) or 1.0
        xt = torch.as_tensor(x, dtype=torch.float32).expand(members, *x.shape)
        yt = torch.as_tensor((y - mean) / scale, dtype=torch.float32).expand(members, len(y))
        sizes = [x.shape[1], hidden, hidden, 1]
        if start is not None:
            layers = [t.clone() for t in start.layers]
            new_columns = x.shape[1] - layers[0].shape[1]  # columns seen since: appended, never removed
            if new_columns > 0:
                fresh = (torch.rand(members, new_columns, hidden, generator=gen) * 2 - 1) / x.shape[1] ** 0.5
                layers[0] = torch.cat([layers[0], fresh], 1)
            layers = [t.requires_grad_() for t in layers]
        else:
            layers = []
            for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
                w = (torch.rand(members, fan_in, fan_out, generator=gen) * 2 - 1) / max(fan_in, 1) ** 0.5
                layers += [w.requires_grad_(), torch.zeros(members, 1, fan_out, requires_grad=True)]
        opt = torch.optim.Adam(layers, lr=lr, weight_decay=1e-4)
        for _ in range(steps):
            opt.zero_grad()
            loss = ((cls._forward(layers, xt).squeeze(-1) - yt) ** 2).mean()
            loss.backward()
            opt.step()
        return cls([t.detach() for t in layers], mean, scale)

    @staticmethod
    def _forward(layers: list, x):
        import torch

        out = x
        for i in range(0, len(layers), 2):
            out = torch.baddbmm(layers[i + 1], out, layers[i])
            if i + 2 < len(layers):
                out = torch.relu(out)
        return out

    def predict(self, x: np.ndarray) -> np.ndarray:
        """(members, len(x)) predictions in the target's units."""
        import torch

        with torch.no_grad():
            xt = torch.as_tensor(x, dtype=torch.float32).expand(self.layers[0].shape[0], *x.shape)
            return self._forward(self.layers, xt).squeeze(-1).numpy() * self.scale + self.mean


def _normal_cdf(z: np.ndarray) -> np.ndarray:
    from scipy.special import ndtr

    return ndtr(z)


# --- helpers ---------------------------------------------------------------------------------
def _ranks(scores: np.ndarray) -> np.ndarray:
    """(trials, objectives) -> each objective's rank among the trials in [0, 1], 1 = best."""
    ranks = scores.argsort(0, kind="stable").argsort(0, kind="stable")
    return ranks / max(len(scores) - 1, 1)


def _nondominated(scores: np.ndarray) -> np.ndarray:
    """A mask of the rows no other row dominates (every objective larger is better)."""
    dominates = (scores[None, :, :] >= scores[:, None, :]).all(-1) & (scores[None, :, :] > scores[:, None, :]).any(-1)
    return ~dominates.any(1)


def _hvi_2d(points: np.ndarray, front: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """(candidates, 2) -> the hypervolume each point would add to ``front`` (both objectives
    larger is better, above ``reference``), exactly: the front's attained set is a staircase;
    the gain is the area of the point's box above it, summed over the stair's steps. Written
    here because moocore and Optuna compute one hypervolume per call, and this runs over
    hundreds of candidates per proposal."""
    front = front[np.argsort(-front[:, 0], kind="stable")]  # first objective falling, second rising
    # step i spans the first objective from edges[i + 1] to edges[i]; above it the staircase
    # is at height floor[i]
    edges = np.concatenate([[np.inf], front[:, 0], [reference[0]]])
    floor = np.concatenate([[reference[1]], np.maximum.accumulate(front[:, 1])])
    p = np.maximum(points, reference)
    width = np.clip(np.minimum(p[:, :1], edges[None, :-1]) - edges[None, 1:], 0.0, None)
    return (width * np.clip(p[:, 1:] - floor[None, :], 0.0, None)).sum(1)


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


def _moves(dist: BaseDistribution, value: Any) -> list[Any]:
    """The values one step from ``value`` in ``dist``."""
    if isinstance(dist, optuna.distributions.CategoricalDistribution):
        return [c for c in dist.choices if c != value]
    if isinstance(dist, optuna.distributions.IntDistribution):
        return [v for v in range(dist.low, dist.high + 1, dist.step) if v != value]
    if dist.log:
        steps = [value * 2, value / 2]
    else:
        steps = [value + (dist.high - dist.low) / 10, value - (dist.high - dist.low) / 10]
    return [float(min(max(s, dist.low), dist.high)) for s in steps if not math.isclose(s, value)]


def _in(dist: BaseDistribution, value: Any) -> bool:
    try:
        return dist._contains(dist.to_internal_repr(value))
    except (ValueError, TypeError):
        return False


@dataclass
class _DrawTrial:
    """A stand-in for an Optuna trial: answers each ``suggest_*`` from ``given`` where it
    holds a valid value, otherwise from ``sample`` (a wrapped sampler) or at random, and
    records what was asked."""

    given: dict[str, Any]
    rng: np.random.Generator
    sample: Optional[Callable[[str, BaseDistribution], Any]] = None
    params: dict[str, Any] = field(default_factory=dict)
    distributions: dict[str, BaseDistribution] = field(default_factory=dict)
    drawn: bool = False  # whether some answer was drawn at random

    def _answer(self, name: str, dist: BaseDistribution, draw) -> Any:
        value = self.given.get(name)
        if name not in self.given or not _in(dist, value):
            value, self.drawn = (self.sample(name, dist) if self.sample else draw()), True
        self.params[name], self.distributions[name] = value, dist
        return value

    def suggest_categorical(self, name: str, choices) -> Any:
        choices = list(choices)
        return self._answer(name, optuna.distributions.CategoricalDistribution(choices),
                            lambda: choices[int(self.rng.integers(len(choices)))])

    def suggest_int(self, name: str, low: int, high: int, step: int = 1, log: bool = False) -> int:
        def draw() -> int:
            if log:
                return int(min(high, math.floor(math.exp(self.rng.uniform(math.log(low), math.log(high + 1))))))
            return int(low + step * self.rng.integers((high - low) // step + 1))
        return self._answer(name, optuna.distributions.IntDistribution(low, high, log=log, step=step), draw)

    def suggest_float(self, name: str, low: float, high: float, log: bool = False) -> float:
        def draw() -> float:
            return float(math.exp(self.rng.uniform(math.log(low), math.log(high))) if log
                         else self.rng.uniform(low, high))
        return self._answer(name, optuna.distributions.FloatDistribution(low, high, log=log), draw)
