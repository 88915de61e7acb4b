"""Backends: where a search's black-box trials run.

A backend is the third concept of a search beside its strategy (what to try,
:mod:`nas.strategies`) and its evaluator (how a candidate is measured,
:mod:`evaluators.evaluator`). ``local`` runs the trials in the search's own process, or in
``--workers N`` spawned processes sharing the study; ``ray`` runs them as Ray Tune trials on
this machine or a cluster. Every backend tells its trials through :func:`nas.outcome.tell`, so
a run directory reads the same whichever ran it.

Lifecycle, as :class:`nas.search.Search` drives it:

1. ``BACKENDS.entry(name)``: an unknown name is refused, listing the registered ones.
2. :meth:`Backend.check` (a classmethod, before any work): the run's strategy, evaluator and
   pruner against what the entry declared at registration.
3. :meth:`Backend.sole_writer`: whether one process alone writes the study. Only then does
   the search keep the study in memory, snapshot its sampler after every proposal (so that a
   resumed run goes on exactly), and count its budget without a lock file.
4. :meth:`Backend.run`, once per run (fresh, resumed or joined): the remaining budget's trials.
   Differentiable strategies have their own run and need ``differentiable``.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from nas.pruners import MULTI_OBJECTIVE_PRUNERS
from search_spaces.registry import Entry, Registry

if TYPE_CHECKING:
    import optuna

    from evaluators.evaluator import Evaluator
    from nas.search import Observer, Search, SearchConfig
    from results.objectives import Objective


class Backend:
    """Runs the trials of one search (see the module docstring for the lifecycle)."""

    def __init__(self, config: "SearchConfig") -> None:
        self.config = config

    @classmethod
    def check(cls, entry: Entry, config: "SearchConfig", differentiable: bool, trains: bool) -> None:
        """Refuse, before any work, a run that the entry's declared capabilities exclude."""
        if differentiable and not entry.can("differentiable"):
            raise ValueError(f"--backend {entry.name} runs black-box strategies (not darts, gdas or darts+tpe): "
                             f"use --backend {' or '.join(BACKENDS.with_capability('differentiable'))}")
        if not trains and not entry.can("tabular"):
            raise ValueError(f"--backend {entry.name} runs strategies that train their candidates (not tabular "
                             f"evaluators): use --backend {' or '.join(BACKENDS.with_capability('tabular'))}")
        if "," in config.objectives and config.pruner not in MULTI_OBJECTIVE_PRUNERS \
                and not entry.can("multi_objective_pruning"):
            raise ValueError(f"--pruner {config.pruner}: Optuna prunes single-objective searches only, and "
                             "multi-objective ones are pruned by the median rule on the metric objective: use "
                             "--pruner median, --objectives metric, or --backend "
                             + " or ".join(f"{name} ({BACKENDS.entry(name).capabilities['multi_objective_pruning']})"
                                           for name in BACKENDS.with_capability("multi_objective_pruning")))

    def sole_writer(self) -> bool:
        """Whether this process alone writes the run's study."""
        return False

    def run(self, search: "Search", study: "optuna.Study", evaluator: "Evaluator", objectives: list["Objective"],
            observer: Optional["Observer"]) -> None:
        raise NotImplementedError


BACKENDS: Registry[type[Backend]] = Registry("backend", capabilities={
    "differentiable": "runs the supernet search of a differentiable strategy",
    "tabular": "runs searches answered by a tabular evaluator (no training)",
    "multi_objective_pruning": "how it stops multi-objective trials early, where it can",
    "parallel": "runs several trials at a time"}, required=("differentiable", "tabular", "parallel"))


@BACKENDS.register("local", "This process, or --workers N spawned processes sharing the study (one thread each "
                   "by default)", differentiable=True, tabular=True, parallel=True)
class LocalBackend(Backend):
    def sole_writer(self) -> bool:
        return self.config.workers == 1

    def run(self, search, study, evaluator, objectives, observer) -> None:
        if self.config.workers > 1:
            search._run_workers(study, observer)
        # one process, or after the workers: the retries of trials whose worker died
        search.loop(study, evaluator, objectives, observer)


@BACKENDS.register("ray", "Ray Tune trials on this machine or a cluster (--address), ASHA early stopping",
                   differentiable=False, tabular=False, parallel=True, multi_objective_pruning="ASHA")
class RayBackend(Backend):
    def run(self, search, study, evaluator, objectives, observer) -> None:
        from nas.ray_backend import run_ray  # Ray is an optional extra

        run_ray(search, study, evaluator, objectives)
