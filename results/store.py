"""The run store: an Optuna study (the record of every trial) plus the run directory.

Run directory::

    config.yaml      the fully resolved settings of the run
    study.db         Optuna storage (SQLite unless --storage gives another URL; journal.log,
                     a JournalStorage file, when several local workers share the study)
    trials.csv       one row per trial, choices flattened
    pareto.json      non-dominated trials (accuracy versus FLOPs at least)
    pareto.png       the front, dominated trials greyed
    best_arch.json   the architecture of the best trial
    summary.md       what a person reads first
    sampler.pkl      the sampler once the latest trial's proposal was drawn, with that
                     trial's number (single local process): a resumed seeded search
                     proposes what the uninterrupted one would have. Signed with the
                     user's key (results.signing): a file from elsewhere is never unpickled
    alphas.csv       differentiable strategies: softmax weight per epoch, layer, choice,
                     candidate and cost weight; alphas.png their trajectories
    darts.json       differentiable strategies: what was searched, fixed and learned
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional

import optuna
import numpy as np
import pandas as pd
import yaml
from filelock import FileLock, Timeout
from optuna.trial import FrozenTrial, TrialState

from graphnas.evaluators.result import TrialResult
from graphnas.results.objectives import Objective
from graphnas.results.pareto import ParetoFront, front_objectives
from graphnas.results import signing
from graphnas.search_spaces import Architecture, LayerArch
from graphnas.search_spaces.param_key import ParamKey

BASE_COLUMNS = ["trial", "state", "val_metric", "test_metric", "flops", "params", "latency_ms",
                "train_time_s", "arch_id", "arch_json", "peak_memory_mib"]


JOURNAL = "journal:///"
RUN_DIR_TOKEN = "{run_dir}"  # in a storage URL: the run directory, wherever it is now
DEFAULT_STORAGE = f"sqlite:///{RUN_DIR_TOKEN}/study.db"
JOURNAL_STORAGE = f"{JOURNAL}{RUN_DIR_TOKEN}/journal.log"  # the default of several local workers
# Study user attribute: {trial number: {"seeds": [...], "val": [...], "test": [...]}}, the
# trial's own figures first, then those of its confirmation seeds (Search.confirm). A study
# attribute because Optuna refuses new attributes on a finished trial.
CONFIRM_ATTR = "confirmations"
# Trial user attribute of a neighbour the confirmation added (nas.refine): the best trial's number
NEIGHBOUR_ATTR = "neighbour_of"
INTERRUPTED = "interrupted"  # user attribute of a trial failed because its process died, not by its candidate


def _first_line(err: BaseException) -> str:
    """An exception's message without SQLAlchemy's statement and background link."""
    inner = getattr(err, "orig", None) or err
    return (str(inner).strip().splitlines() or [type(inner).__name__])[0]


class _JournalLock:
    """The journal file's write lock as an OS file lock, which the OS drops when its process
    dies. Optuna's default (a symlink) outlives a worker killed while it writes, and every
    process then waits 30 s for its grace period before forcing it (issue 43: a search killed
    with kill -9 and resumed). Duck-types optuna's BaseJournalFileLock (acquire, release)."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._lock = FileLock(path)

    def __getstate__(self) -> dict:  # Ray pickles the storage to its workers: the path, not the OS lock
        return {"_path": self._path}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["_path"])

    def acquire(self) -> bool:
        self._lock.acquire()
        return True

    def release(self) -> None:
        self._lock.release()


