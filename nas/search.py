"""The black-box search loop: Optuna proposes, the evaluator trains, the store records.

Uses Optuna's ask-and-tell interface so that one loop handles failures (recorded as FAIL
with their error, the search goes on), repeated proposals (an architecture already
trained in this run is not trained again) and progress reporting.
"""
from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Literal, Optional

import optuna
import torch
from pydantic import BaseModel, ConfigDict, Field

from graphnas.evaluators import Metric, TrainConfig, get_metric
from graphnas.evaluators.datasets import dataset_slug, default_space
from graphnas.evaluators.evaluator import EVALUATORS, Evaluator, EvaluatorSettings
from graphnas.nas.backends import BACKENDS, become_worker
from graphnas.nas.darts import DartsConfig
from graphnas.nas.pruners import PRUNERS
from graphnas.nas.knowledge import KnowledgeStore, Transfer, replay_count
# Progress and count_finished are the loop's, read here by the CLI and the tests
from graphnas.nas.runner import Observer, Progress, TrialRunner, count_finished  # noqa: F401
from graphnas.nas.run_directory import IDENTITY_ATTR, RunDirectory, space_content
from graphnas.nas.confirmation import Confirmation
from graphnas.nas.plan import Plan, settled
from graphnas.nas.knowledge_link import KnowledgeLink
from graphnas.nas.strategies import STRATEGIES
from graphnas.nas.differentiable import SupernetRunner  # (and registers darts, gdas, darts+tpe)
from graphnas.results.objectives import Objective, parse_objectives
from graphnas.results.store import RunStore
from graphnas.search_spaces import SearchSpace
from graphnas.settings_help import about



log = logging.getLogger(__name__)


class SearchConfig(BaseModel):
    """Everything a search run is, written to ``config.yaml``."""

    model_config = ConfigDict(extra="forbid")

    # None: the default space of the dataset's task (evaluators.datasets.default_space)
    space: Optional[str] = Field(default=None, description=about("space"))
    # registered name, .pt file, or dotted path of a dataset class
    dataset: str = Field(default="synthetic", description=about("dataset"))
    dataset_args: dict = Field(default_factory=dict)  # keyword arguments of a dataset class
    # None: what a registered dataset declared, else what a file's or class's data shows (one
    # Data: node task; a list: graph task; integer labels: classification), recorded here
    task: Optional[str] = Field(default=None, description=about("task"))
    # the predictor, from the knowledge store (nas.strategies.Auto)
    strategy: str = Field(default="auto", description=about("strategy"))
    objectives: str = Field(default="metric,flops", description=about("objectives"))
    trials: int = Field(default=20, ge=1, description=about("trials"))
    timeout: Optional[float] = Field(default=None, gt=0, description=about("timeout"))
    seed: int = Field(default=0, description=about("seed"))
    run_dir: Optional[str] = Field(default=None, description=about("run_dir"))
    storage: Optional[str] = Field(default=None, description=about("storage"))
    study_name: Optional[str] = None  # None: the run directory's name
    data_root: Optional[str] = Field(default=None, description=about("data_root"))
    cache_dir: Optional[str] = Field(default=None, description=about("cache_dir"))
    workers: int = Field(default=1, ge=1, description=about("workers"))  # local processes sharing the study
    # torch threads of each trial; None: 1 (benchmarks/threads.py: beside another process a
    # trial with every core's thread ran many times slower than with one; alone it gained
    # little; --workers N uses more cores). Part of the numbers: a run keeps it.
    threads: Optional[int] = Field(default=None, ge=1, description=about("threads"))
    # early stopping of hopeless trials (see nas.pruners for multi-objective searches); auto:
    # successive halving over epochs when candidates train (multi-fidelity), else none
    pruner: str = Field(default="auto", description=about("pruner"))
    # evaluators.evaluator.EVALUATORS: train each candidate, or a table (nas-bench-graph)
    evaluator: str = Field(default="train", description=about("evaluator"))
    # nas.backends.BACKENDS: this process and its workers, or Ray Tune
    backend: str = Field(default="local", description=about("backend"))
    # None: start a local Ray; "auto" or ray://HOST:PORT: join a cluster
    ray_address: Optional[str] = Field(default=None, description=about("ray_address"))
    ray_cpus: Optional[int] = Field(default=None, ge=1)  # CPUs of a local Ray instance (None: all)
    cpus_per_trial: float = Field(default=1.0, gt=0, description=about("cpus_per_trial"))
    gpus_per_trial: float = Field(default=0.0, ge=0, description=about("gpus_per_trial"))
    # Zoo designs run first as trials tagged ``reference`` (each must be in the space);
    # None: every zoo entry of the dataset's task that the space holds.
    references: Optional[list[str]] = Field(default=None, description=about("references"))
    # With train.folds > 1: xu, every trial is a k-fold cross-validation (Xu et al. 2019); errica,
    # a separate search inside every outer fold (Errica et al. 2020; nas.assessment.assess).
    protocol: Literal["xu", "errica"] = Field(default="xu", description=about("protocol"))
    # After the budget, the top `confirm` trials by validation (distinct architectures) train
    # again with `confirm_seeds` more seeds, and the best architecture is the one of best mean
    # validation over its seeds. None: 3 for budgets of at least 20 trials, else 0.
    confirm: Optional[int] = Field(default=None, ge=0, description=about("confirm"))
    confirm_seeds: int = Field(default=2, ge=1)
    # Graph tasks searched on a holdout split: confirm on K folds of the graphs the search
    # selects with (evaluators.splits.confirmation_folds) instead of on more seeds; and add
    # up to `confirm_neighbours` unseen one-choice neighbours of the best trial to the
    # finalists (nas.refine). 0: neither.
    confirm_folds: int = Field(default=0, ge=0, description=about("confirm_folds"))
    confirm_neighbours: int = Field(default=0, ge=0, description=about("confirm_neighbours"))
    # The knowledge store (an Optuna storage URL) a new search starts from, and where a finished
    # one is registered; None: the default store ($GRAPHNAS_KNOWLEDGE or the cache); "none": off.
    knowledge: Optional[str] = Field(default=None, description=about("knowledge"))
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


