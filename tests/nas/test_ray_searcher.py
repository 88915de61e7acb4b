"""The Ray searcher on Ray's public API: asks the study, tells each outcome (no Ray started)."""
from __future__ import annotations

import optuna
import pytest

pytest.importorskip("ray", reason="Ray Tune is the optional extra graphnas[ray]")

from ray.tune.search import Searcher  # noqa: E402

from graphnas.results.objectives import parse_objectives  # noqa: E402
from graphnas.nas.ray_backend import StudySearcher  # noqa: E402
from graphnas.search_spaces import Architecture, SearchSpace  # noqa: E402


def test_the_searcher_asks_the_study_and_tells_completed_failed_and_stopped_trials(tmp_path):
    space = SearchSpace.preset("tiny")
    objectives = parse_objectives("metric,flops", "maximize")
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=optuna.samplers.RandomSampler(seed=0))
    searcher = StudySearcher(study, space, objectives)
    assert isinstance(searcher, Searcher) and not any(a.startswith("_ot") for a in vars(searcher))
    configs = {tid: searcher.suggest(tid) for tid in ("a", "b", "c")}
    arch = Architecture.from_json(configs["a"]["arch_json"])
    assert space.contains(arch) and len(study.trials) == 3
    result = {"arch_id": arch.arch_id, "arch_json": configs["a"]["arch_json"], "metric": "accuracy",
              "val_metric": 0.8, "test_metric": 0.7, "flops": 1000, "params": 10, "latency_ms": 1.0,
              "train_time_s": 1.0, "epochs": 3, "best_epoch": 2, "device": "cpu", "final": True, "node": "n1"}
    searcher.on_trial_complete("a", result)
    searcher.on_trial_complete("b", {"error": "ValueError: kv_source='mpnn' needs ...", "final": True})
    searcher.on_trial_result("c", {"val_metric": 0.5, "epoch": 10, "node": "n2"})
    searcher.on_trial_complete("c", {"val_metric": 0.5, "epoch": 10})
    searcher.on_trial_complete("c", {"val_metric": 0.5, "epoch": 10})  # told once only
    a, b, c = study.trials
    assert a.state == optuna.trial.TrialState.COMPLETE and a.values == [0.8, 1000.0]
    assert a.user_attrs["node"] == "n1" and a.user_attrs["arch_id"] == arch.arch_id
    assert b.state == optuna.trial.TrialState.FAIL and "kv_source" in str(b.user_attrs)
    assert c.state == optuna.trial.TrialState.PRUNED and c.user_attrs["node"] == "n2"
    searcher.save_to_dir(str(tmp_path))  # the study is the state: nothing written, no warning
    assert not list(tmp_path.iterdir())
