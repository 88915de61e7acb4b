"""An Optuna storage for a study that one process alone writes: reads come from memory.

Optuna's ``_CachedStorage`` (what an ``RDBStorage`` is wrapped in) keeps finished trials in
memory but reads every unfinished trial, and any new one, back from the database on every
``get_all_trials``, because another process may have written them. A trial of a
tabular search calls it about five times (TPE's proposal, its search-space intersection,
the budget count, the strategy's finished-trial views), each a query that loads the
trial's parameters and attributes: about 25 ms per trial on the 2-core machine, more than
the 20 ms that the whole engine may take (issue 18).

A run directory's SQLite database is written by one process: the search that holds the
run directory's lock (``RunStore.claim``), with one local worker. For it this storage reads
the study once, then keeps its copy up to date from its own writes, which still go to the
database one by one, as before: crash-safety, resume and what optuna-dashboard reads are
unchanged. It must not be used where anything else writes the study (several workers, Ray,
a shared PostgreSQL URL).
"""
from __future__ import annotations

import copy
import json
from collections.abc import Container, Sequence
from typing import Any, Optional

from optuna import distributions
from optuna.storages import RDBStorage
from optuna.storages._cached_storage import _CachedStorage
from optuna.trial import FrozenTrial, TrialState


class SoleWriterStorage(_CachedStorage):
    """``_CachedStorage`` whose copy of each study is read from the database once (on the
    first ``get_all_trials``) and afterwards only updated by this process's writes."""

    def __init__(self, backend: RDBStorage) -> None:
        super().__init__(backend)
        self._loaded: set[int] = set()  # studies read from the database
        self._ordered: dict[int, list[FrozenTrial]] = {}  # study -> its trials by number (the copy's)
        self._unfinished: dict[int, set[int]] = {}  # study -> numbers of its trials not finished

    # --- reads -----------------------------------------------------------------------------
    def _read_trials_from_remote_storage(self, study_id: int) -> None:
        if study_id not in self._loaded:
            super()._read_trials_from_remote_storage(study_id)
            self._loaded.add(study_id)

    def get_all_trials(self, study_id: int, deepcopy: bool = True,
                       states: Optional[Container[TrialState]] = None) -> list[FrozenTrial]:
        """The copy's trials in number order, without sorting them anew on every call
        (``_CachedStorage`` sorts all of them: 2 ms a call at 10,000 trials, five calls a trial)."""
        self._read_trials_from_remote_storage(study_id)
        with self._lock:
            trials = self._in_order(study_id)
            if states is not None and not any(state.is_finished() for state in states):
                # Optuna asks for the WAITING trials before every trial: look among the few unfinished
                trials = [trials[n] for n in sorted(self._unfinished[study_id]) if trials[n].state in states]
            elif states is not None:
                trials = [t for t in trials if t.state in states]
            return copy.deepcopy(trials) if deepcopy else list(trials)

    def _in_order(self, study_id: int) -> list[FrozenTrial]:
        by_number = self._studies[study_id].trials
        ordered = self._ordered.get(study_id)
        if ordered is not None and len(by_number) == len(ordered) + 1 and len(ordered) in by_number:
            ordered.append(by_number[len(ordered)])  # the trial just created: numbers are 0, 1, ...
            if not ordered[-1].state.is_finished():
                self._unfinished[study_id].add(ordered[-1].number)
        elif ordered is None or len(ordered) != len(by_number):  # the first read
            ordered = self._ordered[study_id] = [by_number[n] for n in sorted(by_number)]
            self._unfinished[study_id] = {t.number for t in ordered if not t.state.is_finished()}
        return ordered

    def get_trial(self, trial_id: int) -> FrozenTrial:
        """A copy, as a read from the database would be: ``optuna.Trial`` keeps the trial it
        reads at its start and writes its own suggestions and attributes into it."""
        with self._lock:
            cached = self._cached(trial_id)
        return _copy(cached) if cached is not None else self._backend.get_trial(trial_id)

    # --- writes: to the database, then to the copy ------------------------------------------
    def create_new_trial(self, study_id: int, template_trial: Optional[FrozenTrial] = None) -> int:
        if study_id not in self._loaded:  # the copy must hold every earlier trial first
            self.get_all_trials(study_id, deepcopy=False)
        return super().create_new_trial(study_id, template_trial)

    def set_trial_param(self, trial_id: int, param_name: str, param_value_internal: float,
                        distribution: distributions.BaseDistribution) -> None:
        super().set_trial_param(trial_id, param_name, param_value_internal, distribution)
        self._update(trial_id, lambda t: (
            t._params.__setitem__(param_name, distribution.to_external_repr(param_value_internal)),
            t._distributions.__setitem__(param_name, distribution)))

    def set_trial_state_values(self, trial_id: int, state: TrialState,
                               values: Optional[Sequence[float]] = None) -> bool:
        changed = super().set_trial_state_values(trial_id, state, values)
        if changed:  # the database set the start or completion time: take the trial as it is there
            self._replace(self._backend.get_trial(trial_id))
        return changed

    def set_trial_intermediate_value(self, trial_id: int, step: int, intermediate_value: float) -> None:
        super().set_trial_intermediate_value(trial_id, step, intermediate_value)
        self._update(trial_id, lambda t: t.intermediate_values.__setitem__(step, intermediate_value))

    def set_trial_user_attr(self, trial_id: int, key: str, value: Any) -> None:
        super().set_trial_user_attr(trial_id, key, value)
        stored = json.loads(json.dumps(value))  # as a read from the database returns it
        self._update(trial_id, lambda t: t._user_attrs.__setitem__(key, stored))

    def set_trial_system_attr(self, trial_id: int, key: str, value: Any) -> None:
        super().set_trial_system_attr(trial_id, key, value)
        stored = json.loads(json.dumps(value))
        self._update(trial_id, lambda t: t._system_attrs.__setitem__(key, stored))

    # --- the copy -----------------------------------------------------------------------------
    def _cached(self, trial_id: int) -> Optional[FrozenTrial]:
        where = self._trial_id_to_study_id_and_number.get(trial_id)
        if where is None or where[0] not in self._loaded:
            return None
        return self._studies[where[0]].trials.get(where[1])

    def _update(self, trial_id: int, change) -> None:
        """Copy on write: a trial handed out earlier (a list from ``get_all_trials``) stays
        as it was, as it would have with a read from the database."""
        with self._lock:
            trial = self._cached(trial_id)
            if trial is None:
                return
            trial = _copy(trial)
            change(trial)
            study_id, number = self._trial_id_to_study_id_and_number[trial_id]
            self._store(study_id, number, trial)

    def _store(self, study_id: int, number: int, trial: FrozenTrial) -> None:
        self._studies[study_id].trials[number] = trial
        ordered = self._ordered.get(study_id)
        if ordered is not None and number < len(ordered) and ordered[number].number == number:
            ordered[number] = trial
            if trial.state.is_finished():
                self._unfinished[study_id].discard(number)
            else:
                self._unfinished[study_id].add(number)
        else:
            self._ordered.pop(study_id, None)  # rebuilt on the next read

    def _replace(self, trial: FrozenTrial) -> None:
        with self._lock:
            where = self._trial_id_to_study_id_and_number.get(trial._trial_id)
            if where is not None and where[0] in self._loaded:
                self._store(where[0], where[1], trial)


def _copy(trial: FrozenTrial) -> FrozenTrial:
    """A copy whose dictionaries can change without changing ``trial``'s (values are kept
    as they are: nothing writes into an attribute's value in place)."""
    out = copy.copy(trial)
    for attr in ("_params", "_distributions", "_user_attrs", "_system_attrs", "intermediate_values"):
        setattr(out, attr, dict(getattr(trial, attr)))
    return out
