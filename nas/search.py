"""The black-box search loop: Optuna proposes, the evaluator trains, the store records.

Uses Optuna's ask-and-tell interface so that one loop handles failures (recorded as FAIL
with their error, the search goes on), repeated proposals (an architecture already
trained in this run is not trained again) and progress reporting.
"""
from __future__ import annotations

import logging
import math
import multiprocessing
import multiprocessing.connection
import os
import shutil
import time
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Literal, Optional

import optuna
import torch
from filelock import FileLock
from optuna.trial import TrialState
from pydantic import BaseModel, ConfigDict, Field

from graphnas.evaluators import Metric, TrainConfig, TrialPruned, TrialResult, get_metric
from graphnas.evaluators.datasets import DatasetBundle, dataset_slug, dataset_task, default_space, resolve_task
from graphnas.evaluators.estimate import GraphSizes, TrialBudget, available_memory, estimate_cost
from graphnas.evaluators.evaluator import EVALUATORS, Evaluator, EvaluatorSettings
from graphnas.evaluators.splits import Splits, confirmation_folds
from graphnas.evaluators.training import check_device, check_sampled_attention, resolve_device, trains_sampled
from graphnas.nas.backends import BACKENDS, become_worker, refuse_live_workers, sigint_blocked
from graphnas.nas.darts import DartsConfig
from graphnas.nas.pruners import AUTO as AUTO_PRUNER, CURVE_ATTR, METRIC_RULES, PRUNERS, MetricHalvingRule
from graphnas.nas.knowledge import (FIRST_PROPOSALS, replay_count, KNOWLEDGE_ATTR, NAS_BENCH_GRAPH_FINGERPRINTS, Fingerprint,
                           KnowledgeStore, Origin, Transfer, default_url, open_store, queue_transfer, register_run,
                           transfer_for)
from graphnas.nas.outcome import OVER_BUDGET_ATTR, completed, failed, over_budget, pruned, tell
from graphnas.nas.refine import NEIGHBOUR_ATTR, neighbour_params
from graphnas.nas.strategies import STRATEGIES
from graphnas.nas import differentiable as _differentiable  # noqa: F401  (registers darts, gdas, darts+tpe)
from graphnas.results.objectives import Objective, parse_objectives
from graphnas.results.store import (CONFIRM_ATTR, check_storage_url, JOURNAL_STORAGE, RunDirectoryError, RunStore, database_lock, ranked_trials,
                           shared_database)
from graphnas.search_spaces import Architecture, SearchSpace
from graphnas.search_spaces.zoo import ZooEntry, zoo_entries, zoo_entry



log = logging.getLogger(__name__)
DEFAULT_THREADS = 1  # torch threads per trial unless --threads says otherwise (SearchConfig.threads)
ESTIMATE_ATTR = "estimate"  # trial user attribute: the candidate's cost estimated before it trained
MAX_REFUSED = 20  # over-budget proposals (at least; or the budget) before the search gives up on its space


@dataclass
class BudgetCount:
    """Trials that take the budget (finished ones that count, and running ones) in a study
    read in number order. The leading run of finished trials never changes, so it is counted
    once: counting every trial before each proposal took 3 ms at 10,000 trials."""

    prefix: int = 0  # leading trials, all finished
    counted: int = 0  # of them, those that count (:func:`count_finished`)

    def taken(self, trials: list[optuna.trial.FrozenTrial]) -> int:
        while self.prefix < len(trials) and trials[self.prefix].state.is_finished():
            self.counted += _counts(trials[self.prefix])
            self.prefix += 1
        rest = trials[self.prefix:]
        return self.counted + sum(_counts(t) or t.state == TrialState.RUNNING for t in rest)


def _counts(t: optuna.trial.FrozenTrial) -> bool:
    """Completed, pruned, or failed by the candidate itself; not a trial interrupted by a dead
    process (no error), nor one refused as over budget before it trained (``over_budget``)."""
    return t.state in (TrialState.COMPLETE, TrialState.PRUNED) or (
        t.state == TrialState.FAIL and "error" in t.user_attrs and not t.user_attrs.get(OVER_BUDGET_ATTR))


def count_finished(study: optuna.Study, trials: Optional[list[optuna.trial.FrozenTrial]] = None) -> int:
    """Trials that count against the budget: completed, pruned, or failed by the candidate
    itself. A trial interrupted by a killed process (FAIL without an error of its own) is
    not counted, so a resumed search runs it again. ``trials``: the study's, already read."""
    return sum(1 for t in (trials if trials is not None else study.get_trials(deepcopy=False)) if _counts(t))


