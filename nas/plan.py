"""The plan (issue 44: the run as a pipeline): every check of a search's settings against what
its strategy, evaluator, space and data declared, made before any work, each failure one line
naming the option; and the reference designs a fresh run queues first."""
from __future__ import annotations

import optuna

from graphnas.evaluators import get_metric
from graphnas.evaluators.datasets import DatasetBundle, dataset_task, default_space, resolve_task
from graphnas.evaluators.training import check_device, check_sampled_attention, trains_sampled
from graphnas.nas.confirmation import Confirmation
from graphnas.nas.knowledge import replay_count
from graphnas.nas.pruners import AUTO as AUTO_PRUNER, MetricHalvingRule
from graphnas.nas.strategies import STRATEGIES
from graphnas.results.objectives import parse_objectives
from graphnas.results.store import JOURNAL_STORAGE, check_storage_url
from graphnas.search_spaces import SearchSpace
from graphnas.search_spaces.registry import Entry
from graphnas.search_spaces.zoo import ZooEntry, zoo_entries, zoo_entry


class Plan:
    """The checks of one search: its ``config`` (a ``SearchConfig``), the registry entries of its
    ``strategy`` and ``evaluator_entry``, and its ``space`` (the strategy's, once it has one)."""

    def __init__(self, config, space: SearchSpace, strategy: Entry, evaluator_entry: Entry) -> None:
        self.config, self.space, self.strategy, self.evaluator_entry = config, space, strategy, evaluator_entry
        self.trains = evaluator_entry.can("trains")  # else a table answers: no seeds, no model
        self.differentiable = strategy.can("differentiable")


    def check_strategy(self) -> None:
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


    def check_names(self) -> None:
        """Objectives, metric and device, which need no dataset: checked before it loads."""
        parse_objectives(self.config.objectives, "maximize")
        if self.config.train.metric:
            get_metric(self.config.train.metric)
        check_device(self.config.train.device)


    def references(self) -> list[ZooEntry]:
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


    def enqueue_references(self, study: optuna.Study, references: list[ZooEntry]) -> None:
        """Queue the reference designs as the first trials of a new study: real trials,
        counted in the budget, selected and plotted like any other, and seen by the sampler."""
        for entry in references[:self.config.trials]:  # beyond the budget they would wait forever
            study.enqueue_trial(self.space.trial_params(entry.architecture_for(self.config.dataset)),
                                user_attrs={"reference": entry.ref})


    def check_evaluator(self) -> None:
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


    def check_fits(self, bundle: DatasetBundle) -> None:
        """Refuse, before the first trial, a space whose choices cannot train on this data."""
        cfg, spec = self.config, self.space.spec
        Confirmation.check(self.config, bundle)
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

DEFAULT_THREADS = 1  # torch threads per trial unless --threads says otherwise (SearchConfig.threads)


def settled(config):
    """A ``SearchConfig`` with its defaults decided (the task of a file or class, its default
    space, the study name, threads, the storage of several workers, ``--pruner auto``), and its
    task; what needs no run directory is checked first, each failure one line."""
    from graphnas.evaluators.evaluator import EVALUATORS

    # the task picks the default space and the references: a file or class is loaded once
    # here to show it (issue 42), and the run records it (workers and resumes need no load)
    task = resolve_task(config.dataset, config.task, config.data_root, config.cache_dir, config.dataset_args)
    if task is not None and config.task is None and dataset_task(config.dataset) is None:
        config = config.model_copy(update={"task": task.task})
    if config.space is None:
        config = config.model_copy(update={"space": default_space(config.dataset, config.task)})
    if config.protocol == "errica":
        raise ValueError("protocol errica runs one search per outer fold: use nas.assessment.assess")
    if config.run_dir is None:  # the default name, stamped once
        config = config.model_copy(update={"run_dir": str(config.resolved_run_dir())})
    if config.study_name is None:
        config = config.model_copy(update={"study_name": config.resolved_run_dir().resolve().name})
    if config.threads is None:
        config = config.model_copy(update={"threads": DEFAULT_THREADS})
    if config.workers > 1 and config.storage is None:  # SQLite is for one writing process
        config = config.model_copy(update={"storage": JOURNAL_STORAGE})
    if config.workers > 1 and (config.storage or "").startswith("sqlite"):
        raise ValueError("--workers > 1 cannot share an SQLite storage (one writing process only): leave "
                         "--storage unset for a journal file, or give a PostgreSQL/MySQL URL")
    check_storage_url(config.storage, "--storage")
    check_storage_url(config.knowledge, "--knowledge")
    strategy = STRATEGIES.entry(config.strategy)  # raises, listing the strategies
    evaluator = EVALUATORS.entry(config.evaluator)  # raises, listing the evaluators
    if config.pruner == "auto":
        trains_each = evaluator.can("trains") and not strategy.can("differentiable")
        config = config.model_copy(update={"pruner": auto_pruner(config, trains_each)})
    return config, task


def auto_pruner(config, trains_each: bool) -> str:
    """``--pruner auto``: multi-fidelity (successive halving over epochs) where each candidate
    trains long enough for its rungs to rank anything, at least two rungs below the last
    epoch (10 and 30 epochs); none for a table or a supernet (it trains once) and for runs
    of a few epochs."""
    rule = MetricHalvingRule(maximize=True)
    return AUTO_PRUNER if trains_each and config.train.epochs >= rule.min_epochs * rule.reduction_factor else "none"
