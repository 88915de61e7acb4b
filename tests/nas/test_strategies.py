"""Contract tests over every registered black-box strategy (as Optuna's parametrize_sampler
runs its sampler tests over every sampler): members only, repeatable, no repeats where
declared, failed and pruned trials, several objectives, resume."""
from __future__ import annotations

import hashlib
import pickle
from types import MappingProxyType

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from graphnas.nas.strategies import STRATEGIES, LocalSearch, RegularizedEvolution
from graphnas.results.store import RunStore
from graphnas.search_spaces import SearchSpace

optuna.logging.set_verbosity(optuna.logging.ERROR)
SPACES = ("tiny", "nas_bench_graph")


def score(arch_id: str, i: int = 0) -> float:
    """A fixed, arbitrary objective per architecture (no training)."""
    return int(hashlib.sha256(f"{arch_id}:{i}".encode()).hexdigest()[:8], 16) / 16 ** 8


def drive(strategy: str, space: SearchSpace, n: int, seed: int = 0, objectives: int = 1, study=None, sampler=None,
          fail_every: int = 0, prune_every: int = 0):
    """Ask and tell ``n`` trials; returns (study, sampler, proposed arch ids)."""
    sampler = sampler or STRATEGIES.get(strategy)(space, seed, objectives).sampler()
    study = study or optuna.create_study(directions=["maximize"] * objectives, sampler=sampler)
    study.sampler = sampler
    ids = []
    for k in range(n):
        trial = study.ask()
        arch = space.suggest(trial)
        assert space.contains(arch), f"{strategy} proposed a non-member: {arch.to_json()}"
        ids.append(space.canonical_id(arch))  # isomorphic NAS-Bench-Graph cells are one architecture
        if fail_every and k % fail_every == fail_every - 1:
            study.tell(trial, state=TrialState.FAIL)
        elif prune_every and k % prune_every == prune_every - 1:
            study.tell(trial, state=TrialState.PRUNED)
        else:
            study.tell(trial, [score(space.canonical_id(arch), i) for i in range(objectives)])
    return study, sampler, ids


@pytest.fixture(scope="module", params=SPACES)
def space(request) -> SearchSpace:
    return SearchSpace.preset(request.param)


@pytest.mark.parametrize("strategy", STRATEGIES.without_capability("differentiable"))
def test_every_strategy_proposes_members_and_repeats_itself_given_the_seed(strategy, space):
    _, _, first = drive(strategy, space, 20, seed=3)
    _, _, again = drive(strategy, space, 20, seed=3)
    assert first == again
    assert drive(strategy, space, 20, seed=4)[2] != first


@pytest.mark.slow  # a full search or several: over 2 s on 2 cores
@pytest.mark.parametrize("strategy", STRATEGIES.without_capability("differentiable"))
def test_every_strategy_never_queries_an_architecture_twice(strategy, space):
    assert STRATEGIES.entry(strategy).can("distinct")
    for objectives in (1, 2):
        _, _, ids = drive(strategy, space, 30, objectives=objectives)
        assert len(set(ids)) == len(ids), f"{strategy} repeated {len(ids) - len(set(ids))} of {len(ids)}"


@pytest.mark.parametrize("strategy", STRATEGIES.without_capability("differentiable"))
def test_every_strategy_survives_failed_and_pruned_trials(strategy, space):
    study, _, ids = drive(strategy, space, 20, fail_every=3, prune_every=5)
    states = [t.state for t in study.trials]
    assert TrialState.FAIL in states and TrialState.PRUNED in states and len(ids) == 20


@pytest.mark.slow  # a full search or several: over 2 s on 2 cores
@pytest.mark.parametrize("strategy", sorted(set(STRATEGIES.with_capability("multi_objective"))
                                             - set(STRATEGIES.with_capability("differentiable"))))
def test_multi_objective_strategies_take_several_objectives(strategy, space):
    study, _, _ = drive(strategy, space, 25, objectives=2)
    assert all(len(t.values) == 2 for t in study.trials) and study.best_trials


