"""The search loop end to end on the embedded dataset: files, failures, Pareto, resume."""
from __future__ import annotations

import json

import optuna
import pandas as pd
import pytest
import yaml

from graphnas.evaluators import TrainConfig, TrialResult
from graphnas.nas import Search, SearchConfig
from graphnas.nas.search import count_finished
from graphnas.search_spaces import Architecture, SearchSpace

FAST = TrainConfig(epochs=15, patience=10, latency_repeats=1)


def run(tmp_path, cache_dir, name="run", resume=False, **kw) -> tuple[Search, optuna.Study]:
    config = SearchConfig(run_dir=str(tmp_path / name), cache_dir=str(cache_dir),
                          **{"trials": 4, "space": "tiny", "train": FAST, **kw})
    search = Search(config, resume=resume)
    return search, search.run()


@pytest.mark.slow  # a full search or several: over 2 s on 2 cores
def test_search_writes_the_run_directory(tmp_path, cache_dir):
    search, study = run(tmp_path, cache_dir, trials=5, strategy="random")
    d = search.run_dir
    for name in ("config.yaml", "study.db", "trials.csv", "pareto.json", "pareto.png", "best_arch.json", "summary.md"):
        assert (d / name).is_file(), name
    frame = pd.read_csv(d / "trials.csv")
    assert list(frame.columns[:10]) == ["trial", "state", "val_metric", "test_metric", "flops", "params",
                                        "latency_ms", "train_time_s", "arch_id", "arch_json"]
    assert "layer0.mpnn" in frame.columns and len(frame) == 5
    assert (frame["state"] == "COMPLETE").all() and (frame["flops"] > 0).all()
    best = json.loads((d / "best_arch.json").read_text())
    arch = Architecture.load(d / "best_arch.json")
    assert SearchSpace.preset("tiny").contains(arch)
    assert best["val_metric"] == frame["val_metric"].max()
    assert study.metric_names == ["val_accuracy", "flops"]


@pytest.mark.slow  # a full search or several: over 2 s on 2 cores
def test_pareto_json_is_the_studys_pareto_front(tmp_path, cache_dir):
    search, study = run(tmp_path, cache_dir, trials=8, strategy="nsga2", seed=3)
    front = json.loads((search.run_dir / "pareto.json").read_text())
    assert {t["trial"] for t in front["trials"]} == {t.number for t in study.best_trials}
    points = [(t["val_metric"], t["flops"]) for t in front["trials"]]
    for a in points:  # no member dominates another
        assert not any(b != a and b[0] >= a[0] and b[1] <= a[1] for b in points)


def test_failing_candidates_fail_only_their_trial(tmp_path, cache_dir):
    space = tmp_path / "space.yaml"
    # heads 3 does not divide 32 channels: every trial that picks full attention fails
    space.write_text("name: flaky\nglobal:\n  hidden_dim: 32\n  num_layers: 1\n"
                     "layers:\n  mpnn: [gcn, sage]\n  attention: [none, full]\n  heads: 3\n")
    search, study = run(tmp_path, cache_dir, space=str(space), trials=6, strategy="random", seed=2)
    states = [t.state.name for t in study.trials]
    assert len(states) == 6 and "FAIL" in states and "COMPLETE" in states
    failed = [t for t in study.trials if t.state.name == "FAIL"]
    assert all("channels divisible by heads" in t.user_attrs["error"] for t in failed)
    assert "channels divisible by heads" in (search.run_dir / "summary.md").read_text()


def test_repeated_architecture_is_not_retrained(tmp_path, cache_dir):
    space = tmp_path / "one.yaml"
    space.write_text("name: one\nglobal:\n  num_layers: 1\nlayers:\n  mpnn: gcn\n")
    _, study = run(tmp_path, cache_dir, space=str(space), trials=3)
    times = {TrialResult.from_attrs(t.user_attrs).train_time_s for t in study.trials}
    assert len(times) == 1 and all(t.state.name == "COMPLETE" for t in study.trials)