class SearchConfig(BaseModel):
    """Everything a search run is, written to ``config.yaml``."""

    model_config = ConfigDict(extra="forbid")

    space: Optional[str] = None  # None: the default space of the dataset's task (evaluators.datasets.default_space)
    dataset: str = "synthetic"  # registered name, .pt file, or dotted path of a dataset class
    dataset_args: dict = Field(default_factory=dict)  # keyword arguments of a dataset class
    # None: what a registered dataset declared, else what a file's or class's data shows (one
    # Data: node task; a list: graph task; integer labels: classification), recorded here
    task: Optional[str] = None
    strategy: str = "auto"  # the predictor, from the knowledge store (nas.strategies.Auto)
    objectives: str = "metric,flops"
    trials: int = Field(default=20, ge=1)
    timeout: Optional[float] = Field(default=None, gt=0)
    seed: int = 0
    run_dir: Optional[str] = None
    storage: Optional[str] = None
    study_name: Optional[str] = None  # None: the run directory's name
    data_root: Optional[str] = None
    cache_dir: Optional[str] = None
    workers: int = Field(default=1, ge=1)  # local processes sharing the study
    # torch threads of each trial; None: 1 (benchmarks/threads.py: beside another process a
    # trial with every core's thread ran many times slower than with one; alone it gained
    # little; --workers N uses more cores). Part of the numbers: a run keeps it.
    threads: Optional[int] = Field(default=None, ge=1)
    # early stopping of hopeless trials (see nas.pruners for multi-objective searches); auto:
    # successive halving over epochs when candidates train (multi-fidelity), else none
    pruner: str = "auto"
    evaluator: str = "train"  # evaluators.evaluator.EVALUATORS: train each candidate, or a table (nas-bench-graph)
    backend: str = "local"  # nas.backends.BACKENDS: this process and its workers, or Ray Tune
    ray_address: Optional[str] = None  # None: start a local Ray; "auto" or ray://HOST:PORT: join a cluster
    ray_cpus: Optional[int] = Field(default=None, ge=1)  # CPUs of a local Ray instance (None: all)
    cpus_per_trial: float = Field(default=1.0, gt=0)
    gpus_per_trial: float = Field(default=0.0, ge=0)
    # Zoo designs run first as trials tagged ``reference`` (each must be in the space);
    # None: every zoo entry of the dataset's task that the space holds.
    references: Optional[list[str]] = None
    # With train.folds > 1: xu, every trial is a k-fold cross-validation (Xu et al. 2019); errica,
    # a separate search inside every outer fold (Errica et al. 2020; nas.assessment.assess).
    protocol: Literal["xu", "errica"] = "xu"
    # After the budget, the top `confirm` trials by validation (distinct architectures) train
    # again with `confirm_seeds` more seeds, and the best architecture is the one of best mean
    # validation over its seeds. None: 3 for budgets of at least 20 trials, else 0.
    confirm: Optional[int] = Field(default=None, ge=0)
    confirm_seeds: int = Field(default=2, ge=1)
    # Graph tasks searched on a holdout split: confirm on K folds of the graphs the search
    # selects with (evaluators.splits.confirmation_folds) instead of on more seeds; and add
    # up to `confirm_neighbours` unseen one-choice neighbours of the best trial to the
    # finalists (nas.refine). 0: neither.
    confirm_folds: int = Field(default=0, ge=0)
    confirm_neighbours: int = Field(default=0, ge=0)
    # The knowledge store (an Optuna storage URL) a new search starts from, and where a finished
    # one is registered; None: the default store ($GRAPHNAS_KNOWLEDGE or the cache); "none": off.
    knowledge: Optional[str] = None
    train: TrainConfig = Field(default_factory=TrainConfig)
    darts: DartsConfig = Field(default_factory=DartsConfig)  # strategies darts, gdas, darts+tpe

    @property
    def budget(self) -> int:
        """Trials the run records, as its strategy counts them (one derived architecture per
        cost weight for darts and gdas; ``trials`` otherwise)."""
        return STRATEGIES.get(self.strategy).budget(self) if self.strategy in STRATEGIES else self.trials

    @property
    def confirm_top(self) -> int:
        """How many trials the search confirms (0 for an evaluator that does not train: a table
        has one seed)."""
        if self.evaluator not in EVALUATORS or not EVALUATORS.entry(self.evaluator).can("trains"):
            return 0
        return self.confirm if self.confirm is not None else (3 if self.trials >= 20 else 0)

    def evaluator_settings(self) -> EvaluatorSettings:
        """What the evaluator is prepared from: the data and the training settings."""
        return EvaluatorSettings(dataset=self.dataset, dataset_args=self.dataset_args, task=self.task,
                                 data_root=self.data_root, cache_dir=self.cache_dir, train=self.train)

    def resolved_run_dir(self) -> Path:
        if self.run_dir:
            return Path(self.run_dir)
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        space = Path(self.space or default_space(self.dataset, self.task)).stem
        return Path("runs") / f"{space}-{dataset_slug(self.dataset)}-{stamp}"  # a file's path stays out of it


@dataclass
class Progress:
    """What the loop tells its observer after every trial."""

    done: int
    total: int
    best_value: Optional[float]
    pareto_size: int
    last_state: str
    note: str = ""  # what is running now, e.g. the epoch of a supernet


Observer = Callable[[Progress], None]

# Settings that make two runs different searches: resuming with another value is refused.
IDENTITY_ATTR = "search_identity"  # study user attribute: what a joining search must match
IDENTITY_KEYS = ("space", "dataset", "dataset_args", "evaluator", "objectives", "study_name", "train")
# Training settings that do not change what a trial measures.
NEUTRAL_TRAIN_KEYS = ("device", "latency_repeats", "trial_timeout")


def _identity(config: dict) -> dict:
    train = {k: v for k, v in (config.get("train") or {}).items() if k not in NEUTRAL_TRAIN_KEYS}
    return {**config, "train": train}


def auto_pruner(config: SearchConfig, trains_each: bool) -> str:
    """``--pruner auto``: multi-fidelity (successive halving over epochs) where each candidate
    trains long enough for its rungs to rank anything, at least two rungs below the last
    epoch (10 and 30 epochs); none for a table or a supernet (it trains once) and for runs
    of a few epochs."""
    rule = MetricHalvingRule(maximize=True)
    return AUTO_PRUNER if trains_each and config.train.epochs >= rule.min_epochs * rule.reduction_factor else "none"