@pytest.mark.slow  # a full search or several: over 2 s on 2 cores
@pytest.mark.parametrize("strategy", STRATEGIES.without_capability("differentiable"))
def test_every_strategy_resumes_from_its_pickled_sampler(strategy, space):
    study, sampler, head = drive(strategy, space, 12)
    restored = pickle.loads(pickle.dumps(sampler))  # what the run store keeps after each proposal
    _, _, tail = drive(strategy, space, 8, study=study, sampler=restored)
    _, _, whole = drive(strategy, space, 20)
    assert head + tail == whole


@pytest.mark.slow  # a full search or several: over 2 s on 2 cores
@pytest.mark.parametrize("strategy", STRATEGIES.without_capability("differentiable"))
def test_every_strategy_resumes_after_a_kill_inside_a_trial(strategy, space):
    """A process killed while it trained trial 12: its snapshot was taken once the proposal
    was drawn, the stale trial is retried with its parameters, and the retry must draw
    nothing (a draw would put every later proposal one step ahead)."""
    study, sampler, head = drive(strategy, space, 12)
    killed = study.ask()
    space.suggest(killed)
    snapshot = pickle.loads(pickle.dumps(sampler))
    assert RunStore.fail_stale_trials(study, proposed_through=killed.number) == 1
    _, _, tail = drive(strategy, space, 8, study=study, sampler=snapshot)
    _, _, whole = drive(strategy, space, 20)
    assert head + tail == whole


def test_local_search_climbs_to_the_best_neighbour_then_restarts():
    space = SearchSpace.preset("nas_bench_graph")
    # 120: a cell has about 40 neighbours, isomorphic ones counted once; the first climb of
    # this seed ends at trial 113
    study, sampler, ids = drive("local", space, 120)
    strategy: LocalSearch = sampler.strategy
    best = max(study.trials, key=lambda t: t.value)
    # the best architecture's neighbourhood was searched: some later trial is one choice away
    later = [t for t in study.trials if t.number > best.number]
    assert any(sum(t.params[k] != best.params.get(k) for k in t.params) == 1 for t in later) or not later
    assert strategy.climb_start >= LocalSearch.initial  # it has reached a local optimum and restarted


def test_evolution_mutates_one_choice_of_a_tournament_winner():
    space = SearchSpace.preset("nas_bench_graph")
    study, _, _ = drive("evolution", space, RegularizedEvolution.population + 10)
    young = study.trials[RegularizedEvolution.population:]
    parents = study.trials[:RegularizedEvolution.population]
    # every child differs from some earlier trial in few choices (one, plus those it moots or adds)
    for child in young:
        distance = min(sum(child.params.get(k) != p.params.get(k) for k in set(child.params) | set(p.params))
                       for p in study.trials[:child.number])
        assert distance <= 3, distance
    assert len(parents) == RegularizedEvolution.population


def test_a_search_refuses_several_objectives_for_a_single_objective_strategy(tmp_path, monkeypatch):
    from graphnas.nas import Search, SearchConfig
    from graphnas.search_spaces.registry import Entry

    entry = STRATEGIES.entry("tpe")  # every shipped strategy takes several: declare one that does not
    monkeypatch.setitem(STRATEGIES._entries, "one", Entry("one", entry.factory, "one objective",
                                                          MappingProxyType({"multi_objective": False})))
    with pytest.raises(ValueError, match="--strategy one optimises one objective: give --objectives metric"):
        Search(SearchConfig(run_dir=str(tmp_path / "p"), strategy="one", objectives="metric,flops", space="tiny"))
    Search(SearchConfig(run_dir=str(tmp_path / "q"), strategy="one", objectives="metric", space="tiny"))


def test_predictor_ensemble_learns_the_history_it_proposes_from():
    space = SearchSpace.preset("nas_bench_graph")
    study, sampler, _ = drive("predictor", space, 25)
    strategy = sampler.strategy
    assert strategy._ensembles is not None and strategy._fitted_on >= strategy.initial
    done = [t for t in study.trials if t.state == TrialState.COMPLETE]
    x = strategy._encode([t.params for t in done])
    fit = strategy._ensembles[0].predict(x).mean(0)
    truth = [t.value for t in done]
    assert np.corrcoef(fit, truth)[0, 1] > 0.5  # the ensemble has learned the history it was fitted on


