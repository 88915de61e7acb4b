"""A search's link to the knowledge store (issue 44: the run as a pipeline): what a fresh run
takes from the earlier searches closest to its data (its transfer: their best architectures
queued after the references, and a prior for the strategy), and the registration of the
finished run, so that later searches learn from it."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

import optuna

from graphnas.evaluators.evaluator import Evaluator
from graphnas.nas.knowledge import (KNOWLEDGE_ATTR, NAS_BENCH_GRAPH_FINGERPRINTS, Fingerprint, KnowledgeStore, Origin,
                                    Transfer, default_url, open_store, queue_transfer, register_run, replay_count,
                                    transfer_for)
from graphnas.search_spaces import SearchSpace
from graphnas.search_spaces.registry import Entry
from graphnas.search_spaces.zoo import ZooEntry

log = logging.getLogger(__name__)


class KnowledgeLink:
    """The knowledge store of one search's ``config`` (``--knowledge``), opened before any work
    (a black-box search only); ``transfer``: what the run took from it."""

    def __init__(self, config, strategy: Entry, evaluator_entry: Entry, run_dir: Path) -> None:
        self.config, self.strategy, self.evaluator_entry, self.run_dir = config, strategy, evaluator_entry, run_dir
        self.trains = evaluator_entry.can("trains")
        self.store: Optional[KnowledgeStore] = None if strategy.can("differentiable") else self._open()
        self.transfer: Optional[Transfer] = None
        self._planned = False  # plan_transfer ran (the CLI's banner asks before the run)

    def _open(self) -> KnowledgeStore:
        try:
            return open_store(self.config.knowledge)
        except Exception as err:  # any storage error: a path that cannot be written, a bad URL
            raise ValueError(f"--knowledge {self.config.knowledge or default_url()}: cannot open the knowledge "
                             f"store ({type(err).__name__}: {err}); give another URL or --knowledge none") from None

    def origin(self, space: SearchSpace) -> Origin:
        # a search answered by NAS-Bench-Graph's table of dataset X learns from the other tables
        bench = self.config.dataset if self.evaluator_entry.capabilities.get("space") == "nas_bench_graph" else None
        return Origin(self.store.url if self.store else None, space, bench)

    def fingerprint(self, evaluator: Evaluator) -> Optional[Fingerprint]:
        if not self.trains:  # a table: the benchmark's own fingerprint of its dataset, if it has one
            return NAS_BENCH_GRAPH_FINGERPRINTS.get(evaluator.name)
        return Fingerprint.of_bundle(evaluator.bundle)

    def plan_transfer(self, evaluator: Evaluator, space: SearchSpace) -> Optional[Transfer]:
        """What a fresh run takes from the knowledge store (once; the CLI's banner asks first):
        None for a strategy that does not transfer (random), without a store, or with no
        source close enough."""
        if self._planned:
            return self.transfer
        self._planned = True
        fingerprint = self.fingerprint(evaluator)
        if self.store is not None and self.strategy.can("transfers") and fingerprint is not None:
            self.transfer = transfer_for(fingerprint, self.origin(space), exclude_source=str(self.run_dir))
        return self.transfer

    def resume_transfer(self, study: optuna.Study, space: SearchSpace) -> None:
        """An opened run goes on with the sources it started from (read again when first needed)."""
        record = study.user_attrs.get(KNOWLEDGE_ATTR)
        self.transfer = Transfer(record, self.origin(space)) if record else None

    def start_from(self, study: optuna.Study, space: SearchSpace, references: list[ZooEntry]) -> None:
        """Queue the best architectures of the closest earlier searches after the references
        (queries like any other, none asked twice) and record which searches they are."""
        if self.transfer is None:
            return
        # the ids of the references as queued (trial_params may replace a moot value), as a
        # source's trials were recorded
        skip = [space.canonical_id(space.suggest(optuna.trial.FixedTrial(
            space.trial_params(e.architecture_for(self.config.dataset))))) for e in references]
        room = max(self.config.trials - len(references), 0)
        queue_transfer(study, self.transfer, replay_count(self.config.trials, room), skip)
        study.set_user_attr(KNOWLEDGE_ATTR, self.transfer.record)

    def register(self, study: optuna.Study) -> None:
        """Add the finished run to the knowledge store (trained runs only: a table is not news)."""
        if self.store is None or not self.trains or "fingerprint" not in study.user_attrs:
            return
        try:
            register_run(self.store, self.run_dir)
        except ValueError as err:  # no completed trial: nothing to learn from
            log.info("not registered in the knowledge store: %s", err)
        except Exception as err:  # a store gone away or locked must not fail a finished search
            log.warning("could not register the run in the knowledge store %s: %s", self.store.url, err)