class Search:
    """One search run over ``config``; ``run()`` executes or resumes it."""

    def __init__(self, config: SearchConfig, resume: bool = False, claim: bool = True) -> None:
        # the task picks the default space and the references: a file or class is loaded once
        # here to show it (issue 42), and the run records it (workers and resumes need no load)
        self.task = resolve_task(config.dataset, config.task, config.data_root, config.cache_dir, config.dataset_args)
        if self.task is not None and config.task is None and dataset_task(config.dataset) is None:
            config = config.model_copy(update={"task": self.task.task})
        if config.space is None:
            config = config.model_copy(update={"space": default_space(config.dataset, config.task)})
        if config.protocol == "errica":
            raise ValueError("protocol errica runs one search per outer fold: use nas.assessment.assess")
        self.config = config
        self.run_dir = config.resolved_run_dir()
        if config.study_name is None:
            config = config.model_copy(update={"study_name": self.run_dir.resolve().name})
            self.config = config
        if config.threads is None:
            config = config.model_copy(update={"threads": DEFAULT_THREADS})
            self.config = config
        if config.workers > 1 and config.storage is None:  # SQLite is for one writing process
            config = config.model_copy(update={"storage": JOURNAL_STORAGE})
            self.config = config
        if config.workers > 1 and (config.storage or "").startswith("sqlite"):
            raise ValueError("--workers > 1 cannot share an SQLite storage (one writing process only): leave "
                             "--storage unset for a journal file, or give a PostgreSQL/MySQL URL")
        check_storage_url(config.storage, "--storage")
        check_storage_url(config.knowledge, "--knowledge")
        self.store = RunStore(self.run_dir, config.storage)
        self.strategy = STRATEGIES.entry(config.strategy)  # raises, listing the strategies
        self.evaluator_entry = EVALUATORS.entry(config.evaluator)  # raises, listing the evaluators
        self.trains = self.evaluator_entry.can("trains")  # else a table answers: no seeds, no model
        self.differentiable = self.strategy.can("differentiable")
        if config.pruner == "auto":
            config = config.model_copy(update={"pruner": auto_pruner(config, self.trains and not self.differentiable)})
            self.config = config
        # another machine's search on the same shared database and run name: this one joins it
        self.joining = not resume and self._joins_a_shared_study()
        if resume:
            self._check_resume()
        elif self._holds_a_run() and not self.joining:
            raise ValueError(f"{self.run_dir} already holds a run (study {config.study_name!r}); "
                             "continue it with --resume or choose another --run-dir")
        self.space = SearchSpace.load(config.space)
        if resume:
            self._check_space_unchanged()
        if self.joining:  # before any work, as a resume's checks
            self._check_joined_identity(self.store.load_study(config.study_name))
        self._check_evaluator()
        self.space = self.strategy.factory.space_of(self.space, self.run_dir, resume)
        self._check_strategy()
        PRUNERS.get(config.pruner)  # raises, listing the pruners
        backend = BACKENDS.entry(config.backend)  # raises, listing the backends
        backend.factory.check(backend, config, self.differentiable, self.trains)
        self.backend = backend.factory(config)
        self.resume = resume
        self._check_names()
        self.references = self._check_references()
        self._prepared: Optional[Evaluator] = None
        self._budget = BudgetCount()
        self.deadline = math.inf  # run() sets it from --timeout
        self._refused = 0  # proposals refused as over budget, never trained
        self._sizes: Optional[GraphSizes] = None  # the dataset's sizes for cost estimates (_over_budget)
        self._all_ids: Optional[set[str]] = None  # every architecture of a small space (_space_exhausted)
        self._ids_enumerated = False
        self._transfer_planned = False  # plan_transfer ran (the CLI's banner asks before the run)
        self.knowledge = self._open_knowledge()
        self.transfer: Optional[Transfer] = None  # what the run took from the knowledge (run, attach)
        # the driving process holds the run directory until its run ends; its workers do not
        self._claim = self._claim_run_dir() if claim else None

    def _check_strategy(self) -> None:
        """What the strategy declared at registration, against the run's settings."""
        config, entry = self.config, self.strategy
        if len(config.objectives.split(",")) > 1 and not entry.can("multi_objective"):
            raise ValueError(f"--strategy {config.strategy} optimises one objective: give --objectives metric, "
                             "or a multi-objective strategy (" + ", ".join(STRATEGIES.with_capability(
                                 "multi_objective")) + ")")
        if config.workers > 1 and self.differentiable:
            raise ValueError(f"--strategy {config.strategy} trains one supernet in one process: use --workers 1")
        if config.workers > 1 and not entry.can("parallel"):
            raise ValueError(f"--strategy {config.strategy} is not safe with several workers: use --workers 1")

    def _claim_run_dir(self) -> FileLock:
        """The run directory, held; after every other check, so that a refused search leaves
        nothing behind. A fresh run is checked again under the lock: another search started
        at the same moment may have created its study since."""
        self._created_run_dir = not self.run_dir.exists()
        lock = self.store.claim()
        try:
            refuse_live_workers(self.run_dir)  # a killed search's worker may outlive it by a moment
        except ValueError:
            lock.release()
            raise
        # a shared study that appeared since __init__ (another machine's, created meanwhile) is joined
        if not self.resume and not self.joining and self._holds_a_run() and not self._joins_a_shared_study():
            lock.release()
            raise ValueError(f"{self.run_dir} already holds a run (study {self.config.study_name!r}), started at "
                             "the same moment; continue it with --resume or choose another --run-dir")
        if self.backend.sole_writer():  # nothing else writes the study
            self.store.write_alone()
        return lock

    def _holds_a_run(self) -> bool:
        return self.store.config_path.is_file() or self.store.has_study(self.config.study_name)

    def _joins_a_shared_study(self) -> bool:
        """A fresh run directory whose shared database (PostgreSQL, MySQL) already holds the
        study: started by the same command on another machine, which this search joins as
        one more worker, as Optuna's ``load_if_exists`` does."""
        return (shared_database(self.store.storage) and not self.store.config_path.is_file()
                and self.store.has_study(self.config.study_name))

    def _check_names(self) -> None:
        """Objectives, metric and device, which need no dataset: checked before it loads."""
        parse_objectives(self.config.objectives, "maximize")
        if self.config.train.metric:
            get_metric(self.config.train.metric)
        check_device(self.config.train.device)

    def _open_knowledge(self) -> Optional[KnowledgeStore]:
        """The store of --knowledge, opened before any work (a black-box search only)."""
        if self.differentiable:
            return None
        try:
            return open_store(self.config.knowledge)
        except Exception as err:  # any storage error: a path that cannot be written, a bad URL
            raise ValueError(f"--knowledge {self.config.knowledge or default_url()}: cannot open the knowledge "
                             f"store ({type(err).__name__}: {err}); give another URL or --knowledge none") from None

    def _origin(self) -> Origin:
        # a search answered by NAS-Bench-Graph's table of dataset X learns from the other tables
        bench = self.config.dataset if self.evaluator_entry.capabilities.get("space") == "nas_bench_graph" else None
        return Origin(self.knowledge.url if self.knowledge else None, self.space, bench)

    def _fingerprint(self, evaluator: Evaluator) -> Optional[Fingerprint]:
        if not self.trains:  # a table: the benchmark's own fingerprint of its dataset, if it has one
            return NAS_BENCH_GRAPH_FINGERPRINTS.get(evaluator.name)
        return Fingerprint.of_bundle(evaluator.bundle)

    def _start_from_knowledge(self, study: optuna.Study) -> None:
        """Queue the best architectures of the closest earlier searches after the references
        (queries like any other, none asked twice) and record which searches they are."""
        if self.transfer is None:
            return
        # the ids of the references as queued (trial_params may replace a moot value), as a
        # source's trials were recorded
        skip = [self.space.canonical_id(self.space.suggest(optuna.trial.FixedTrial(
            self.space.trial_params(e.architecture_for(self.config.dataset))))) for e in self.references]
        room = max(self.config.trials - len(self.references), 0)
        queue_transfer(study, self.transfer, replay_count(self.config.trials, room), skip)
        study.set_user_attr(KNOWLEDGE_ATTR, self.transfer.record)

    def _register(self, study: optuna.Study) -> None:
        """Add the finished run to the knowledge store (trained runs only: a table is not news)."""
        if self.knowledge is None or not self.trains or "fingerprint" not in study.user_attrs:
            return
        try:
            register_run(self.knowledge, self.run_dir)
        except ValueError as err:  # no completed trial: nothing to learn from
            log.info("not registered in the knowledge store: %s", err)
        except Exception as err:  # a store gone away or locked must not fail a finished search
            log.warning("could not register the run in the knowledge store %s: %s", self.knowledge.url, err)

    def _check_references(self) -> list[ZooEntry]:
        """The zoo entries to run first, each checked to be in the space (before any work)."""
        cfg = self.config
        if cfg.references is None:  # the default: what the zoo has for this task, where the space holds it
            task = cfg.task or dataset_task(cfg.dataset)
            if self.differentiable or not self.trains or task is None:
                return []
            held = [e for e in zoo_entries(task) if e.reference and self.space.contains(e.architecture_for(cfg.dataset))]
            # a share of the budget, as for the knowledge store's replays: the strategy proposes the rest
            return held[:replay_count(cfg.trials, cfg.trials)]
        if cfg.references and (self.differentiable or not self.trains):
            raise ValueError("--reference adds trained trials to a black-box search (tpe, random, nsga2, ...); "
                             f"not to --strategy {cfg.strategy} or --evaluator {cfg.evaluator}")
        entries = [zoo_entry(ref) for ref in cfg.references]
        for entry in entries:
            if not self.space.contains(entry.architecture_for(cfg.dataset)):
                raise ValueError(f"--reference {entry.ref}: the design is not in space {self.space.name!r}, so it "
                                 "cannot be one of its trials; use a space that holds it (the node preset holds "
                                 "zoo:gcn and zoo:gat) or --reference none")
        return entries

    def _enqueue_references(self, study: optuna.Study) -> None:
        """Queue the reference designs as the first trials of a new study: real trials,
        counted in the budget, selected and plotted like any other, and seen by the sampler."""
        for entry in self.references[:self.config.trials]:  # beyond the budget they would wait forever
            study.enqueue_trial(self.space.trial_params(entry.architecture_for(self.config.dataset)),
                                user_attrs={"reference": entry.ref})

    def _check_evaluator(self) -> None:
        """What the evaluator declared at registration, against the space and the objectives."""
        cfg, entry = self.config, self.evaluator_entry
        answers = entry.capabilities.get("space")  # a table answers the cells of one space only
        if answers is not None and self.space.spec.canonical != answers:
            raise ValueError(f"--evaluator {cfg.evaluator} answers the cells of space {answers!r} only: use --space "
                             f"{answers} (or {answers}_proteins), not {self.space.name!r}")
        if not entry.can("flops") and "flops" in [o.strip() for o in cfg.objectives.split(",")]:
            raise ValueError(f"--evaluator {cfg.evaluator}: the benchmark has no FLOPs; use --objectives "
                             "metric,latency or metric,params")
        if self.differentiable and not self.trains:
            raise ValueError(f"--strategy {cfg.strategy} trains a supernet; it cannot use a tabular evaluator")

    def _check_space_unchanged(self) -> None:
        """Refuse to resume a run whose space file now says something else: its finished
        trials were drawn from the old space, and Optuna cannot mix the two."""
        stored = self.store.read_config().get("space_spec")
        if stored is None:  # a run from before the space was stored: nothing to compare with
            return
        changed = _changed_paths(stored, space_content(self.space))
        if changed:
            raise ValueError(f"cannot resume {self.run_dir}: space {self.config.space!r} has changed since the run "
                             f"began ({', '.join(changed[:6])}{' ...' if len(changed) > 6 else ''}); restore it or "
                             "start a new run")

    def _check_resume(self) -> None:
        self.store.check_study(self.config.study_name)  # a deleted or damaged study: one line, nothing created
        # Settings added since the run was written take their defaults (older runs resume).
        defaults, stored = SearchConfig().model_dump(mode="json"), self.store.read_config()
        # one level down too: a train setting added since (split) takes its default in an older run
        old = _identity({**defaults, **stored, "train": {**defaults["train"], **(stored.get("train") or {})}})
        new = _identity(self.config.model_dump(mode="json"))
        # each changed setting by its own path (train.epochs), not the two whole sections
        diffs = [f"{path}: run has {_at(old, path)!r}, now {_at(new, path)!r}" for k in IDENTITY_KEYS
                 if old.get(k) != new.get(k) for path in _changed_paths(old.get(k), new.get(k), f"{k}.")]
        if diffs:
            raise ValueError(f"cannot resume {self.run_dir} with different settings: " + "; ".join(diffs))
        self.store.check_sampler()  # a snapshot this user's graphnas did not sign is refused before any work

    def prepare(self) -> Evaluator:
        """The run's evaluator with what it answers from (the dataset, or a table), prepared
        once per search (the CLI asks for it before its banner)."""
        if self._prepared is None:
            self._prepared = self.evaluator_entry.factory.prepare(self.config.evaluator_settings(), self.space)
        return self._prepared

    def run(self, observer: Optional[Observer] = None) -> optuna.Study:
        # --timeout bounds the whole search, confirmation included, from this moment
        self.deadline = time.monotonic() + self.config.timeout if self.config.timeout else math.inf
        before = torch.get_num_threads()
        torch.set_num_threads(self.config.threads)
        try:
            return self._run(observer)
        finally:
            torch.set_num_threads(before)  # a process that runs a search and goes on (tests, notebooks)
            self.release()  # also when the run failed before its trials

    def _run(self, observer: Optional[Observer] = None) -> optuna.Study:
        cfg = self.config
        evaluator = self.prepare()
        if self.trains:
            self._check_fits(evaluator.bundle)
        metric, objectives = self.objectives(evaluator)
        log.info("%s search of %s (%s) on %s: strategy %s, objectives %s, %d trials, %d worker(s), %d torch thread(s), "
                 "storage %s", "resumed" if self.resume else "joining" if self.joining else "new", self.space.name,
                 self.space.source, cfg.dataset, cfg.strategy, cfg.objectives, cfg.trials, cfg.workers, cfg.threads,
                 self.store.storage_template)
        if self.resume:
            study = self.store.load_study(cfg.study_name)
            # A sampler re-created with the run's seed would draw its first proposals again;
            # offsetting the seed by the trials so far keeps a resumed run exploring. A
            # single local process restores the sampler it pickled instead, so the search
            # goes on exactly as the uninterrupted one would have.
            saved = self.store.load_sampler() if self.backend.sole_writer() else None
            # interrupted trials: FAIL, and queued again if the snapshot holds their proposal
            self.store.fail_stale_trials(study, proposed_through=saved.trial if saved else None)
            self.attach(study, objectives, cfg.seed + len(study.trials))
            if saved is not None:
                study.sampler = saved.sampler
        else:
            self.store.write_config({**cfg.model_dump(mode="json"), "run_dir": str(self.run_dir),
                                     "storage": self.store.storage_template, **run_facts(self.space, evaluator)})
        if not self.resume and not self.joining:
            try:
                study = self._create(evaluator, metric, objectives)
            except optuna.exceptions.DuplicatedStudyError:  # another machine created it a moment ago
                self.joining = True
        if self.joining:
            study = self._join(objectives)
        study.set_user_attr("dataset", evaluator.name)  # what export needs to rebuild models
        if evaluator.info is not None:  # a tabular evaluator builds no model
            study.set_user_attr("data_info", asdict(evaluator.info))
        try:
            if self.differentiable:  # its own run: one supernet in this process (Backend.check)
                self.strategy.factory(self.space, cfg.seed, len(objectives)).run(self, study, evaluator, objectives,
                                                                                observer)
            else:
                self.backend.run(self, study, evaluator, objectives, observer)
            self.confirm(study, evaluator, objectives, observer)
        finally:
            self.store.write_outputs(study)
            self.release()  # before registering: the run is finished
        self._register(study)
        return study

    def _create(self, evaluator: Evaluator, metric: Metric, objectives: list[Objective]) -> optuna.Study:
        """A fresh run's study, with its references and what it takes from the knowledge store."""
        cfg = self.config
        fingerprint = self._fingerprint(evaluator)
        self.plan_transfer(evaluator)
        study = self.store.create_study(cfg.study_name, objectives, self.make_sampler(cfg.seed, len(objectives)),
                                        metric.name)
        study.set_user_attr(IDENTITY_ATTR, self._shared_identity())
        study.pruner = PRUNERS.get(cfg.pruner)()
        if fingerprint is not None:
            study.set_user_attr("fingerprint", asdict(fingerprint))
        self._enqueue_references(study)
        self._start_from_knowledge(study)
        return study

    def plan_transfer(self, evaluator: Evaluator) -> Optional[Transfer]:
        """What a fresh run takes from the knowledge store (once; the CLI's banner asks first):
        None for a strategy that does not transfer (random), without a store, or with no
        source close enough."""
        if self._transfer_planned:
            return self.transfer
        self._transfer_planned = True
        fingerprint = self._fingerprint(evaluator)
        if self.knowledge is not None and self.strategy.can("transfers") and fingerprint is not None:
            self.transfer = transfer_for(fingerprint, self._origin(), exclude_source=str(self.run_dir))
        return self.transfer

    def trial_sources(self, evaluator: Evaluator) -> dict[str, int]:
        """Where a fresh run's trials come from: references, knowledge replays, the strategy."""
        refs = min(len(self.references), self.config.trials)
        transfer = self.plan_transfer(evaluator)
        replays = replay_count(self.config.trials, self.config.trials - refs) if transfer is not None else 0
        return {"references": refs, "knowledge": replays, "strategy": self.config.trials - refs - replays}

    def _check_joined_identity(self, study: optuna.Study) -> None:
        theirs = study.user_attrs.get(IDENTITY_ATTR)
        if theirs is None:  # the creating machine has not written it yet
            return
        mine = self._shared_identity()
        diffs = [k for k in mine if theirs.get(k) != mine[k]]
        if diffs:
            raise ValueError(f"{self.store.storage}: study {self.config.study_name!r} was started with other "
                             f"settings ({', '.join(diffs)}); give the same command, or another --run-dir name")

    def _shared_identity(self) -> dict[str, Any]:
        """What every machine's search on one shared study must agree on: the settings a
        resume must keep, with the space by its content (its file's path may differ)."""
        identity = _identity(self.config.model_dump(mode="json"))
        return {**{k: identity.get(k) for k in IDENTITY_KEYS if k != "space"}, "space_spec": space_content(self.space)}

    def _join(self, objectives: list[Objective]) -> optuna.Study:
        """The study another machine's search created: the same settings, or a one-line refusal;
        then this search is one more worker on it (its own sampler seed, no sweep of trials
        that may be other machines')."""
        study = self.store.load_study(self.config.study_name)
        self._check_joined_identity(study)  # again: after a creation race it is checked only now
        # a seed no other worker has: the trials so far and this process
        self.attach(study, objectives, self.config.seed + 1000 * (len(study.trials) + 1) + os.getpid() % 1000)
        return study

    def release(self) -> None:
        """Let another search open the run directory (``run`` does this as it ends)."""
        if self._claim is not None:
            self._claim.release()

    def abandon(self) -> None:
        """Release the run directory of a search refused before it wrote anything (a dataset
        that cannot be loaded), and remove it if this search created it: nothing left behind."""
        self.release()
        if self._claim is None or self.resume or self.joining:
            return
        if self._started_nothing():  # what a failed start wrote would block the next start (issue 43)
            for name in self.STARTED_FILES:
                (self.run_dir / name).unlink(missing_ok=True)
        if self._created_run_dir and {p.name for p in self.run_dir.iterdir()} <= {RunStore.LOCK}:
            shutil.rmtree(self.run_dir, ignore_errors=True)

    # what a fresh start writes before its first trial: config.yaml, then the study's storage
    STARTED_FILES = ("config.yaml", "study.db", "study.db-wal", "study.db-shm", "journal.log", "sampler.pkl")

    def _started_nothing(self) -> bool:
        """No trial of this fresh run has begun: its study is absent, or empty."""
        try:
            return not self.store.has_study(self.config.study_name) or \
                not self.store.load_study(self.config.study_name).get_trials(deepcopy=False)
        except Exception:  # a storage that cannot even be read holds no trial worth keeping
            return True

    def confirm(self, study: optuna.Study, evaluator: Evaluator, objectives: list[Objective],
                observer: Optional[Observer] = None) -> None:
        """Train the top ``confirm_top`` completed trials by validation (one per architecture),
        the reference designs and the neighbours :meth:`add_neighbours` adds, again: with seeds
        ``seed + 1 .. seed + confirm_seeds``, or on ``confirm_folds`` folds. Every figure is recorded in the study
        (:data:`CONFIRM_ATTR`): :func:`results.store.best_row` then selects on the mean.
        Validation only selects; test figures are recorded to be reported. Trials confirmed
        before (a resumed run) are not trained again."""
        top = self.config.confirm_top
        if top == 0 or not any(o.name == "metric" for o in objectives):
            return
        self.add_neighbours(study, evaluator, objectives, observer)
        frame = self.store.trials_frame(study)
        done = frame[frame["state"] == "COMPLETE"].drop_duplicates("arch_id")
        neighbours = set(done.loc[done[NEIGHBOUR_ATTR].notna(), "trial"]) if NEIGHBOUR_ATTR in done else set()
        # the zoo's reference designs are finalists too: the search should not prefer a design
        # to the textbook one on the noise of one split (PROTEINS: zoo:gin measured 75.7 over
        # 10 folds where the search's pick measured 73.1; benchmarks/README.md)
        references = set(done.loc[done["reference"].fillna("") != "", "trial"])
        finalists = ranked_trials(done, objectives)  # the order best_row selects in
        finalists = finalists[finalists["trial"].isin(set(finalists["trial"].head(top)) | neighbours | references)]
        records = dict(study.user_attrs.get(CONFIRM_ATTR, {}))
        folds = confirmation_folds(evaluator.bundle, self.config.confirm_folds) if self.config.confirm_folds else None
        for n, row in enumerate(finalists.itertuples()):
            if str(row.trial) in records:
                continue
            # --timeout covers the confirmation: a finalist whose trainings would not fit is not begun
            needs = float(row.train_time_s) * (len(folds) if folds is not None else self.config.confirm_seeds)
            if time.monotonic() + needs > self.deadline:
                log.warning("confirmation stopped at %d of %d finalists: the search's --timeout %g s leaves too "
                            "little time for trial %d (about %.0f s)", n, len(finalists), self.config.timeout,
                            row.trial, needs)
                break
            if observer:
                self._observe(study, observer, "RUNNING", f"confirming trial {row.trial} ({n + 1}/{len(finalists)})")
            records[str(row.trial)] = self._confirmation(evaluator, Architecture.from_json(row.arch_json), row, folds)
            study.set_user_attr(CONFIRM_ATTR, records)  # after each trial: a resumed run keeps it

    def _confirmation(self, evaluator: Evaluator, arch: Architecture, row: Any,
                      folds: Optional[list[Splits]]) -> dict[str, Any]:
        """One finalist's confirmation record: its figures on each of ``folds``, or its own
        seed's and ``confirm_seeds`` more seeds' figures."""
        if folds is not None:
            results = [evaluator.evaluate_splits(arch, splits) for splits in folds]
            return {"folds": len(folds), "val": [r.val_metric for r in results],
                    "test": [r.test_metric for r in results]}
        seed = self.config.train.seed
        seeds = [seed + 1 + i for i in range(self.config.confirm_seeds)]
        results = [evaluator.evaluate(arch, seed=other) for other in seeds]
        return {"seeds": [seed, *seeds], "val": [float(row.val_metric), *(r.val_metric for r in results)],
                "test": [float(row.test_metric), *(r.test_metric for r in results)]}

    def add_neighbours(self, study: optuna.Study, evaluator: Evaluator, objectives: list[Objective],
                       observer: Optional[Observer] = None) -> None:
        """Evaluate up to ``confirm_neighbours`` unseen one-choice neighbours of the best trial
        by validation as trials tagged :data:`NEIGHBOUR_ATTR` (see :mod:`nas.refine`), for
        the confirmation to rank with the finalists. A resumed run adds only those missing,
        around the same trial."""
        limit = self.config.confirm_neighbours
        trials = study.get_trials(deepcopy=False)
        added = [t for t in trials if NEIGHBOUR_ATTR in t.user_attrs]
        if limit <= len(added):
            return
        done = self.store.trials_frame(study)
        done = done[done["state"] == "COMPLETE"]
        if done.empty:
            return
        base = added[0].user_attrs[NEIGHBOUR_ATTR] if added else int(ranked_trials(done, objectives).iloc[0]["trial"])
        metric = next(o for o in objectives if o.name == "metric")
        proposals = neighbour_params(self.space, trials[base], trials, limit - len(added),
                                     self.config.seed, metric.direction == "maximize")
        for n, params in enumerate(proposals):
            if observer:
                self._observe(study, observer, "RUNNING", f"neighbour {n + 1}/{len(proposals)} of trial {base}")
            study.enqueue_trial(params, user_attrs={NEIGHBOUR_ATTR: base})
            self._one_trial(study, study.ask(), evaluator, objectives)

    def _check_fits(self, bundle: DatasetBundle) -> None:
        """Refuse, before the first trial, a space whose choices cannot train on this data."""
        cfg, spec = self.config, self.space.spec
        self._check_confirmation(bundle)
        sampled = trains_sampled(bundle, cfg.train)
        if not bundle.info.graph_level:
            check_sampled_attention(spec.layers.attention.values(), bundle.data.num_nodes, cfg.train,
                                    where=f"space {self.space.name!r} (layers.attention)")
        if sampled and self.differentiable:
            raise ValueError(f"--strategy {cfg.strategy} trains its supernet full-batch, and this graph has "
                             f"{bundle.data.num_nodes:,} nodes (> sample_above_nodes="
                             f"{cfg.train.sample_above_nodes:,}): use a black-box strategy (tpe, random, "
                             "nsga2), which trains each candidate on sampled mini-batches")
        learned_edges = (spec.sparsity is not None and max(spec.sparsity.edges.values()) > 0
                         and "learned" in spec.sparsity.edge_method.values())
        if learned_edges and (bundle.info.graph_level or sampled):
            raise ValueError(f"space {self.space.name!r}: sparsity.edge_method 'learned' learns a gate per edge of "
                             "one graph trained whole; this dataset is "
                             f"{'graph-level' if bundle.info.graph_level else 'trained on sampled mini-batches'}: "
                             "use edge_method: teddy")

    def _check_confirmation(self, bundle: DatasetBundle) -> None:
        cfg = self.config
        if (cfg.confirm_folds or cfg.confirm_neighbours) and cfg.confirm_top == 0:
            raise ValueError("--confirm-folds and --confirm-neighbours act in the confirmation of the top trials: "
                             f"give --confirm K (K >= 1; the default is 0 below 20 trials, and this run has {cfg.trials})")
        if cfg.confirm_folds == 1:
            raise ValueError("--confirm-folds K: K is the number of folds, at least 2 (0 confirms on seeds)")
        if cfg.confirm_folds and not bundle.info.graph_level:
            raise ValueError(f"--confirm-folds applies to graph-level datasets; {bundle.name} is one graph "
                             "(confirm on seeds: --confirm K)")
        if cfg.confirm_folds and cfg.train.folds > 1:
            raise ValueError(f"--confirm-folds applies to a search on one holdout split; with --folds {cfg.train.folds} "
                             "every trial is already a cross-validation")

    def objectives(self, evaluator: Evaluator) -> tuple[Metric, list[Objective]]:
        metric = get_metric(self.config.train.metric or evaluator.metric)
        return metric, parse_objectives(self.config.objectives, metric.direction)

    def make_sampler(self, seed: int, n_objectives: int) -> optuna.samplers.BaseSampler:
        """The sampler of the run's strategy over its space (see :mod:`nas.strategies`), given
        what the run took from the knowledge."""
        return self.strategy.factory(self.space, seed, n_objectives, transfer=self.transfer).sampler()

    def attach(self, study: optuna.Study, objectives: list[Objective], seed: int) -> None:
        """Give an opened study this run's sampler (seeded with ``seed``) and pruner: they
        live in the process, not in the storage. A run that started from knowledge goes on
        with the same sources (read again when first needed)."""
        record = study.user_attrs.get(KNOWLEDGE_ATTR)
        self.transfer = Transfer(record, self._origin()) if record else None
        study.sampler = self.make_sampler(seed, len(objectives))
        study.pruner = PRUNERS.get(self.config.pruner)()

    def loop(self, study: optuna.Study, evaluator: Evaluator, objectives: list[Objective],
             observer: Optional[Observer] = None, worker: int = 0) -> None:
        """Run trials until the budget is met: finished trials plus those other workers are
        running now (so that N workers do not overshoot it by N - 1)."""
        while time.monotonic() < self.deadline:
            if self._refused > max(MAX_REFUSED, self.config.trials):
                log.warning("the search stopped: its last %d proposals were all over budget (see the trials' errors); "
                            "give a larger --timeout or --trial-timeout, or a space of cheaper candidates",
                            self._refused)
                break
            if self._space_exhausted(study):
                log.warning("space %s is exhausted: all its %d architectures have been evaluated, so the search "
                            "stops at %d of %d trials", self.space.name, len(self._all_ids),
                            count_finished(study), self.config.trials)
                break
            trial = self._reserve_trial(study)
            if trial is None:
                break
            state = self._one_trial(study, trial, evaluator, objectives, worker)
            if observer:
                self._observe(study, observer, state)

    EXHAUSTIBLE = 20_000  # labellings enumerated at most to tell whether a space can run out

    def _space_exhausted(self, study: optuna.Study) -> bool:
        """Has every architecture of a small discrete space been evaluated? Then another trial
        could only repeat one (trained twice, listed twice on the front). A space with a float
        range, or too many labellings to enumerate cheaply, is never exhausted by a search."""
        if not self._ids_enumerated:
            self._all_ids, self._ids_enumerated = self._architecture_ids(), True
        if self._all_ids is None:
            return False
        seen = {self.space.canonical_id(Architecture.from_json(t.user_attrs["arch_json"]))
                for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
                if "arch_json" in t.user_attrs}
        return self._all_ids <= seen

    def _architecture_ids(self) -> Optional[set[str]]:
        try:
            if self.space.labelled_size() > self.EXHAUSTIBLE:
                return None
            ids = set()
            for arch in self.space.enumerate():
                try:  # enumerate() does not validate: a combination the space refuses is never proposed
                    arch = Architecture.model_validate(arch.model_dump())
                except ValueError:
                    continue
                ids.add(self.space.canonical_id(arch))
            return ids
        except ValueError:  # a float range: unbounded
            return None

    def _reserve_trial(self, study: optuna.Study) -> Optional[optuna.Trial]:
        """Ask for the next trial unless the budget is met. Counting and asking hold a lock
        file in the run directory, because without it two workers can both see one free
        slot and both ask (CI measured 7 trials for a budget of 6); Optuna's
        MaxTrialsCallback has the same check-then-ask gap. A single local process needs no
        lock: search.lock keeps every other search out of its run directory."""
        if shared_database(self.store.storage):  # workers on other machines: the database holds the lock
            with database_lock(self.store.storage, f"graphnas budget {self.config.study_name}"):
                return self._ask_within_budget(study)
        if self.backend.sole_writer():
            return self._ask_within_budget(study)
        with FileLock(self.run_dir / "budget.lock"):
            return self._ask_within_budget(study)

    def _ask_within_budget(self, study: optuna.Study) -> Optional[optuna.Trial]:
        trials = study.get_trials(deepcopy=False)  # one read for both counts
        if self._budget.taken(trials) >= self.config.trials:
            return None
        return study.ask()

    def _observe(self, study: optuna.Study, observer: Observer, state: str, note: str = "") -> None:
        outputs = self.store.write_outputs(study, plots=False)
        best = outputs.best["val_metric"] if outputs.best is not None else None
        observer(Progress(count_finished(study), self.config.budget, best, len(outputs.front), state, note))

    def _run_workers(self, study: optuna.Study, observer: Optional[Observer]) -> None:
        """Start ``workers`` processes on the study, report progress while they run, then fail
        the trials of any worker that died (the journal storage has no heartbeat). Workers die
        with this process (:func:`nas.backends.become_worker`) and leave Ctrl-C to it."""
        ctx = multiprocessing.get_context("spawn")  # fork would copy torch's thread pools
        # the run directory by name: a worker must not stamp a default one of its own
        config = self.config.model_copy(update={"run_dir": str(self.run_dir)}).model_dump_json()
        procs = [ctx.Process(target=run_worker, args=(config, i), daemon=False) for i in range(self.config.workers)]
        try:
            with sigint_blocked():
                for p in procs:
                    p.start()
            seen = -1
            while any(p.is_alive() for p in procs):
                # a worker's exit wakes the driver at once (a fixed sleep added up to half a second
                # to every run's end); otherwise progress is read twice a second
                multiprocessing.connection.wait([p.sentinel for p in procs if p.is_alive()], timeout=0.5)
                done = count_finished(study)
                if observer and done != seen:
                    seen = done
                    self._observe(study, observer, "COMPLETE")
        finally:  # Ctrl-C or an error here: the workers stop now, their trials are left for --resume
            for p in procs:
                if p.is_alive():
                    p.terminate()
            for p in procs:
                if p.pid is not None:  # started
                    p.join()
        self.store.fail_stale_trials(study)

    def _one_trial(self, study: optuna.Study, trial: optuna.Trial, evaluator: Evaluator,
                   objectives: list[Objective], worker: int = 0, tags: Optional[dict] = None) -> str:
        trial.set_user_attr("worker", worker)
        for key, value in (tags or {}).items():
            trial.set_user_attr(key, value)
        try:
            arch = self.space.suggest(trial)
            trial.set_user_attr("arch_id", arch.arch_id)
            trial.set_user_attr("arch_json", arch.to_json())
            refusal = self._over_budget(arch, evaluator, trial)
            if refusal is not None:  # never trained: the sampler sees a failure, the budget does not count it
                self._refused += 1
                state = tell(study, trial, over_budget(f"over budget, not trained: {refusal}"))
                log.warning("trial %d not trained: %s", trial.number, refusal)
                return state
            if self.backend.sole_writer():
                # The sampler's state once this trial's proposal is drawn: if the process
                # dies now, --resume retries this trial with its parameters (which draws
                # nothing) and continues from this state, as the uninterrupted run would.
                # Its parameters and attributes so far are committed with it, in one write.
                self.store.save_sampler(study.sampler, trial.number)
            outcome = completed(self._evaluate(study, arch, evaluator, trial), objectives)
        except TrialPruned as stop:  # stopped early by the pruner: recorded, counted, not failed
            outcome = pruned(str(stop))
        except RunDirectoryError:  # the engine's own failure: the trial stays RUNNING, swept on --resume
            raise
        except Exception as err:  # any failure of a candidate fails only its trial
            outcome = failed(err)
        state = tell(study, trial, outcome)
        log.info("trial %d %s", trial.number, outcome)  # formatted only when -v shows it
        if state == "FAIL" and torch.cuda.is_available():
            torch.cuda.empty_cache()  # outside the except: its traceback no longer pins the tensors
        return state

    def _evaluate(self, study: optuna.Study, arch: Architecture, evaluator: Evaluator,
                  trial: optuna.Trial) -> TrialResult:
        if not self.trains:  # a table lookup: nothing to reuse or to stop early
            return evaluator.evaluate(arch)
        for old in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            if old.user_attrs.get("arch_id") == arch.arch_id:  # same seed, same result: reuse it
                return TrialResult.from_attrs(old.user_attrs)

        # a reference design is the baseline the search is measured against: it trains to the end
        # (a deep reference learns slowly: zoo:luo_gcn was stopped at epoch 10 on its way to the best)
        prunes = self.config.pruner != "none" and not trial.user_attrs.get("reference")
        if self.config.pruner == "none" and self.deadline == math.inf:  # else the curve is kept, a reference's too
            return evaluator.evaluate(arch)
        curve: list[float] = []
        rule = None
        if len(study.directions) > 1 and prunes:  # Optuna prunes one objective: our rule
            rule = METRIC_RULES[self.config.pruner](self.objectives(evaluator)[0].direction == "maximize")

        def report(epoch: int, value: float) -> bool:  # the evaluator's early-stopping hook
            curve.append(value)
            if time.monotonic() > self.deadline:
                raise TrialPruned(f"stopped at epoch {epoch}: the search's --timeout {self.config.timeout:g} s ran out")
            if not prunes:
                return False
            if rule is not None:
                return rule.should_prune(study, curve)
            trial.report(value, epoch)
            return trial.should_prune()

        try:
            return evaluator.evaluate(arch, report)
        finally:  # complete or pruned, the curve is what later trials are compared with
            trial.set_user_attr(CURVE_ATTR, curve)

    def _over_budget(self, arch: Architecture, evaluator: Evaluator, trial: optuna.Trial) -> Optional[str]:
        """Why ``arch`` cannot be trained within the trial's budget, from its estimated cost
        (recorded on the trial before it trains), or None. The budget is the trial's
        --trial-timeout and what is left of the search's --timeout, in seconds, and the
        device's free memory for attention scores."""
        bundle = getattr(evaluator, "bundle", None)
        if not self.trains or bundle is None:
            return None
        train = self.config.train
        device = resolve_device(train.device)
        if self._sizes is None:  # the data's sizes, once per run: never per trial
            self._sizes = GraphSizes.of(bundle, train.batch_size)
        estimate = estimate_cost(arch, bundle, train.batch_size, device, self._sizes)
        trial.set_user_attr(ESTIMATE_ATTR, {"flops": estimate.flops, "attention_mib": estimate.attention_bytes / 2 ** 20,
                                            "seconds_per_epoch": estimate.seconds_per_epoch})
        limits = [t for t in (train.trial_timeout, self.deadline - time.monotonic()) if t != math.inf and t is not None]
        budget = TrialBudget(min(limits) if limits else None, available_memory(device))
        # the epochs a candidate runs at least unless a pruner stops it: early stopping needs patience
        return budget.refusal(estimate, min(train.epochs, train.patience + 1))