@pytest.mark.parametrize("objectives, fitted_on", [(1, 12), (2, 10)])
def test_predictor_refits_after_two_new_trials_with_one_objective_and_five_with_two(objectives, fitted_on):
    space = SearchSpace.preset("nas_bench_graph")
    _, sampler, _ = drive("predictor", space, 13, objectives=objectives)  # first fit at 10 trials
    assert sampler.strategy._fitted_on == fitted_on


def test_two_objective_predictor_spends_shares_of_its_proposals_on_each_extreme():
    strategy = STRATEGIES.get("predictor")(SearchSpace.preset("nas_bench_graph"), 0, 2)
    draws = [tuple(strategy._weights()) for _ in range(4000)]
    assert 0.37 < draws.count((1.0, 0.0)) / 4000 < 0.43  # the metric's extreme: metric_extreme = 0.4
    assert 0.12 < draws.count((0.0, 1.0)) / 4000 < 0.18  # the cost's: cost_extreme = 0.15
    rng = np.random.default_rng(0)
    predicted, scores = rng.random((5, 30, 2)), rng.random((12, 2))
    for objective in (0, 1):  # an extreme proposal ranks by one member's prediction of that objective
        weights = np.eye(2)[objective]
        ranking = strategy._acquisition(predicted, scores, weights)
        assert any(np.array_equal(ranking, predicted[m, :, objective]) for m in range(5))


def test_hypervolume_improvement_is_exact_against_moocore():
    import moocore

    from graphnas.nas.strategies import _hvi_2d, _nondominated

    rng = np.random.default_rng(0)
    scores = rng.random((12, 2))
    reference, front = scores.min(0), scores[_nondominated(scores)]
    points = np.maximum(rng.random((30, 2)) * 1.2 - 0.1, reference)
    def hv(p):
        return moocore.hypervolume(p, ref=list(reference), maximise=[True, True])
    expected = [hv(np.vstack([front, [p]])) - hv(front) for p in points]
    assert np.allclose(_hvi_2d(points, front, reference), expected)
    assert (_hvi_2d(front, front, reference) == 0).all()  # a point of the front adds nothing


def test_wrapped_optuna_samplers_propose_a_neighbour_instead_of_a_repeat():
    space = SearchSpace.preset("nas_bench_graph")
    plain = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0, n_startup_trials=8, multivariate=True))
    plain_ids = []
    for _ in range(60):
        trial = plain.ask()
        arch_id = space.canonical_id(space.suggest(trial))
        plain_ids.append(arch_id)
        plain.tell(trial, score(arch_id))
    _, _, ids = drive("tpe", space, 60)
    assert len(set(plain_ids)) < 60 and len(set(ids)) == 60  # Optuna's own TPE repeats; the strategy does not


def test_the_predictor_encodes_a_categorical_choice_that_holds_none():
    """``input_dropout: [null, 0.0]`` (the node space): None is a value of a categorical, not
    the marker of a float column (the default search failed with KeyError 'input_dropout')."""
    import optuna

    from graphnas.nas.strategies import PredictorSearch
    from graphnas.search_spaces import SearchSpace

    space = SearchSpace.from_dict({"name": "n", "global": {"hidden_dim": [8, 16], "dropout": {"low": 0.0, "high": 0.5},
                                                           "input_dropout": [None, 0.0]}, "layers": {"mpnn": "gcn"}})
    study = optuna.create_study(direction="maximize", sampler=PredictorSearch(space, 0, 1).sampler())
    for k in range(14):  # past the random start-up: the surrogate is fitted and encodes every trial
        trial = study.ask()
        space.suggest(trial)
        study.tell(trial, (k * 7919 % 13) / 13)
    assert {t.params.get("input_dropout", "moot") for t in study.trials} >= {None, 0.0}
