"""The run directory stage (issue 44: the run as a pipeline): claim a fresh run directory, join a
shared study another machine started, resume one (its settings, space and sampler snapshot
checked before any work), release it as the run ends, and remove what a refused start wrote."""
from __future__ import annotations

import shutil
from typing import Any

import optuna

from graphnas.nas.backends import refuse_live_workers
from graphnas.results.store import RunStore, shared_database
from graphnas.search_spaces import SearchSpace

# Settings that make two runs different searches: resuming with another value is refused.
IDENTITY_ATTR = "search_identity"  # study user attribute: what a joining search must match
IDENTITY_KEYS = ("space", "dataset", "dataset_args", "evaluator", "objectives", "study_name", "train")
# Training settings that do not change what a trial measures.
NEUTRAL_TRAIN_KEYS = ("device", "latency_repeats", "trial_timeout")


def _identity(config: dict) -> dict:
    train = {k: v for k, v in (config.get("train") or {}).items() if k not in NEUTRAL_TRAIN_KEYS}
    return {**config, "train": train}


class RunDirectory:
    """One search's run directory: its ``store``, the search's ``config`` (a ``SearchConfig``);
    ``resume``: continue the run there; ``sole_writer``: no other process writes its study.
    ``joining``: a fresh directory whose shared database already holds the study (another
    machine's search, which this one joins)."""

    def __init__(self, store: RunStore, config, resume: bool, sole_writer: bool) -> None:
        self.store, self.config, self.resume, self.sole_writer = store, config, resume, sole_writer
        self.run_dir = store.run_dir
        self._claim = None  # the lock, while this search holds the directory
        self._created = False  # whether this search created the directory
        self.joining = not resume and self.joins_a_shared_study()

    def claim(self) -> None:
        """The run directory, held; after every other check, so that a refused search leaves
        nothing behind. A fresh run is checked again under the lock: another search started
        at the same moment may have created its study since."""
        self._created = not self.run_dir.exists()
        lock = self.store.claim()
        try:
            refuse_live_workers(self.run_dir)  # a killed search's worker may outlive it by a moment
        except ValueError:
            lock.release()
            raise
        # a shared study that appeared since __init__ (another machine's, created meanwhile) is joined
        if not self.resume and not self.joining and self.holds_a_run() and not self.joins_a_shared_study():
            lock.release()
            raise ValueError(f"{self.run_dir} already holds a run (study {self.config.study_name!r}), started at "
                             "the same moment; continue it with --resume or choose another --run-dir")
        if self.sole_writer:  # nothing else writes the study
            self.store.write_alone()
        self._claim = lock

    def holds_a_run(self) -> bool:
        return self.store.config_path.is_file() or self.store.has_study(self.config.study_name)

    def joins_a_shared_study(self) -> bool:
        """A fresh run directory whose shared database (PostgreSQL, MySQL) already holds the
        study: started by the same command on another machine, which this search joins as
        one more worker, as Optuna's ``load_if_exists`` does."""
        return (shared_database(self.store.storage) and not self.store.config_path.is_file()
                and self.store.has_study(self.config.study_name))

    def check_space_unchanged(self, space: SearchSpace) -> None:
        """Refuse to resume a run whose space file now says something else: its finished
        trials were drawn from the old space, and Optuna cannot mix the two."""
        stored = self.store.read_config().get("space_spec")
        if stored is None:  # a run from before the space was stored: nothing to compare with
            return
        changed = _changed_paths(stored, space_content(space))
        if changed:
            raise ValueError(f"cannot resume {self.run_dir}: space {self.config.space!r} has changed since the run "
                             f"began ({', '.join(changed[:6])}{' ...' if len(changed) > 6 else ''}); restore it or "
                             "start a new run")

    def check_resume(self, defaults: dict) -> None:
        """Before any work: the study exists, the settings are the run's (``defaults``: those of
        settings added since it was written), and its sampler snapshot is this user's."""
        self.store.check_study(self.config.study_name)  # a deleted or damaged study: one line, nothing created
        # Settings added since the run was written take their defaults (older runs resume).
        stored = self.store.read_config()
        # one level down too: a train setting added since (split) takes its default in an older run
        old = _identity({**defaults, **stored, "train": {**defaults["train"], **(stored.get("train") or {})}})
        new = _identity(self.config.model_dump(mode="json"))
        # each changed setting by its own path (train.epochs), not the two whole sections
        diffs = [f"{path}: run has {_at(old, path)!r}, now {_at(new, path)!r}" for k in IDENTITY_KEYS
                 if old.get(k) != new.get(k) for path in _changed_paths(old.get(k), new.get(k), f"{k}.")]
        if diffs:
            raise ValueError(f"cannot resume {self.run_dir} with different settings: " + "; ".join(diffs))
        self.store.check_sampler()  # a snapshot this user's graphnas did not sign is refused before any work

    def check_joined_identity(self, study: optuna.Study, space: SearchSpace) -> None:
        theirs = study.user_attrs.get(IDENTITY_ATTR)
        if theirs is None:  # the creating machine has not written it yet
            return
        mine = self.shared_identity(space)
        diffs = [k for k in mine if theirs.get(k) != mine[k]]
        if diffs:
            raise ValueError(f"{self.store.storage}: study {self.config.study_name!r} was started with other "
                             f"settings ({', '.join(diffs)}); give the same command, or another --run-dir name")

    def shared_identity(self, space: SearchSpace) -> dict[str, Any]:
        """What every machine's search on one shared study must agree on: the settings a
        resume must keep, with the space by its content (its file's path may differ)."""
        identity = _identity(self.config.model_dump(mode="json"))
        return {**{k: identity.get(k) for k in IDENTITY_KEYS if k != "space"}, "space_spec": space_content(space)}

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
        if self._created and {p.name for p in self.run_dir.iterdir()} <= {RunStore.LOCK}:
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
