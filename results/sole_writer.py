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
the study once, then keeps its copy up to date from its own writes. A running trial's
parameters and attributes go to the database together, in one transaction of one insert and
one upsert (each of Optuna's writes reads the trial back and compiles its statement, about
0.7 ms apiece, ten a trial), at the next commit point: before the sampler snapshot
(:meth:`flush`, called by ``RunStore.save_sampler``), with the trial's values and state when
it ends (one transaction again), and before any other write. So a finished trial is in the
database whole before the next proposal, a kill -9 loses nothing finished, and what
optuna-dashboard reads is unchanged; a trial killed while running may lack what it wrote
since the snapshot, as it lacks its result, and is retried on --resume from its parameters. It must not be used
where anything else writes the study (several workers, Ray, a shared PostgreSQL URL).
"""
from __future__ import annotations

import copy
import functools
import json
from collections.abc import Callable, Container, Sequence
from datetime import datetime, timezone
from typing import Any, Optional

import sqlalchemy
from optuna import distributions
from optuna.storages import RDBStorage
from optuna.storages._cached_storage import _CachedStorage
from optuna.storages._rdb import models
from optuna.storages._rdb.storage import _create_scoped_session
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy.dialects.sqlite import insert as sqlite_insert


class SoleWriterStorage(_CachedStorage):
    """``_CachedStorage`` whose copy of each study is read from the database once (on the
    first ``get_all_trials``) and afterwards only updated by this process's writes."""

    def __init__(self, backend: RDBStorage) -> None:
        super().__init__(backend)
        self._loaded: set[int] = set()  # studies read from the database
        self._ordered: dict[int, list[FrozenTrial]] = {}  # study -> its trials by number (the copy's)
        self._unfinished: dict[int, set[int]] = {}  # study -> numbers of its trials not finished
        # running trials' writes, not yet committed: parameter rows, and attribute values
        # by (model, trial id, key), the last write of a key winning as in the database
        self._pending_params: list[dict[str, Any]] = []
        self._pending_attrs: dict[tuple[Any, int, str], str] = {}

    # --- reads -----------------------------------------------------------------------------
    def _read_trials_from_remote_storage(self, study_id: int) -> None:
        if study_id not in self._loaded:
            super()._read_trials_from_remote_storage(study_id)
            self._loaded.add(study_id)
            # each parameter's distribution as the study first stored it: what a new trial's
            # parameter is checked against (the database's own check read it back per write)
            known = self._studies[study_id].param_distribution
            for trial in self._studies[study_id].trials.values():
                for name, dist in trial.distributions.items():
                    known.setdefault(name, dist)

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
        if cached is not None:
            return _copy(cached)
        self.flush()
        return self._backend.get_trial(trial_id)

    # --- writes: to the copy, and to the database now or at the next commit point ----------
    def flush(self, then: Optional[Callable[[sqlalchemy.orm.Session], None]] = None) -> None:
        """Commit the running trials' pending writes, and ``then``'s, in one transaction, as
        one insert of the parameters and one upsert per kind of attribute. Each of Optuna's
        own writes first reads the trial back and compiles its statements: about a
        millisecond apiece, ten a trial; their checks were made here already, on the copy."""
        with self._lock:
            params, attrs = self._pending_params, self._pending_attrs
            self._pending_params, self._pending_attrs = [], {}
        if not params and not attrs and then is None:
            return
        with _create_scoped_session(self._backend.scoped_session) as session:
            if params:
                session.execute(sqlalchemy.insert(models.TrialParamModel), params)
            for model in (models.TrialUserAttributeModel, models.TrialSystemAttributeModel):
                rows = [{"trial_id": t, "key": k, "value_json": v} for (m, t, k), v in attrs.items() if m is model]
                if rows:
                    _upsert(session, model, rows, ("trial_id", "key"), "value_json")
            if then is not None:
                then(session)

    def _running(self, trial_id: int) -> bool:
        """Whether the trial is a running one of the copy, whose writes may wait for the next
        commit point (others are written now: a trial this process did not start, or one
        whose state the database must check)."""
        trial = self._cached(trial_id)
        return trial is not None and trial.state == TrialState.RUNNING

    def create_new_trial(self, study_id: int, template_trial: Optional[FrozenTrial] = None) -> int:
        """A new running trial is one insert, numbered from the copy (which holds every
        trial of the study). Optuna's ORM path (locking the study, a flush, counting the
        earlier trials in the database, then a commit) took about 2 ms a trial. A trial from
        a template (an enqueued one) keeps that path: it writes its template's contents too."""
        self.flush()
        if study_id not in self._loaded:  # the copy must hold every earlier trial first
            self.get_all_trials(study_id, deepcopy=False)
        if template_trial is not None:
            return super().create_new_trial(study_id, template_trial)
        number = len(self._studies[study_id].trials)
        start, start_utc = _now()
        with _create_scoped_session(self._backend.scoped_session) as session:
            created = session.execute(sqlalchemy.insert(models.TrialModel.__table__).values(
                study_id=study_id, number=number, state=TrialState.RUNNING, datetime_start=start_utc))
            trial_id = created.inserted_primary_key[0]
        trial = FrozenTrial(number=number, state=TrialState.RUNNING, value=None, values=None, datetime_start=start,
                            datetime_complete=None, params={}, distributions={}, user_attrs={}, system_attrs={},
                            intermediate_values={}, trial_id=trial_id)
        with self._lock:
            self._add_trials_to_cache(study_id, [trial])
        return trial_id

    def set_trial_param(self, trial_id: int, param_name: str, param_value_internal: float,
                        distribution: distributions.BaseDistribution) -> None:
        where = self._trial_id_to_study_id_and_number.get(trial_id)
        known = self._studies[where[0]].param_distribution.get(param_name) if where else None
        if known is not None:  # the database's own check, raised here rather than at the commit
            distributions.check_distribution_compatibility(known, distribution)
        if self._running(trial_id):
            with self._lock:
                self._pending_params.append({
                    "trial_id": trial_id, "param_name": param_name, "param_value": param_value_internal,
                    "distribution_json": distributions.distribution_to_json(distribution)})
                if where and known is None:
                    self._studies[where[0]].param_distribution[param_name] = distribution
        else:
            self.flush()
            super().set_trial_param(trial_id, param_name, param_value_internal, distribution)
        self._update(trial_id, lambda t: (
            t._params.__setitem__(param_name, distribution.to_external_repr(param_value_internal)),
            t._distributions.__setitem__(param_name, distribution)))

    def set_trial_state_values(self, trial_id: int, state: TrialState,
                               values: Optional[Sequence[float]] = None) -> bool:
        if state.is_finished() and self._running(trial_id):
            self._finish(trial_id, state, values)
            return True
        self.flush()
        changed = super().set_trial_state_values(trial_id, state, values)
        if changed:  # the database set the start or completion time: take the trial as it is there
            self._replace(self._backend.get_trial(trial_id))
        return changed

    def _finish(self, trial_id: int, state: TrialState, values: Optional[Sequence[float]]) -> None:
        """A running trial of the copy ends: its pending writes, its values and its state in
        one transaction, the rows Optuna's ``RDBStorage`` writes (``set_trial_state_values``
        locks and reads the trial, then writes each value through the ORM, and the copy then
        read it all back: about 4 ms a trial)."""
        complete, complete_utc = _now()
        values = None if values is None else [float(v) for v in values]

        def end(session: sqlalchemy.orm.Session) -> None:
            if values is not None:
                rows = [{"trial_id": trial_id, "objective": objective, "value": stored, "value_type": kind}
                        for objective, (stored, kind) in enumerate(map(models.TrialValueModel.value_to_stored_repr,
                                                                       values))]
                _upsert(session, models.TrialValueModel, rows, ("trial_id", "objective"), "value", "value_type")
            ended = session.execute(
                sqlalchemy.update(models.TrialModel)
                .where(models.TrialModel.trial_id == trial_id, models.TrialModel.state == TrialState.RUNNING)
                .values({models.TrialModel.state: state, models.TrialModel._datetime_complete_utc: complete_utc})
                .execution_options(synchronize_session=False))
            if ended.rowcount != 1:
                raise RuntimeError(f"trial {trial_id} is not running in the database, as this process holds it: "
                                   "another process writes this study, which SoleWriterStorage must not be used for")

        self.flush(then=end)

        def ended_copy(trial: FrozenTrial) -> None:  # as a read from the database would give it
            trial.state, trial.datetime_complete = state, complete
            if values is not None:
                trial._values = values

        self._update(trial_id, ended_copy)

    def set_trial_intermediate_value(self, trial_id: int, step: int, intermediate_value: float) -> None:
        self.flush()
        super().set_trial_intermediate_value(trial_id, step, intermediate_value)
        self._update(trial_id, lambda t: t.intermediate_values.__setitem__(step, intermediate_value))

    def set_trial_user_attr(self, trial_id: int, key: str, value: Any) -> None:
        value_json = json.dumps(value)  # a value JSON cannot hold fails here, at the call
        if not self._defer_attr(models.TrialUserAttributeModel, trial_id, key, value_json):
            super().set_trial_user_attr(trial_id, key, value)
        stored = json.loads(value_json)  # as a read from the database returns it
        self._update(trial_id, lambda t: t._user_attrs.__setitem__(key, stored))

    def set_trial_system_attr(self, trial_id: int, key: str, value: Any) -> None:
        value_json = json.dumps(value)
        if not self._defer_attr(models.TrialSystemAttributeModel, trial_id, key, value_json):
            super().set_trial_system_attr(trial_id, key, value)
        stored = json.loads(value_json)
        self._update(trial_id, lambda t: t._system_attrs.__setitem__(key, stored))

    def _defer_attr(self, model, trial_id: int, key: str, value_json: str) -> bool:
        """Keep a running trial's attribute for the next commit point; otherwise commit what
        is pending, so that the caller's own write comes after it, and return False."""
        if self._running(trial_id):
            with self._lock:
                self._pending_attrs[(model, trial_id, key)] = value_json
            return True
        self.flush()
        return False

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