class Search:
    """One search run over ``config``; ``run()`` executes or resumes it."""

    def __init__(self, config: SearchConfig, resume: bool = False, claim: bool = True) -> None:
        config, self.task = settled(config)  # defaults decided, storage and names checked
        self.config, self.run_dir = config, config.resolved_run_dir()
        self.store = RunStore(self.run_dir, config.storage)
        self.strategy = STRATEGIES.entry(config.strategy)
        self.evaluator_entry = EVALUATORS.entry(config.evaluator)
        self.trains = self.evaluator_entry.can("trains")  # else a table answers: no seeds, no model
        self.differentiable = self.strategy.can("differentiable")
        backend = BACKENDS.entry(config.backend)  # raises, listing the backends
        self.backend = backend.factory(config)
        # another machine's search on the same shared database and run name: this one joins it
        self.directory = RunDirectory(self.store, config, resume, self.backend.sole_writer())
        if resume:
            self.directory.check_resume(SearchConfig().model_dump(mode="json"))
        elif self.directory.holds_a_run() and not self.joining:
            raise ValueError(f"{self.run_dir} already holds a run (study {config.study_name!r}); "
                             "continue it with --resume or choose another --run-dir")
        self.space = SearchSpace.load(config.space)
        if resume:
            self.directory.check_space_unchanged(self.space)
        if self.joining:  # before any work, as a resume's checks
            self.directory.check_joined_identity(self.store.load_study(config.study_name), self.space)
        self.plan = Plan(config, self.space, self.strategy, self.evaluator_entry)
        self.plan.check_evaluator()
        self.space = self.plan.space = self.strategy.factory.space_of(self.space, self.run_dir, resume)
        self.plan.check_strategy()
        PRUNERS.get(config.pruner)  # raises, listing the pruners
        backend.factory.check(backend, config, self.differentiable, self.trains)
        self.resume = resume
        self.plan.check_names()
        self.references = self.plan.references()
        self._prepared: Optional[Evaluator] = None
        self.deadline = math.inf  # run() sets it from --timeout
        # the trial loop's port, for the backends and the differentiable runner
        self.runner = TrialRunner(config, self.space, self.store, self.run_dir, self.backend.sole_writer(), self.trains)
        self.link = KnowledgeLink(config, self.strategy, self.evaluator_entry, self.run_dir)
        # the driving process holds the run directory until its run ends; its workers do not
        if claim:
            self.directory.claim()

    def prepare(self) -> Evaluator:
        """The run's evaluator with what it answers from (the dataset, or a table), prepared
        once per search (the CLI asks for it before its banner)."""
        if self._prepared is None:
            self._prepared = self.evaluator_entry.factory.prepare(self.config.evaluator_settings(), self.space)
        return self._prepared

    def run(self, observer: Optional[Observer] = None) -> optuna.Study:
        # --timeout bounds the whole search, confirmation included, from this moment
        self.deadline = time.monotonic() + self.config.timeout if self.config.timeout else math.inf
        self.runner.deadline = self.deadline
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
            self.plan.check_fits(evaluator.bundle)
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
                self.directory.joining = True
        if self.joining:
            study = self._join(objectives)
        study.set_user_attr("dataset", evaluator.name)  # what export needs to rebuild models
        if evaluator.info is not None:  # a tabular evaluator builds no model
            study.set_user_attr("data_info", asdict(evaluator.info))
        try:
            if self.differentiable:  # a runner of its own: supernets in this process (Backend.check)
                SupernetRunner(self.strategy.factory, cfg, self.space, self.store, self.runner,
                               self.narrow_space).run(study, evaluator, objectives, observer)
            if not self.differentiable or self.strategy.factory.then:  # a black box, or a second phase
                self.backend.run(self, study, evaluator, objectives, observer)
            Confirmation(self.config, self.store, self.runner).run(study, evaluator, objectives, observer)
        finally:
            self.store.write_outputs(study)
            self.release()  # before registering: the run is finished
        self.link.register(study)
        return study

    def _create(self, evaluator: Evaluator, metric: Metric, objectives: list[Objective]) -> optuna.Study:
        """A fresh run's study, with its references and what it takes from the knowledge store."""
        cfg = self.config
        fingerprint = self.link.fingerprint(evaluator)
        self.plan_transfer(evaluator)
        study = self.store.create_study(cfg.study_name, objectives, self.make_sampler(cfg.seed, len(objectives)),
                                        metric.name)
        study.set_user_attr(IDENTITY_ATTR, self.directory.shared_identity(self.space))
        study.pruner = PRUNERS.get(cfg.pruner)()
        if fingerprint is not None:
            study.set_user_attr("fingerprint", asdict(fingerprint))
        self.plan.enqueue_references(study, self.references)
        self.link.start_from(study, self.space, self.references)
        return study

    @property
    def knowledge(self) -> Optional[KnowledgeStore]:
        return self.link.store

    @property
    def transfer(self) -> Optional[Transfer]:
        """What the run took from the knowledge store (None: nothing)."""
        return self.link.transfer

    def plan_transfer(self, evaluator: Evaluator) -> Optional[Transfer]:
        """What a fresh run takes from the knowledge store (:meth:`KnowledgeLink.plan_transfer`)."""
        return self.link.plan_transfer(evaluator, self.space)

    def trial_sources(self, evaluator: Evaluator) -> dict[str, int]:
        """Where a fresh run's trials come from: references, knowledge replays, the strategy."""
        refs = min(len(self.references), self.config.trials)
        transfer = self.plan_transfer(evaluator)
        replays = replay_count(self.config.trials, self.config.trials - refs) if transfer is not None else 0
        return {"references": refs, "knowledge": replays, "strategy": self.config.trials - refs - replays}

    @property
    def joining(self) -> bool:
        return self.directory.joining

    def release(self) -> None:
        """Let another search open the run directory (``run`` does this as it ends)."""
        self.directory.release()

    def abandon(self) -> None:
        """Release the run directory of a search refused before it wrote anything, and remove
        what it wrote (:meth:`RunDirectory.abandon`)."""
        self.directory.abandon()

    def _join(self, objectives: list[Objective]) -> optuna.Study:
        """The study another machine's search created: the same settings, or a one-line refusal;
        then this search is one more worker on it (its own sampler seed, no sweep of trials
        that may be other machines')."""
        study = self.store.load_study(self.config.study_name)
        self.directory.check_joined_identity(study, self.space)  # again: after a creation race it is checked only now
        # a seed no other worker has: the trials so far and this process
        self.attach(study, objectives, self.config.seed + 1000 * (len(study.trials) + 1) + os.getpid() % 1000)
        return study

    def narrow_space(self, space: SearchSpace) -> None:
        """Go on over ``space`` (a differentiable search's second phase: its narrowed space)."""
        self.space = self.runner.space = space

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
        self.link.resume_transfer(study, self.space)
        study.sampler = self.make_sampler(seed, len(objectives))
        study.pruner = PRUNERS.get(self.config.pruner)()


# What config.yaml records beside the settings (not settings: a resume does not take them)
RUN_FACTS = ("space_source", "space_spec", "node_features")


def run_facts(space: SearchSpace, evaluator: Evaluator) -> dict:
    info = evaluator.info
    return {"space_source": space.source, "space_spec": space_content(space),
            "node_features": info.node_features if info is not None else None}


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
    search.runner.loop(study, evaluator, objectives, worker=index)
