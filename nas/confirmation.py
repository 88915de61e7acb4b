"""The confirmation stage (issue 44: the run as a pipeline): after the budget, the search's top
trials by validation, the reference designs it ran and the one-choice neighbours of its best
(:mod:`nas.refine`) train again, with more seeds or on folds, so that the selection rests on a
mean rather than on one seed's noise. Validation selects; test figures are recorded to be
reported. Its trainings go through the trial runner's port."""
from __future__ import annotations

import logging
import time
from typing import Any, Optional

import optuna

from graphnas.evaluators.datasets import DatasetBundle
from graphnas.evaluators.evaluator import Evaluator
from graphnas.evaluators.splits import Splits, confirmation_folds
from graphnas.nas.refine import NEIGHBOUR_ATTR, neighbour_params
from graphnas.nas.runner import Observer, TrialRunner
from graphnas.results.objectives import Objective
from graphnas.results.store import CONFIRM_ATTR, RunStore, ranked_trials
from graphnas.search_spaces import Architecture

log = logging.getLogger(__name__)


class Confirmation:
    """The confirmation of one search: ``config`` (its ``SearchConfig``), its ``store`` and
    its ``runner`` (whose space, deadline and trials it uses)."""

    def __init__(self, config, store: RunStore, runner: TrialRunner) -> None:
        self.config, self.store, self.runner = config, store, runner

    def run(self, study: optuna.Study, evaluator: Evaluator, objectives: list[Objective],
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
            if time.monotonic() + needs > self.runner.deadline:
                log.warning("confirmation stopped at %d of %d finalists: the search's --timeout %g s leaves too "
                            "little time for trial %d (about %.0f s)", n, len(finalists), self.config.timeout,
                            row.trial, needs)
                break
            if observer:
                self.runner.observe(study, observer, "RUNNING", f"confirming trial {row.trial} ({n + 1}/{len(finalists)})")
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
        proposals = neighbour_params(self.runner.space, trials[base], trials, limit - len(added),
                                     self.config.seed, metric.direction == "maximize")
        for n, params in enumerate(proposals):
            if observer:
                self.runner.observe(study, observer, "RUNNING", f"neighbour {n + 1}/{len(proposals)} of trial {base}")
            study.enqueue_trial(params, user_attrs={NEIGHBOUR_ATTR: base})
            self.runner.one_trial(study, study.ask(), evaluator, objectives)

    @staticmethod
    def check(cfg, bundle: DatasetBundle) -> None:
        """The confirmation settings against the data, before the first trial."""
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
