"""IncrementalTPESampler proposes exactly what Optuna's TPESampler proposes."""
import pickle
import warnings

import optuna
import pytest

from graphnas.nas.tpe import IncrementalTPESampler

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _objective(trial: optuna.Trial):
    """A conditional space (layer2.* only with 3 layers), a float, pruned trials and, with
    two objectives, a second value."""
    layers = trial.suggest_categorical("layers", [2, 3])
    score = trial.suggest_float("lr", 1e-3, 1e-1, log=True)
    for i in range(layers):
        op = trial.suggest_categorical(f"layer{i}.op", ["gcn", "gat", "sage", "gin"])
        score += {"gcn": 0.1, "gat": 0.3, "sage": 0.2, "gin": 0.0}[op] * (i + 1)
    score += trial.suggest_int("hidden", 16, 256, log=True) / 1000
    if trial.number % 7 == 3:
        raise optuna.TrialPruned()
    return (score, layers * 1.0) if len(trial.study.directions) > 1 else score


def _proposals(sampler_cls, directions, n_trials=60, pickle_at=None, running_at=None):
    kwargs = dict(seed=3, n_startup_trials=8, multivariate=True, group=True, constant_liar=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study = optuna.create_study(directions=directions, sampler=sampler_cls(**kwargs))
    params = []
    for number in range(n_trials):
        if number == pickle_at:  # a resumed search restores the pickled sampler snapshot
            study.sampler = pickle.loads(pickle.dumps(study.sampler))
        if number == running_at:  # a trial left running (another worker's): the constant liar sees it
            held = study.ask()
            held.suggest_categorical("layers", [2, 3])
        trial = study.ask()
        try:
            study.tell(trial, _objective(trial))
        except optuna.TrialPruned:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        params.append(trial.params)
    return params


@pytest.mark.parametrize("directions", [["maximize"], ["maximize", "minimize"]])
def test_same_proposals_as_optunas_tpe(directions):
    plain = _proposals(optuna.samplers.TPESampler, directions, running_at=30)
    incremental = _proposals(IncrementalTPESampler, directions, running_at=30)
    assert incremental == plain
    assert len({str(p) for p in plain[8:]}) > 20  # TPE itself proposed, past the random start-up


def test_same_proposals_across_a_pickled_snapshot():
    plain = _proposals(optuna.samplers.TPESampler, ["maximize"])
    resumed = _proposals(IncrementalTPESampler, ["maximize"], pickle_at=30)
    assert resumed == plain


def test_snapshot_does_not_grow_with_the_study():
    small = optuna.create_study(sampler=IncrementalTPESampler(seed=0, multivariate=True, group=True))
    small.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=20)
    large = optuna.create_study(sampler=IncrementalTPESampler(seed=0, multivariate=True, group=True))
    large.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=200)
    assert len(large.sampler._rows[("x",)].rows) == 199  # in memory: every trial the last proposal saw
    assert abs(len(pickle.dumps(large.sampler)) - len(pickle.dumps(small.sampler))) < 200