@pytest.mark.slow  # a full search or several: over 2 s on 2 cores
def test_resume_keeps_finished_trials_and_counts_the_budget(tmp_path, cache_dir):
    search, study = run(tmp_path, cache_dir, trials=3, strategy="random")
    before = {t.number: t.values for t in study.trials}
    study.ask()  # a trial left RUNNING, as by a killed process
    _, resumed = run(tmp_path, cache_dir, trials=5, strategy="random", resume=True)
    states = [t.state.name for t in resumed.trials]
    # the interrupted trial is marked FAIL and does not count against the budget of 5
    assert states[3] == "FAIL" and states.count("COMPLETE") == 5 and len(states) == 6
    assert {t.number: t.values for t in resumed.trials[:3]} == before
    first = {t.user_attrs["arch_id"] for t in resumed.trials[:3]}
    assert {t.user_attrs["arch_id"] for t in resumed.trials[4:]} - first  # new proposals, not replays


def test_an_existing_run_is_not_overwritten(tmp_path, cache_dir):
    search, _ = run(tmp_path, cache_dir, trials=1)
    config = (search.run_dir / "config.yaml").read_text()
    with pytest.raises(ValueError, match="already holds a run .* --resume"):
        Search(SearchConfig(run_dir=str(search.run_dir)))
    assert (search.run_dir / "config.yaml").read_text() == config


@pytest.mark.slow  # a full search or several: over 2 s on 2 cores
def test_two_runs_share_one_storage(tmp_path, cache_dir):
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    _, a = run(tmp_path, cache_dir, name="a", trials=1, storage=url)
    _, b = run(tmp_path, cache_dir, name="b", trials=1, storage=url)
    assert (a.study_name, b.study_name) == ("a", "b") and len(b.trials) == 1


def test_resume_with_another_dataset_is_refused(tmp_path, cache_dir):
    run(tmp_path, cache_dir, trials=1)
    with pytest.raises(ValueError, match="dataset: run has 'synthetic', now 'cora'"):
        Search(SearchConfig(run_dir=str(tmp_path / "run"), dataset="cora"), resume=True)


def test_unknown_strategy_lists_the_valid_ones(tmp_path):
    with pytest.raises(KeyError, match="registered: auto, darts, darts\\+tpe, evolution, gdas, local, nsga2, predictor, random, tpe"):
        Search(SearchConfig(run_dir=str(tmp_path / "x"), strategy="bayes"))


@pytest.mark.slow
@pytest.mark.parametrize("space", ["gps", "darts_gt"])
def test_graph_level_search_with_the_transformer_presets(space, tmp_path, cache_dir, shared_datasets):
    config = SearchConfig(space=space, dataset="mutag", data_root=str(shared_datasets), run_dir=str(tmp_path / space),
                          cache_dir=str(cache_dir), trials=2, strategy="random",
                          train=TrainConfig(epochs=2, patience=2, latency_repeats=1))
    study = Search(config).run()
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"], [t.user_attrs.get("error") for t in study.trials]
    assert study.user_attrs["data_info"]["task"] == "graph_classification"
    assert all(0 < t.values[1] for t in study.trials)


@pytest.mark.slow
def test_parallel_workers_share_one_journal_study(tmp_path, cache_dir):
    config = SearchConfig(space="tiny", run_dir=str(tmp_path / "par"), cache_dir=str(cache_dir), trials=6, workers=2,
                          strategy="random", train=TrainConfig(epochs=15, patience=15, latency_repeats=1))
    search = Search(config)
    assert search.config.storage.startswith("journal:///") and search.config.storage.endswith("journal.log")
    study = search.run()
    # Which architectures each worker draws depends on scheduling; the budget does not.
    assert count_finished(study) == 6 and len(study.trials) == 6  # the budget is not overshot
    assert "RUNNING" not in {t.state.name for t in study.trials}
    assert (tmp_path / "par" / "journal.log").is_file() and (tmp_path / "par" / "trials.csv").is_file()
    assert {t.user_attrs["worker"] for t in study.trials} <= {0, 1}