def open_storage(url: str):
    """An Optuna storage for ``url``: ``journal:///PATH`` is a JournalStorage on a file (safe
    for several processes on one machine, unlike SQLite); any other URL is an RDB URL
    (``sqlite:///``, ``postgresql://``, ``mysql://``) and is passed to Optuna as is."""
    if url.startswith(JOURNAL):
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        path = Path(url[len(JOURNAL):])
        path.parent.mkdir(parents=True, exist_ok=True)
        try:  # the journal is replayed here: a damaged line fails now, in json's words alone
            return JournalStorage(JournalFileBackend(str(path), lock_obj=_JournalLock(f"{path}.flock")))
        except ValueError as err:
            raise ValueError(f"{path}: damaged, not an Optuna journal ({_first_line(err)})") from None
    if url.startswith("sqlite:///"):
        return _sqlite_storage(url)
    if shared_database(url):
        # machines started at once on a fresh database would race creating Optuna's tables
        # (one fails: type "studydirection" already exists): one at a time
        _check_driver(url)
        with database_lock(url, "graphnas schema"):
            return optuna.storages.RDBStorage(url)
    return url


def shared_database(url: str) -> bool:
    """A database server that searches on several machines share (PostgreSQL, MySQL)."""
    return url.startswith(("postgresql", "mysql"))


def _check_driver(url: str) -> None:
    """One line naming what to install when SQLAlchemy has no driver for ``url``."""
    import sqlalchemy

    try:
        sqlalchemy.engine.make_url(url).get_dialect().import_dbapi()
    except ImportError as err:
        extra = " (pip install 'graphnas[postgres]')" if url.startswith("postgresql") else ""
        raise ValueError(f"--storage {url.split('://')[0]}://...: no database driver installed for it "
                         f"({err.name or err}){extra}") from None


_LOCK_ENGINES: dict[str, Any] = {}  # one connection pool per database URL, made on first use


@contextmanager
def database_lock(url: str, name: str) -> Iterator[None]:
    """An exclusive lock named ``name``, held in the database itself, so that processes on
    different machines exclude each other: PostgreSQL's advisory lock or MySQL's GET_LOCK.
    The budget check and the ask of every worker of a shared study run under it (a file
    lock only reaches the processes of one machine)."""
    import sqlalchemy

    engine = _LOCK_ENGINES.get(url)
    if engine is None:
        engine = _LOCK_ENGINES[url] = sqlalchemy.create_engine(url)
    key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
    take, give = {"postgresql": ("SELECT pg_advisory_lock(:key)", "SELECT pg_advisory_unlock(:key)"),
                  "mysql": ("SELECT GET_LOCK(:name, -1)", "SELECT RELEASE_LOCK(:name)")}[engine.dialect.name]
    with engine.connect() as connection:
        connection.execute(sqlalchemy.text(take), {"key": key, "name": name[:64]})
        try:
            yield
        finally:
            connection.execute(sqlalchemy.text(give), {"key": key, "name": name[:64]})
            connection.commit()


def _sqlite_storage(url: str) -> optuna.storages.RDBStorage:
    """SQLite in write-ahead-log mode with ``synchronous=NORMAL``: a commit no longer waits
    for an fsync (about 9 ms each here, and Optuna commits every attribute and parameter
    on its own). The trade-off: a killed process loses nothing, since every commit is in
    the log; a power failure or OS crash may lose the last commits before the next
    checkpoint, and never corrupts the database. optuna-dashboard reads it as before."""
    import sqlalchemy

    storage = optuna.storages.RDBStorage(url)

    def pragmas(connection, _record) -> None:
        cursor = connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    sqlalchemy.event.listen(storage.engine, "connect", pragmas)
    storage.engine.dispose()  # the connection made while creating the tables predates the listener
    return storage


def check_storage_url(url: Optional[str], option: str) -> None:
    """ValueError, one line naming ``option``, for a URL no storage can open (an unknown
    scheme or a missing driver): checked before any work, not when the first trial is told."""
    if not url or url == "none" or url.startswith(JOURNAL):
        return
    import sqlalchemy

    try:
        sqlalchemy.engine.make_url(url).get_dialect()
    except Exception as err:  # ArgumentError (not a URL), NoSuchModuleError (no such dialect), ImportError
        raise ValueError(f"{option} {url}: not a storage URL this machine can open ({_first_line(err)}); expected "
                         "sqlite:///PATH, journal:///PATH, postgresql://... or mysql+pymysql://...") from None


