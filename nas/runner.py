"""The trial runner: ask -> evaluate -> tell, until the budget is met (issue 44: the run as a
pipeline). Its public port is what the backends (this process, local workers, Ray) and the
differentiable strategies drive: :meth:`TrialRunner.loop`, :meth:`one_trial`, :meth:`observe`
and :meth:`reserve_trial`. A trial's outcome becomes its state through :mod:`nas.outcome`.
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import optuna
import torch
from filelock import FileLock
from optuna.trial import TrialState

from graphnas.evaluators import TrialPruned, TrialResult, get_metric
from graphnas.evaluators.estimate import GraphSizes, TrialBudget, available_memory, estimate_cost
from graphnas.evaluators.evaluator import Evaluator
from graphnas.evaluators.training import resolve_device
from graphnas.nas.outcome import OVER_BUDGET_ATTR, completed, failed, over_budget, pruned, tell
from graphnas.nas.pruners import CURVE_ATTR, METRIC_RULES
from graphnas.results.objectives import Objective
from graphnas.results.store import RunDirectoryError, RunStore, database_lock, shared_database
from graphnas.search_spaces import Architecture, SearchSpace

log = logging.getLogger(__name__)
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


class TrialRunner:
    """Runs a study's trials for one search: ``config`` (a ``SearchConfig``), ``space`` (the
    strategy's; a differentiable search narrows it), the run's ``store``; ``sole_writer``: no
    other process writes the study (the sampler is then snapshotted before each training);
    ``trains``: the evaluator trains each candidate (else a table answers). ``deadline``: the
    search's --timeout as a ``time.monotonic()`` time (``Search.run`` sets it)."""

    EXHAUSTIBLE = 20_000  # labellings enumerated at most to tell whether a space can run out

    def __init__(self, config, space: SearchSpace, store: RunStore, run_dir: Path, sole_writer: bool,
                 trains: bool) -> None:
        self.config, self.space, self.store, self.run_dir = config, space, store, run_dir
        self.sole_writer, self.trains = sole_writer, trains
        self.deadline = math.inf
        self._budget = BudgetCount()
        self._refused = 0  # proposals refused as over budget, never trained
        self._sizes: Optional[GraphSizes] = None  # the dataset's sizes for cost estimates (_over_budget)
        self._all_ids: Optional[set[str]] = None  # every architecture of a small space (_space_exhausted)
        self._ids_enumerated = False

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
            trial = self.reserve_trial(study)
            if trial is None:
                break
            state = self.one_trial(study, trial, evaluator, objectives, worker)
            if observer:
                self.observe(study, observer, state)

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

    def reserve_trial(self, study: optuna.Study) -> Optional[optuna.Trial]:
        """Ask for the next trial unless the budget is met. Counting and asking hold a lock
        file in the run directory, because without it two workers can both see one free
        slot and both ask (CI measured 7 trials for a budget of 6); Optuna's
        MaxTrialsCallback has the same check-then-ask gap. A single local process needs no
        lock: search.lock keeps every other search out of its run directory."""
        if shared_database(self.store.storage):  # workers on other machines: the database holds the lock
            with database_lock(self.store.storage, f"graphnas budget {self.config.study_name}"):
                return self._ask_within_budget(study)
        if self.sole_writer:
            return self._ask_within_budget(study)
        with FileLock(self.run_dir / "budget.lock"):
            return self._ask_within_budget(study)

    def _ask_within_budget(self, study: optuna.Study) -> Optional[optuna.Trial]:
        trials = study.get_trials(deepcopy=False)  # one read for both counts
        if self._budget.taken(trials) >= self.config.trials:
            return None
        return study.ask()

    def observe(self, study: optuna.Study, observer: Observer, state: str, note: str = "") -> None:
        outputs = self.store.write_outputs(study, plots=False)
        best = outputs.best["val_metric"] if outputs.best is not None else None
        observer(Progress(count_finished(study), self.config.budget, best, len(outputs.front), state, note))

    def one_trial(self, study: optuna.Study, trial: optuna.Trial, evaluator: Evaluator,
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
            if self.sole_writer:
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
            rule = METRIC_RULES[self.config.pruner](get_metric(self.config.train.metric or evaluator.metric).direction == "maximize")

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
