"""Issue 18: the storage of a study that one process alone writes reads it from memory, and
what it holds in memory is exactly what the database holds."""
from __future__ import annotations

import optuna
import pytest

from graphnas.results.sole_writer import SoleWriterStorage
from graphnas.results.store import open_storage


def _same(a: optuna.trial.FrozenTrial, b: optuna.trial.FrozenTrial) -> None:
    for field in ("number", "state", "values", "params", "distributions", "user_attrs", "system_attrs",
                  "intermediate_values", "datetime_start", "datetime_complete"):
        assert getattr(a, field) == getattr(b, field), (a.number, field)


def _objective(trial: optuna.Trial) -> float:
    x = trial.suggest_float("x", -3, 3)
    kind = trial.suggest_categorical("kind", ["a", "b", "c"])
    trial.set_user_attr("figures", {"x": x, "kind": kind, "nested": [1, 2.5, None]})
    for step in range(3):
        trial.report(x * step, step)
    if trial.number == 4:
        raise ValueError("a candidate that fails")
    if trial.number == 6:
        raise optuna.TrialPruned()
    if trial.number == 8:
        return float("inf")  # stored as a value type, not a number: it must read back as inf
    return x ** 2 + (kind == "b")


def test_the_copy_in_memory_is_what_the_database_holds(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    storage = SoleWriterStorage(open_storage(url))
    study = optuna.create_study(storage=storage, study_name="s", sampler=optuna.samplers.TPESampler(seed=0,
                                                                                                   n_startup_trials=3))
    study.optimize(_objective, n_trials=12, catch=(ValueError,))
    fresh = optuna.load_study(study_name="s", storage=url)  # Optuna's own reading of the file
    mine, theirs = study.get_trials(), fresh.get_trials()
    assert len(mine) == len(theirs) == 12
    for a, b in zip(mine, theirs):
        _same(a, b)
    assert [t.state for t in mine].count(optuna.trial.TrialState.FAIL) == 1
    assert [t.state for t in mine].count(optuna.trial.TrialState.PRUNED) == 1


def test_several_objectives_read_back_as_the_copy_holds_them(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(storage=SoleWriterStorage(open_storage(url)), study_name="s",
                                directions=["maximize", "minimize"], sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(lambda t: (t.suggest_float("x", 0, 1), float("-inf") if t.number == 2 else 1.0), n_trials=4)
    for a, b in zip(study.get_trials(), optuna.load_study(study_name="s", storage=url).get_trials()):
        _same(a, b)
    assert study.trials[2].values[1] == float("-inf")


def test_it_reads_the_study_once_and_then_never_again(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    optuna.create_study(storage=url, study_name="s").optimize(_objective, n_trials=3, catch=(ValueError,))
    storage = SoleWriterStorage(open_storage(url))
    reads = []
    original = storage._backend._get_trials
    monkeypatch.setattr(storage._backend, "_get_trials", lambda *a, **k: reads.append(1) or original(*a, **k))
    study = optuna.load_study(study_name="s", storage=storage, sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(_objective, n_trials=5, catch=(ValueError,))
    assert len(reads) == 1  # the first read; afterwards the copy is kept by the writes
    assert len(study.trials) == 8
    for a, b in zip(study.get_trials(), optuna.load_study(study_name="s", storage=url).get_trials()):
        _same(a, b)


def test_a_trial_handed_out_earlier_does_not_change_under_its_holder(tmp_path):
    storage = SoleWriterStorage(open_storage(f"sqlite:///{tmp_path / 'study.db'}"))
    study = optuna.create_study(storage=storage, study_name="s")
    trial = study.ask()
    before = study.get_trials(deepcopy=False)[0]
    trial.set_user_attr("late", 1)
    assert "late" not in before.user_attrs and study.get_trials(deepcopy=False)[0].user_attrs == {"late": 1}


def test_a_search_with_one_local_worker_writes_alone_and_with_workers_does_not(tmp_path):
    from graphnas.nas import Search, SearchConfig

    alone = Search(SearchConfig(dataset="synthetic", trials=1, run_dir=str(tmp_path / "a")))
    shared = Search(SearchConfig(dataset="synthetic", trials=1, workers=2, run_dir=str(tmp_path / "b")))
    try:
        assert isinstance(alone.store.backend, SoleWriterStorage)
        assert not isinstance(shared.store.backend, SoleWriterStorage)
    finally:
        alone.release()
        shared.release()


@pytest.mark.parametrize("url", ["journal", "postgresql://user@host/db"])
def test_only_a_run_directorys_sqlite_is_written_alone(tmp_path, url):
    from graphnas.results.store import RunStore

    store = RunStore(tmp_path, f"journal:///{tmp_path}/journal.log" if url == "journal" else url)
    if url == "journal":
        store.write_alone()
        assert not isinstance(store.backend, SoleWriterStorage)
    else:  # never opened: a shared database is not touched by the decision
        store._backend = "postgresql://user@host/db"
        store.write_alone()
        assert store.backend == "postgresql://user@host/db"


def test_a_running_trials_writes_are_one_commit_at_the_next_commit_point(tmp_path):
    """Parameters and attributes wait for the snapshot (flush) or the trial's end, then go
    to the database in one transaction (with the values and state at the end), where each
    write was its own commit before."""
    import sqlalchemy

    url = f"sqlite:///{tmp_path / 'study.db'}"
    storage = SoleWriterStorage(open_storage(url))
    study = optuna.create_study(storage=storage, study_name="s", sampler=optuna.samplers.RandomSampler(seed=0))
    trial = study.ask()
    commits = []
    sqlalchemy.event.listen(storage._backend.engine, "commit", lambda conn: commits.append(1))
    trial.suggest_float("x", -3, 3)
    trial.suggest_categorical("kind", ["a", "b"])
    trial.set_user_attr("arch_id", "abc")
    fresh = optuna.load_study(study_name="s", storage=url)
    assert fresh.trials[0].params == {}  # not committed yet: the trial is running
    assert study.trials[0].params.keys() == {"x", "kind"}  # the copy has them at once
    storage.flush()  # what RunStore.save_sampler does before its snapshot
    assert optuna.load_study(study_name="s", storage=url).trials[0].params == study.trials[0].params
    trial.set_user_attr("figures", {"val": 0.5})
    study.tell(trial, 1.0)
    _same(study.trials[0], optuna.load_study(study_name="s", storage=url).trials[0])
    # the flush, then the figures, values and state together; one per parameter and attribute,
    # then the state and a read of the stored times, before (8)
    assert len(commits) == 2
    with pytest.raises(ValueError, match="does not support dynamic value space"):
        study.ask().suggest_categorical("kind", ["a", "b", "c"])  # checked at the call, as before


def test_a_resumed_study_checks_a_parameter_against_the_stored_trials(tmp_path):
    """The distribution check that the database made on every write holds on a study read
    from the file: a parameter whose choices changed is refused at the call."""
    url = f"sqlite:///{tmp_path / 'study.db'}"
    optuna.create_study(storage=url, study_name="s").optimize(
        lambda t: float(t.suggest_categorical("kind", ["a", "b"]) == "a"), n_trials=2)
    study = optuna.load_study(study_name="s", storage=SoleWriterStorage(open_storage(url)))
    with pytest.raises(ValueError, match="does not support dynamic value space"):
        study.ask().suggest_categorical("kind", ["a", "b", "c"])