def _check_journal(path: Path) -> None:
    """Every line of an Optuna journal is one JSON operation. Optuna skips a damaged last
    line (a write in progress) and fails on it only once a later write follows it, deep in
    a run: so a resume reads the whole file first."""
    with path.open("rb") as f:
        for number, line in enumerate(f, 1):
            try:
                json.loads(line)
            except ValueError:
                raise ValueError(f"{path}: damaged, not an Optuna journal (line {number} is not JSON); the lines "
                                 "before it are intact: cut the file there to resume from them") from None


def _immutable(path: Path) -> bool:
    """Can root not write here after all (``chattr +i``, a read-only mount)? os.access says
    yes to root whatever the mode bits."""
    try:
        with tempfile.TemporaryFile(dir=path):
            return False
    except OSError:
        return True


class RunDirectoryError(RuntimeError):
    """A run directory could not be written, or its study not opened. A failure of the
    engine or the filesystem, not of the candidate being trained: a search stops
    (``--resume`` continues it) instead of recording the trial as failed and counting it
    against the budget."""


@dataclass
class SamplerSnapshot:
    """A pickled sampler and the trial whose proposal it drew last."""

    sampler: optuna.samplers.BaseSampler
    trial: Optional[int]  # None: unknown (a run from before snapshots had numbers)