# What config.yaml records beside the settings (not settings: a resume does not take them)
RUN_FACTS = ("space_source", "space_spec", "node_features")


def run_facts(space: SearchSpace, evaluator: Evaluator) -> dict:
    info = evaluator.info
    return {"space_source": space.source, "space_spec": space_content(space),
            "node_features": info.node_features if info is not None else None}


def space_content(space: SearchSpace) -> dict:
    """The space as config.yaml records it: its validated content, not its path."""
    return space.spec.model_dump(mode="json", by_alias=True)


def _at(config: dict, path: str) -> Any:
    """The value at a dotted path of a nested dict (None where it is absent)."""
    for key in path.split("."):
        config = config.get(key) if isinstance(config, dict) else None
    return config


def _changed_paths(old: object, new: object, prefix: str = "") -> list[str]:
    """Dotted paths at which two JSON-like values differ (``global.dropout``)."""
    if isinstance(old, dict) and isinstance(new, dict):
        return [p for key in sorted(set(old) | set(new), key=str)
                for p in _changed_paths(old.get(key), new.get(key), f"{prefix}{key}.")]
    return [] if old == new else [prefix.rstrip(".") or "(the whole space)"]


def available_cores() -> int:
    """The cores this process may run on (its affinity: a container's or taskset's share)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def run_worker(config_json: str, index: int) -> None:
    """Entry point of one local worker process: the same loop on the shared study, with its
    own sampler seed. It never sweeps RUNNING trials: they may be other workers'."""
    import optuna as _optuna

    config = SearchConfig.model_validate_json(config_json)
    lease = become_worker(Path(config.run_dir))  # noqa: F841  (held until this process ends)
    _optuna.logging.set_verbosity(_optuna.logging.WARNING)
    search = Search(config, resume=True, claim=False)  # the driver holds the run directory
    torch.set_num_threads(config.threads)
    evaluator = search.prepare()  # the driver prepared it: this reads the disk cache
    _, objectives = search.objectives(evaluator)
    study = search.store.load_study(config.study_name)
    search.attach(study, objectives, config.seed + 1000 * (index + 1))
    search.loop(study, evaluator, objectives, worker=index)