def test_two_workers_cannot_both_take_the_last_slot(tmp_path):
    # The race CI hit (7 trials for a budget of 6): both workers count one free slot, then
    # both ask. A slow ask widens the window so that, without the lock, both threads get a trial.
    import threading
    import time

    search = Search(SearchConfig(space="tiny", run_dir=str(tmp_path / "lock"), trials=2, workers=2))
    search.run_dir.mkdir(parents=True, exist_ok=True)
    study = optuna.create_study()
    study.tell(study.ask(), 1.0)  # one slot of two is left
    ask = study.ask

    def slow_ask():
        time.sleep(0.3)
        return ask()

    study.ask = slow_ask
    got = []
    threads = [threading.Thread(target=lambda: got.append(search.runner.reserve_trial(study))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(trial is None for trial in got) == [False, True] and len(study.trials) == 2


def test_workers_refuse_sqlite(tmp_path):
    with pytest.raises(ValueError, match="cannot share an SQLite storage"):
        Search(SearchConfig(run_dir=str(tmp_path / "x"), workers=2, storage=f"sqlite:///{tmp_path}/s.db"))


@pytest.mark.slow
def test_search_minimises_a_regression_metric(tmp_path, cache_dir):
    search, study = run(tmp_path, cache_dir, dataset="triangles", trials=3, strategy="random")
    assert study.directions[0].name == "MINIMIZE" and study.metric_names[0] == "val_mae"
    best = json.loads((search.run_dir / "best_arch.json").read_text())
    assert best["val_metric"] == min(t.values[0] for t in study.trials)


@pytest.mark.slow
def test_median_pruner_stops_hopeless_trials(tmp_path, cache_dir):
    config = SearchConfig(space="tiny", run_dir=str(tmp_path / "prune"), cache_dir=str(cache_dir), trials=10, objectives="metric",
                          pruner="median", strategy="random", seed=1,
                          train=TrainConfig(epochs=40, patience=40, latency_repeats=1))
    study = Search(config).run()
    states = [t.state.name for t in study.trials]
    assert len(states) == 10 and "PRUNED" in states and "COMPLETE" in states
    for t in study.trials:
        if t.state.name == "PRUNED":  # stopped after the warm-up, below the median of earlier trials
            last = max(t.intermediate_values)
            assert 10 <= last < 39 and "stopped at epoch" in t.user_attrs["pruned"]


def test_pruning_needs_a_single_objective(tmp_path):
    with pytest.raises(ValueError, match=r"Optuna prunes single-objective searches only.*--backend ray \(ASHA\)"):
        Search(SearchConfig(run_dir=str(tmp_path / "x"), pruner="hyperband"))
    with pytest.raises(KeyError, match="asha, auto, hyperband, median, none"):
        Search(SearchConfig(run_dir=str(tmp_path / "y"), objectives="metric", pruner="successive"))


def test_metric_median_rule_prunes_below_the_median_of_finished_curves():
    import optuna

    from graphnas.nas.pruners import CURVE_ATTR, MetricMedianRule

    study = optuna.create_study(directions=["maximize", "minimize"])
    for top in (0.5, 0.6, 0.7, 0.8, 0.9):  # finished trials whose curves rise to `top` by epoch 10
        trial = study.ask()
        trial.set_user_attr(CURVE_ATTR, [top * min(1, e / 10) for e in range(20)])
        study.tell(trial, [top, 1.0])
    rule = MetricMedianRule(maximize=True, startup_trials=5, warmup_epochs=10)
    assert not rule.should_prune(study, [0.1] * 10)  # still warming up
    assert rule.should_prune(study, [0.1] * 11 + [0.65])  # best 0.65 < median 0.7 at epoch 11
    assert not rule.should_prune(study, [0.1] * 11 + [0.75])
    fewer = MetricMedianRule(maximize=True, startup_trials=6)
    assert not fewer.should_prune(study, [0.0] * 15)  # too few finished trials to judge
    flat = optuna.create_study(directions=["minimize", "minimize"])  # an error metric (MAE): lower is better
    for level in (0.5, 0.6, 0.7, 0.8, 0.9):
        trial = flat.ask()
        trial.set_user_attr(CURVE_ATTR, [level] * 20)
        flat.tell(trial, [level, 1.0])
    mae = MetricMedianRule(maximize=False)
    assert not mae.should_prune(flat, [0.9] * 11 + [0.65]) and mae.should_prune(flat, [0.8] * 12)


def test_hyperband_and_multi_objective_pruner_rules(tmp_path):
    from graphnas.nas.pruners import PRUNERS

    assert type(PRUNERS.get("hyperband")()).__name__ == "HyperbandPruner"
    with pytest.raises(ValueError, match="pruned by the median or successive-halving rule on the metric objective"):
        Search(SearchConfig(run_dir=str(tmp_path / "z"), pruner="hyperband"))
    Search(SearchConfig(run_dir=str(tmp_path / "w"), pruner="median"))  # metric,flops with the median rule
    # the default is multi-fidelity where candidates train, none for a table
    assert Search(SearchConfig(run_dir=str(tmp_path / "v"))).config.pruner == "asha"
    few = SearchConfig(run_dir=str(tmp_path / "t"), train=TrainConfig(epochs=20))  # fewer epochs than two rungs
    assert Search(few).config.pruner == "none"
    assert Search(SearchConfig(run_dir=str(tmp_path / "u"), space="nas_bench_graph", evaluator="nas-bench-graph",
                               objectives="metric,latency", dataset="cora")).config.pruner == "none"


def test_metric_halving_rule_keeps_the_top_third_at_each_rung():
    import optuna

    from graphnas.nas.pruners import CURVE_ATTR, MetricHalvingRule

    study = optuna.create_study(directions=["maximize", "minimize"])
    rule = MetricHalvingRule(maximize=True, min_epochs=10, reduction_factor=3)
    assert [e for e in range(1, 100) if rule.is_rung(e)] == [10, 30, 90]
    assert not rule.should_prune(study, [0.1] * 10)  # the first trial at a rung goes on
    for top in (0.5, 0.6, 0.7, 0.8, 0.9):  # finished trials, flat at `top` for 30 epochs
        trial = study.ask()
        trial.set_user_attr(CURVE_ATTR, [top] * 30)
        study.tell(trial, [top, 1.0])
    assert not rule.should_prune(study, [0.1] * 9)  # not a rung
    # six at rung 10 (five and this one): the top 6 // 3 = 2 go on, so 0.8 is the bar
    assert rule.should_prune(study, [0.75] * 10) and not rule.should_prune(study, [0.85] * 10)
    assert not rule.should_prune(study, [0.1] * 9 + [0.95])  # its best so far counts
    lower = MetricHalvingRule(maximize=False)  # an error metric: lower is better
    assert lower.should_prune(study, [0.75] * 10) and not lower.should_prune(study, [0.55] * 10)


@pytest.mark.slow
def test_confirmation_retrains_the_top_trials_and_selects_on_their_mean(tmp_path, cache_dir):
    from graphnas.results.store import CONFIRM_ATTR

    search, study = run(tmp_path, cache_dir, trials=5, confirm=2, confirm_seeds=2)
    records = study.user_attrs[CONFIRM_ATTR]
    frame = pd.read_csv(tmp_path / "run" / "trials.csv")
    done = frame[frame["state"] == "COMPLETE"].drop_duplicates("arch_id")
    top = done.sort_values(["val_metric", "flops", "trial"], ascending=[False, True, True]).head(2)
    assert sorted(records) == sorted(str(t) for t in top["trial"])
    for trial, record in records.items():
        assert record["seeds"] == [0, 1, 2] and len(record["val"]) == len(record["test"]) == 3
        row = frame[frame["trial"] == int(trial)].iloc[0]
        assert record["val"][0] == pytest.approx(row["val_metric"])  # its own seed first
        assert row["confirmed_val"] == pytest.approx(sum(record["val"]) / 3) and row["confirm_seeds"] == 3
    assert frame["confirmed_val"].isna().sum() == len(frame) - 2
    best = json.loads((tmp_path / "run" / "best_arch.json").read_text())
    chosen = max(records, key=lambda t: (sum(records[t]["val"]), -int(t)))
    assert best["trial"] == int(chosen)
    assert "retrained with more seeds: mean over 3 seeds" in (tmp_path / "run" / "summary.md").read_text()

    again = Search(search.config, resume=True)  # nothing left: no trial and no confirmation trained again
    assert again.run().user_attrs[CONFIRM_ATTR] == records


def test_confirmation_defaults_to_three_for_twenty_trials_or_more():
    assert SearchConfig(trials=20).confirm_top == 3 and SearchConfig(trials=19).confirm_top == 0
    assert SearchConfig(trials=50, confirm=0).confirm_top == 0
    assert SearchConfig(trials=50, evaluator="nas-bench-graph").confirm_top == 0


@pytest.mark.slow
def test_trial_timeout_stops_a_slow_trial_and_records_it_failed(tmp_path, cache_dir, monkeypatch):
    import time

    from torch_geometric.nn import GCNConv

    space = tmp_path / "slow.yaml"
    space.write_text("name: slow\nglobal:\n  num_layers: 1\n  hidden_dim: [16, 32]\nlayers:\n  mpnn: gcn\n")
    forward = GCNConv.forward

    def sleepy(self, *args, **kwargs):  # an operator that hangs: 0.2 s a call
        time.sleep(0.2)
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(GCNConv, "forward", sleepy)
    slow = TrainConfig(epochs=100, patience=100, latency_repeats=1, trial_timeout=2.0)  # estimated to fit
    start = time.monotonic()
    search, study = run(tmp_path, cache_dir, space=str(space), trials=2, train=slow, references=[])
    assert time.monotonic() - start < 30  # 100 epochs of 0.4 s would be a minute
    assert [t.state.name for t in study.trials] == ["FAIL", "FAIL"]
    assert all("running past --trial-timeout 2 s" in t.user_attrs["error"] for t in study.trials)
    assert count_finished(study) == 2  # failed by the candidate: counted, not retried on resume


@pytest.mark.slow  # a full search or several: over 2 s on 2 cores
def test_a_moved_or_copied_run_directory_uses_its_own_database(tmp_path, cache_dir):
    import shutil

    from graphnas.results.store import RunStore

    search, _ = run(tmp_path, cache_dir, name="base", trials=2)
    assert "{run_dir}" in yaml.safe_load((tmp_path / "base" / "config.yaml").read_text())["storage"]
    shutil.copytree(tmp_path / "base", tmp_path / "copy")
    copied = Search(search.config.model_copy(update={"run_dir": str(tmp_path / "copy"), "trials": 3}), resume=True)
    assert len(copied.run().trials) == 3
    assert len(RunStore.open(tmp_path / "base")[1].trials) == 2  # the original is untouched
    shutil.move(tmp_path / "base", tmp_path / "moved")
    store, study = RunStore.open(tmp_path / "moved")  # report and export open it where it is now
    assert len(study.trials) == 2 and str(tmp_path / "moved") in store.storage


def test_resume_refuses_a_space_file_that_changed(tmp_path, cache_dir):
    space = tmp_path / "space.yaml"
    space.write_text("name: s\nglobal:\n  num_layers: 1\n  dropout: [0.1, 0.5]\nlayers:\n  mpnn: [gcn, sage]\n")
    search, _ = run(tmp_path, cache_dir, space=str(space), trials=1)
    space.write_text("name: s\nglobal:\n  num_layers: 1\n  dropout: [0.1, 0.6]\nlayers:\n  mpnn: [gcn, gat]\n")
    with pytest.raises(ValueError, match=r"has changed since the run began \(global.dropout.choices, layers.mpnn.choices\)"):
        Search(search.config.model_copy(update={"trials": 2}), resume=True)


def test_a_trial_records_its_figures_in_one_attribute(tmp_path, cache_dir):
    from graphnas.evaluators.result import RESULT_ATTR

    _, study = run(tmp_path, cache_dir, trials=1, references=[])
    attrs = study.trials[0].user_attrs
    # one write for every figure; the estimate is written before training, the curve for the pruner
    assert set(attrs) <= {RESULT_ATTR, "arch_id", "arch_json", "worker", "estimate", "val_curve"}
    assert attrs["estimate"]["flops"] > 0 and attrs["estimate"]["seconds_per_epoch"] > 0
    result = TrialResult.from_attrs(attrs)
    assert result.arch_id == attrs["arch_id"] and 0 <= result.val_metric <= 1 and result.flops > 0


def test_each_trial_gets_one_thread_unless_told_and_the_run_records_it(tmp_path, monkeypatch):
    import torch
    import yaml


    base = dict(space="nas_bench_graph", evaluator="nas-bench-graph", dataset="cora", objectives="metric", trials=3)
    assert Search(SearchConfig(**base, run_dir=str(tmp_path / "two"), workers=2), claim=False).config.threads == 1
    assert Search(SearchConfig(**base, run_dir=str(tmp_path / "given"), threads=3), claim=False).config.threads == 3
    search = Search(SearchConfig(**base, run_dir=str(tmp_path / "one"), threads=4))
    before, seen = torch.get_num_threads(), []
    from graphnas.evaluators.nas_bench_graph import NasBenchGraph

    evaluate = NasBenchGraph.evaluate
    monkeypatch.setattr(NasBenchGraph, "evaluate",
                        lambda self, arch, report=None: (seen.append(torch.get_num_threads()), evaluate(self, arch))[1])
    search.run()
    assert seen == [4, 4, 4] and torch.get_num_threads() == before  # set for the trials, restored after
    assert yaml.safe_load((tmp_path / "one" / "config.yaml").read_text())["threads"] == 4