class RunStore:
    """Owns one run directory and its study."""

    def __init__(self, run_dir: str | Path, storage: Optional[str] = None) -> None:
        self.run_dir = Path(run_dir)
        # config.yaml keeps the template, so a run directory that is moved or copied opens
        # its own database, never the one it was copied from; a user's URL is kept as given
        self.storage_template = storage or DEFAULT_STORAGE
        self.storage = self.storage_template.replace(RUN_DIR_TOKEN, str(self.run_dir.resolve()))
        self._backend = None
        self._alone = False  # write_alone() was called: the study is read once, kept in memory

    @property
    def backend(self):
        """The Optuna storage, opened on first use (an SQLite file is created then, so a
        refused run leaves no empty database behind)."""
        if self._backend is None:
            if self.storage.startswith("sqlite:///"):
                Path(self.storage[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
            self._backend = open_storage(self.storage)
            if self._alone:
                self._backend = self._sole_writer(self._backend)
        return self._backend

    @classmethod
    def open(cls, run_dir: str | Path) -> tuple["RunStore", optuna.Study]:
        """An existing run: its store and study, as its config.yaml names them."""
        config = cls(run_dir).read_config()
        store = cls(run_dir, config.get("storage"))
        try:
            return store, optuna.load_study(study_name=config["study_name"], storage=store.backend)
        except KeyError:  # no such study: the caller names it
            raise
        except Exception as err:  # SQLAlchemy's or the journal's own error: one line, naming the path
            writable = os.access(Path(run_dir), os.W_OK) and not _immutable(Path(run_dir))
            hint = ("; SQLite writes its log beside the database, so the directory must be writable: copy the run "
                    "directory somewhere writable" if store.storage.startswith("sqlite:///") and not writable
                    else "; the file is damaged or not an Optuna study")
            raise RunDirectoryError(f"{run_dir}: cannot open the study {store.storage} "
                                    f"({_first_line(err)}){hint}") from None

    # --- claim ---------------------------------------------------------------------------
    LOCK = "search.lock"

    def claim(self) -> FileLock:
        """Hold the run directory for one search: checks that it can be written and takes
        an exclusive lock on it (an OS file lock: a killed process releases it). Raises
        ValueError, one line naming the directory, when it cannot be written or another
        search holds it; two searches started at once on one directory would otherwise
        race between the check for an existing study and its creation, and a resume beside
        a live search would fail that search's running trials as stale."""
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=self.run_dir):
                pass
        except OSError as err:
            raise ValueError(f"{self.run_dir}: the run directory cannot be written ({err.strerror or err}); "
                             "give a writable --run-dir") from None
        lock = FileLock(self.run_dir / self.LOCK)
        try:
            lock.acquire(timeout=0)
        except Timeout:
            raise ValueError(f"{self.run_dir} is in use by another graphnas search running now; wait for it to "
                             "end, or choose another --run-dir") from None
        except OSError as err:
            raise ValueError(f"{self.run_dir / self.LOCK}: cannot lock the run directory ({err.strerror or err})") from None
        return lock

    def write_alone(self) -> None:
        """Say that this process alone writes the study from now on (it holds the run
        directory, with one local worker): a run directory's SQLite database is then read
        once and kept in memory (``results.sole_writer``). Other storages are shared by
        design and stay as they are."""
        self._alone = self.storage.startswith("sqlite:///")
        if self._alone and self._backend is not None:  # opened already; else when first opened
            self._backend = self._sole_writer(self._backend)

    @staticmethod
    def _sole_writer(backend):
        from graphnas.results.sole_writer import SoleWriterStorage

        return backend if isinstance(backend, SoleWriterStorage) else SoleWriterStorage(backend)

    # --- config -------------------------------------------------------------------------
    @property
    def config_path(self) -> Path:
        return self.run_dir / "config.yaml"

    def write_config(self, config: dict[str, Any]) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))

    def read_config(self) -> dict[str, Any]:
        if not self.config_path.is_file():
            raise FileNotFoundError(f"{self.config_path}: no config.yaml; is {self.run_dir} a graphnas run directory?")
        try:
            config = yaml.safe_load(self.config_path.read_text())
        except (yaml.YAMLError, UnicodeDecodeError) as err:
            raise ValueError(f"{self.config_path}: not readable as YAML ({_first_line(err)}); the run's settings are "
                             "lost, but its trials are in the study") from None
        if not isinstance(config, dict) or not isinstance(config.get("study_name", ""), str):
            raise ValueError(f"{self.config_path}: expected the run's settings (a mapping with study_name), got "
                             f"{type(config).__name__ if not isinstance(config, dict) else 'a mapping without it'}")
        return config

    # --- study --------------------------------------------------------------------------
    def create_study(self, name: str, objectives: list[Objective], sampler: optuna.samplers.BaseSampler,
                     metric: str) -> optuna.Study:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        study = optuna.create_study(storage=self.backend, study_name=name, sampler=sampler,
                                    directions=[o.direction for o in objectives])
        with warnings.catch_warnings():  # set_metric_names is marked experimental since Optuna 3.2
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names([f"val_{metric}" if o.name == "metric" else o.name for o in objectives])
        study.set_user_attr("objectives", [o.__dict__ for o in objectives])
        study.set_user_attr("metric", metric)
        return study

    def check_study(self, name: str) -> None:
        """Before a resume, report or export does any work: the study's storage is there and
        holds ``name``; else ValueError, one line naming the file (a resume would otherwise
        create an empty database, and a damaged one ends in SQLAlchemy's traceback)."""
        for scheme in ("sqlite:///", JOURNAL):
            if self.storage.startswith(scheme) and not Path(self.storage[len(scheme):]).is_file():
                raise ValueError(f"{self.storage[len(scheme):]}: the run's study file is missing; nothing to resume "
                                 f"or report in {self.run_dir}")
        if self.storage.startswith(JOURNAL):
            _check_journal(Path(self._storage_file()))
        try:
            names = optuna.study.get_all_study_names(storage=self.backend)
        except Exception as err:  # SQLAlchemy's, SQLite's or the journal's own error: the file is damaged
            self._backend = None
            raise ValueError(f"{self._storage_file()}: damaged, not an Optuna study ({_first_line(err)})") from None
        if name not in names:
            raise ValueError(f"{self._storage_file()}: holds no study {name!r} (it has {', '.join(names) or 'none'})")

    def _storage_file(self) -> str:
        for scheme in ("sqlite:///", JOURNAL):
            if self.storage.startswith(scheme):
                return self.storage[len(scheme):]
        return self.storage

    def has_study(self, name: str) -> bool:
        for scheme in ("sqlite:///", JOURNAL):
            if self.storage.startswith(scheme) and not Path(self.storage[len(scheme):]).is_file():
                return False  # do not create an empty database just to look
        return name in optuna.study.get_all_study_names(storage=self.backend)

    def load_study(self, name: str) -> optuna.Study:
        """Open the study as stored. Trials left RUNNING are swept by ``fail_stale_trials``,
        and only by the process that knows no other worker is running."""
        return optuna.load_study(study_name=name, storage=self.backend)

    @staticmethod
    def fail_stale_trials(study: optuna.Study, proposed_through: Optional[int] = None) -> int:
        """Trials left RUNNING by a killed process become FAIL (they will never finish) and
        are queued again once, with the same parameters, by Optuna's
        RetryHeartbeatStaleTrialCallback (the heartbeat itself exists only for RDB storages
        and ask-and-tell loops do not beat, so the sweep is ours). They get no ``error``
        attribute, which is how the budget tells them from candidates that failed.

        A trial numbered above ``proposed_through`` (the trial of the sampler snapshot) was
        killed while its proposal was drawn: it is not queued again, because its
        parameters may be partial and the restored sampler draws its proposal anew. A
        queued trial (a reference, a transfer, a neighbour: Optuna's ``fixed_params``) is
        always queued again, wherever it stopped: no sampler draws it, so nothing else
        would ever run it."""
        from optuna.storages import RetryHeartbeatStaleTrialCallback

        stale = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        with warnings.catch_warnings():  # the callback is marked experimental
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            again = RetryHeartbeatStaleTrialCallback(max_retry=1)
            for t in stale:
                # marked, so that a strategy that avoids repeats may propose its architecture
                # again: it was interrupted, never evaluated
                study._storage.set_trial_user_attr(t._trial_id, INTERRUPTED, True)
                study.tell(t.number, state=TrialState.FAIL, skip_if_finished=True)
                if proposed_through is None or t.number <= proposed_through or "fixed_params" in t.system_attrs:
                    again(study, t)
        return len(stale)

    # --- sampler snapshot ---------------------------------------------------------------
    SAMPLER = "sampler.pkl"

    def save_sampler(self, sampler: optuna.samplers.BaseSampler, trial: int) -> None:
        """Pickle the sampler (its random state included) once ``trial``'s proposal is
        drawn, beside the study, atomically: the file says which proposals it has made, so
        the trial's parameters are committed first (``SoleWriterStorage`` defers them)."""
        flush = getattr(self._backend, "flush", None)
        if flush is not None:
            flush()
        tmp = self.run_dir / (self.SAMPLER + ".tmp")
        try:
            tmp.write_bytes(signing.dumps(SamplerSnapshot(sampler, trial)))  # signed: see results.signing
            tmp.replace(self.run_dir / self.SAMPLER)
        except OSError as err:
            raise RunDirectoryError(f"{self.run_dir / self.SAMPLER}: cannot write the sampler snapshot "
                                f"({err.strerror or err}); the search stopped before trial {trial}, which "
                                "--resume runs again") from None

    def check_sampler(self) -> None:
        """Before a resume does any work: the snapshot, if there is one, is signed with this
        user's key (``results.signing``), else ValueError, one line saying how to go on."""
        self._sampler_payload()

    def _sampler_payload(self) -> Optional[bytes]:
        path = self.run_dir / self.SAMPLER
        if not path.is_file():
            return None
        try:
            return signing.verified_payload(path.read_bytes(), str(path))
        except signing.UntrustedFile as err:
            raise ValueError(f"{err}. To resume with a sampler rebuilt from the study instead (its proposals then "
                             f"differ from an uninterrupted run's), delete {path}") from None

    def load_sampler(self) -> Optional[SamplerSnapshot]:
        payload = self._sampler_payload()
        if payload is None:
            return None
        saved = signing.unpickle(payload)  # signed by this user's graphnas: checked just above
        if isinstance(saved, optuna.samplers.BaseSampler):  # an older run: its stale trials are all retried
            return SamplerSnapshot(saved, trial=None)
        return saved

    @staticmethod
    def objectives_of(study: optuna.Study) -> list[Objective]:
        return [Objective(**o) for o in study.user_attrs["objectives"]]

    # --- records ------------------------------------------------------------------------
    @staticmethod
    def trials_frame(study: optuna.Study) -> pd.DataFrame:
        """One row per trial: base columns, then every flattened choice (``layer{i}.mpnn``).
        ``confirmed_val``/``confirmed_test``: the means over the trial's own seed and its
        confirmation seeds, where the search confirmed it (:data:`CONFIRM_ATTR`)."""
        confirmed = study.user_attrs.get(CONFIRM_ATTR, {})
        rows = [{**trial_row(t), **confirmed_figures(confirmed.get(str(t.number)))}
                for t in study.get_trials(deepcopy=False)]
        frame = pd.DataFrame(rows)
        if frame.empty:
            return pd.DataFrame(columns=BASE_COLUMNS)
        extra = [c for c in frame.columns if c not in BASE_COLUMNS]
        for column in extra:  # a trial without an architecture (failed before it) would make them float
            if ParamKey.parse(column).field in INT_CHOICES:
                frame[column] = frame[column].astype("Int64")
        return frame[BASE_COLUMNS + extra]

    # --- differentiable search records ------------------------------------------------------
    ALPHAS = "alphas.csv"

    def append_alphas(self, rows: list[dict[str, Any]]) -> None:
        """Add rows (epoch, layer, choice, candidate, weight, cost_weight) to alphas.csv."""
        path = self.run_dir / self.ALPHAS
        pd.DataFrame(rows).to_csv(path, mode="a", header=not path.is_file(), index=False)

    def update_json(self, name: str, key: str, value: Any) -> None:
        """Set ``key`` in the JSON object file ``name`` of the run directory."""
        path = self.run_dir / name
        data = json.loads(path.read_text()) if path.is_file() else {}
        data[key] = value
        path.write_text(json.dumps(data, indent=2))

    # --- outputs ------------------------------------------------------------------------
    def outputs(self, study: optuna.Study) -> "RunOutputs":
        """The trials table, Pareto front and best trial, computed from the study (no files)."""
        objectives = self.objectives_of(study)
        frame = self.trials_frame(study)
        return RunOutputs(frame, ParetoFront.of(frame, front_objectives(objectives)), best_row(frame, objectives))

    def write_outputs(self, study: optuna.Study, plots: bool = True) -> "RunOutputs":
        """Write trials.csv, pareto.json, best_arch.json and (with ``plots``) pareto.png and
        summary.md; RunDirectoryError, one line naming the directory, if it cannot be written."""
        outputs = self.outputs(study)
        try:
            self._write_outputs(study, outputs, plots)
        except OSError as err:
            raise RunDirectoryError(f"{self.run_dir}: cannot write the run's outputs ({err.strerror or err}); "
                                "its trials are safe in the study, and `graphnas report` writes them again") from None
        return outputs

    def _write_outputs(self, study: optuna.Study, outputs: "RunOutputs", plots: bool) -> None:
        from graphnas.results.report import plot_alphas, plot_pareto, write_summary  # matplotlib only when needed

        frame, front, best = outputs.frame, outputs.front, outputs.best
        frame.to_csv(self.run_dir / "trials.csv", index=False)
        (self.run_dir / "pareto.json").write_text(json.dumps({
            "objectives": [o.__dict__ for o in front.objectives],
            "trials": front.to_records()}, indent=2))
        if best is not None:
            (self.run_dir / "best_arch.json").write_text(json.dumps({
                "trial": int(best["trial"]), "val_metric": float(best["val_metric"]),
                "test_metric": float(best["test_metric"]), "flops": int(best["flops"]),
                "architecture": Architecture.from_json(best["arch_json"]).applied_dump()}, indent=2))
        if plots:
            if (self.run_dir / self.ALPHAS).is_file():
                plot_alphas(pd.read_csv(self.run_dir / self.ALPHAS), self.run_dir / "alphas.png")
            plot_pareto(frame, front, self.run_dir / "pareto.png", study.user_attrs.get("metric", "metric"))
            write_summary(self.run_dir / "summary.md", frame, front, best, study.user_attrs.get("metric", "metric"),
                          self.read_config() if self.config_path.is_file() else {}, study.user_attrs.get("knowledge"))