def _now() -> tuple[datetime, datetime]:
    """Now, as a trial's times are read back from Optuna's database (naive local time) and as
    they are stored there (naive UTC): the copy holds the first, the rows get the second."""
    local = datetime.now()
    return local, local.astimezone(timezone.utc).replace(tzinfo=None)


def _upsert(session: sqlalchemy.orm.Session, model, rows: list[dict[str, Any]], keys: tuple[str, ...],
            *columns: str) -> None:
    """Insert ``rows``, or where a row with the same ``keys`` (column names) exists, set its
    ``columns``: one statement, compiled once, executed for all the rows (an executemany).
    A statement holding the rows' values (``.values(rows)``) was compiled anew at each call:
    about 1.8 ms apiece, four a trial."""
    session.execute(_upsert_statement(model, keys, columns), rows)


@functools.lru_cache(maxsize=None)
def _upsert_statement(model, keys: tuple[str, ...], columns: tuple[str, ...]):
    upsert = sqlite_insert(model)
    return upsert.on_conflict_do_update(index_elements=list(keys),
                                        set_={c: upsert.excluded[c] for c in columns})


def _copy(trial: FrozenTrial) -> FrozenTrial:
    """A copy whose dictionaries can change without changing ``trial``'s (values are kept
    as they are: nothing writes into an attribute's value in place)."""
    out = copy.copy(trial)
    for attr in ("_params", "_distributions", "_user_attrs", "_system_attrs", "intermediate_values"):
        setattr(out, attr, dict(getattr(trial, attr)))
    return out
