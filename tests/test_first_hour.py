"""What a new user meets in the first hour (issue 46): the demo's reference designs at their
expected accuracy, transfer that never overrides the strategy asked for, and a banner that
says where the trials come from."""
from __future__ import annotations

from types import SimpleNamespace

import optuna
import pytest
from typer.testing import CliRunner

from graphnas.cli import app
from graphnas.evaluators.datasets import auto_feature_norm, load_dataset
from graphnas.evaluators.training import TrainConfig, train_model
from graphnas.nas.knowledge import MAX_DISTANCE, Fingerprint, replay_count, transfer_for
from graphnas.search_spaces.zoo import zoo_entry

runner = CliRunner()


def test_the_demo_gcn_reaches_its_expected_accuracy_on_the_demo_data(cache_dir):
    bundle = load_dataset("synthetic", cache_dir=cache_dir, feature_norms={"auto"})
    assert auto_feature_norm(bundle) == "none"  # signed features: row normalisation would distort them
    arch = zoo_entry("zoo:gcn").architecture_for("synthetic")
    assert arch.feature_norm == "auto"
    result = train_model(arch, bundle, TrainConfig(epochs=200, patience=200, latency_repeats=1, device="cpu")).result
    assert result.test_metric >= 0.85


def test_auto_feature_norm_is_row_on_bag_of_words(shared_datasets, tmp_path):
    import shutil

    shutil.copytree(shared_datasets / "Planetoid", tmp_path / "Planetoid")
    cora = load_dataset("cora", data_root=tmp_path, cache_dir=tmp_path / "cache", feature_norms={"auto"})
    assert auto_feature_norm(cora) == "row"
    assert (cora.data.x_auto.sum(1)[cora.data.x.sum(1) > 0] - 1).abs().max() < 1e-5  # rows sum to 1


def _source(name: str, fingerprint: Fingerprint):
    return SimpleNamespace(name=name, dataset=name, fingerprint=fingerprint, trials=[object()], source=name)


def test_a_far_away_source_is_not_used():
    target = Fingerprint(task="node_classification", nodes=2708, edges=10556, features=1433, classes=7,
                         homophily=0.81, clustering=0.24)
    far = Fingerprint(task="node_classification", nodes=600, edges=4800, features=32, classes=5,
                      homophily=0.3, clustering=0.01)
    origin = SimpleNamespace(entries=lambda: {"far": _source("far", far)})
    assert transfer_for(target, origin) is None  # distance 2 > MAX_DISTANCE
    near = SimpleNamespace(entries=lambda: {"far": _source("far", far), "again": _source("again", target)})
    transfer = transfer_for(target, near)
    assert [r["name"] for r in transfer.record] == ["again"] and transfer.record[0]["distance"] <= MAX_DISTANCE


def test_replays_are_a_small_share_of_the_budget():
    assert replay_count(8, 4) == 2 and replay_count(20, 15) == 5 and replay_count(30, 30) == 8
    assert replay_count(4, 0) == 0


def _search(run_dir, *extra: str) -> list[str]:
    return ["search", "--space", "tiny", "--trials", "4", "--epochs", "3", "--threads", "1", "--run-dir",
            str(run_dir), *extra]


@pytest.mark.slow
def test_random_proposes_random_trials_beside_a_filled_store_and_the_banner_names_the_sources(tmp_path, monkeypatch):
    monkeypatch.setenv("GRAPHNAS_KNOWLEDGE", f"sqlite:///{tmp_path / 'knowledge.db'}")
    assert runner.invoke(app, _search(tmp_path / "first", "--quiet")).exit_code == 0  # registered in the store

    result = runner.invoke(app, _search(tmp_path / "named", "--strategy", "random"))
    assert result.exit_code == 0, result.output
    assert "0 from the knowledge store" not in result.output and "4 proposed by strategy random" in result.output
    study = optuna.load_study(study_name="named", storage=f"sqlite:///{tmp_path / 'named' / 'study.db'}")
    assert not any("knowledge" in t.user_attrs for t in study.trials)

    result = runner.invoke(app, _search(tmp_path / "default"))
    assert result.exit_code == 0, result.output
    banner = " ".join(result.output.split())
    assert "1 from the knowledge store" in banner and "first (synthetic, distance 0.00)" in banner
    assert "--knowledge none turns this off" in banner and "3 proposed by strategy auto" in banner
    study = optuna.load_study(study_name="default", storage=f"sqlite:///{tmp_path / 'default' / 'study.db'}")
    assert sum("knowledge" in t.user_attrs for t in study.trials) == 1


@pytest.mark.slow
def test_train_keeps_the_exports_epochs_and_compare_warns_of_other_settings(tmp_path, monkeypatch):
    import graphnas.results.retrain as retrain_module

    runs = {}
    for name, epochs in (("short", "7"), ("long", "9")):
        runs[name] = tmp_path / name
        args = _search(runs[name], "--quiet", "--knowledge", "none")
        args[args.index("--epochs") + 1] = epochs
        assert runner.invoke(app, args).exit_code == 0
    export = tmp_path / "arch.json"
    assert runner.invoke(app, ["export", str(runs["short"]), "-o", str(export)]).exit_code == 0

    seen = []
    real = retrain_module.retrain

    def spy(arch, bundle, config, *args, **kwargs):
        seen.append((config.epochs, config.patience))
        return real(arch, bundle, config, *args, **kwargs)

    monkeypatch.setattr(retrain_module, "retrain", spy)
    assert runner.invoke(app, ["train", str(export), "--seeds", "1"]).exit_code == 0
    assert runner.invoke(app, ["train", str(export), "--seeds", "1", "--epochs", "3"]).exit_code == 0
    assert [e for e, _ in seen] == [7, 3]  # the export's own epochs, unless an option overrides them

    result = runner.invoke(app, ["compare", str(runs["short"]), str(runs["long"]), "-o", str(tmp_path / "c.html")])
    assert result.exit_code == 0, result.output
    assert "warning: the runs differ in train.epochs: short 7, long 9" in " ".join(result.output.split())


@pytest.mark.slow
def test_a_logged_search_prints_a_line_per_trial_and_help_groups_its_options(tmp_path):
    result = runner.invoke(app, _search(tmp_path / "r", "--knowledge", "none", "--strategy", "random"))
    assert result.exit_code == 0, result.output  # CliRunner's stdout is not a terminal
    lines = [line for line in result.output.splitlines() if "] trials " in line]
    assert [line.split("trials ")[1].split(" ")[0] for line in lines[:4]] == ["1/4", "2/4", "3/4", "4/4"]
    assert "best 0." in lines[-1]
    help_text = runner.invoke(app, ["search", "--help"]).output
    titles = [f"{t} options:" for t in ("Data", "Space", "Strategy", "Training", "Resources", "Storage")]
    positions = [help_text.index(t) for t in titles]
    assert positions == sorted(positions) and help_text.count("graphnas search") >= 3  # three examples


def test_train_prints_counts_whole():
    from graphnas.cli import _figure

    assert _figure("flops", 501439080.0) == "501,439,080" and _figure("test_metric", 0.82) == "0.8200"