class RunOutputs:
    def __init__(self, frame: pd.DataFrame, front: ParetoFront, best: Optional[pd.Series]) -> None:
        self.frame, self.front, self.best = frame, front, best


# the integer choices of an architecture (widths, depths, heads), kept integers in the table
INT_CHOICES = frozenset(name for model in (Architecture, LayerArch) for name, f in model.model_fields.items()
                        if f.annotation is int)


def trial_row(trial: FrozenTrial) -> dict[str, Any]:
    attrs = TrialResult.unpack(trial.user_attrs)
    row: dict[str, Any] = {"trial": trial.number, "state": trial.state.name}
    for key in BASE_COLUMNS[2:]:
        row[key] = attrs.get(key, math.nan)
    row["error"] = attrs.get("error", "")
    row["reference"] = attrs.get("reference", "")  # a zoo design run as a trial (zoo:gat), else empty
    for key in ("strategy", "cost_weight", NEIGHBOUR_ATTR):  # set by differentiable strategies; by the confirmation
        if key in attrs:
            row[key] = attrs[key]
    if attrs.get("arch_json"):
        row.update(Architecture.from_json(attrs["arch_json"]).flat())
    return row


def confirmed_figures(record: Optional[dict]) -> dict[str, float]:
    """The confirmed_* columns of one trial from its confirmation record (NaN when none)."""
    if not record:
        return {"confirmed_val": math.nan, "confirmed_test": math.nan, "confirm_seeds": 0, "confirm_folds": 0}
    return {"confirmed_val": float(np.mean(record["val"])), "confirmed_test": float(np.mean(record["test"])),
            "confirm_seeds": len(record.get("seeds", [None])), "confirm_folds": record.get("folds", 0)}


def best_row(frame: pd.DataFrame, objectives: list[Objective]) -> Optional[pd.Series]:
    """Best completed trial by validation metric; ties go to fewer FLOPs, then the earlier
    trial. Once the search has confirmed its top trials over more seeds, the best is the
    confirmed trial of best mean validation: one seed's figure flatters whichever trial
    drew a lucky split of the noise (the winner's curse), and the mean of several does less."""
    done = frame[frame["state"] == "COMPLETE"]
    if done.empty:
        return None
    if "confirmed_val" in done and done["confirmed_val"].notna().any():
        confirmed = done[done["confirmed_val"].notna()].assign(val_metric=lambda d: d["confirmed_val"])
        return frame.loc[ranked_trials(confirmed, objectives).index[0]]
    return ranked_trials(done, objectives).iloc[0]


def ranked_trials(done: pd.DataFrame, objectives: list[Objective]) -> pd.DataFrame:
    """Completed trials best first: by validation metric, then fewer FLOPs, then the earlier trial."""
    metric = next((o for o in objectives if o.name == "metric"), None)
    ascending = metric is not None and metric.direction == "minimize"
    if metric is None:  # cost-only search: the cheapest
        return done.sort_values([objectives[0].column, "trial"])
    return done.sort_values(["val_metric", "flops", "trial"], ascending=[ascending, True, True])
