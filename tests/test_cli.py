"""The command line: the three commands, their files and their error messages."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from graphnas.cli import app

runner = CliRunner()


def test_ops_json_lists_every_kind():
    result = runner.invoke(app, ["ops", "--json"])
    assert result.exit_code == 0
    listing = json.loads(result.output)
    assert set(listing) == {"mpnn", "attention", "encoding", "norm", "pooling", "activation"}
    assert "gatedgcn" in listing["mpnn"] and "performer" in listing["attention"]
    assert all(desc for kind in listing.values() for desc in kind.values())


def test_spaces_json_lists_presets_with_sizes():
    result = runner.invoke(app, ["spaces", "--json"])
    sizes = {s["name"]: s["size"] for s in json.loads(result.output)}
    assert sizes["nas_bench_graph"] == 26206 and sizes["tiny"] == 4440  # distinct cells, as the benchmark counts
    defaults = {s["name"]: s["default_for"] for s in json.loads(result.output)}
    assert defaults["node"] == "node_classification" and defaults["tiny"] == "every other task"
    assert defaults["graph"] == "graph_classification"


def test_spaces_validate(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text("name: g\nlayers:\n  mpnn: [gcn, gin]\n")
    result = runner.invoke(app, ["spaces", "validate", str(good)])
    assert result.exit_code == 0 and "valid space g" in result.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: b\nlayers:\n  mpnn: [gcn, gin, gcnn]\n")
    result = runner.invoke(app, ["spaces", "validate", str(bad)])
    assert result.exit_code == 2
    assert "layers.mpnn[2]" in result.output and "gatedgcn" in result.output


@pytest.mark.slow  # a full search or several: over 2 s on 2 cores
def test_search_command_writes_files_and_prints_a_table(tmp_path, cache_dir):
    run_dir = tmp_path / "run"
    args = ["search", "--trials", "2", "--epochs", "5", "--run-dir", str(run_dir), "--cache-dir", str(cache_dir),
            "--strategy", "random"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "Top trials by validation accuracy" in result.output
    assert (run_dir / "pareto.json").is_file() and (run_dir / "best_arch.json").is_file()
    result = runner.invoke(app, ["search", "--resume", "--run-dir", str(run_dir), "--trials", "3", "--quiet",
                                 "--cache-dir", str(cache_dir)])
    assert result.exit_code == 0, result.output
    assert len((run_dir / "trials.csv").read_text().strip().splitlines()) == 1 + 3


def test_search_errors_are_clear(tmp_path):
    result = runner.invoke(app, ["search", "--dataset", "nope", "--run-dir", str(tmp_path / "r"), "--quiet"])
    assert result.exit_code == 2 and "unknown dataset 'nope'; known datasets:" in result.output
    result = runner.invoke(app, ["search", "--space", str(tmp_path / "missing.yaml")])
    assert result.exit_code == 2 and "space file not found" in result.output
    result = runner.invoke(app, ["search", "--objectives", "metric,size", "--quiet", "--run-dir", str(tmp_path / "o")])
    assert result.exit_code == 2 and "unknown objective 'size'" in result.output


@pytest.mark.slow
def test_python_cli_py_works():
    out = subprocess.run([sys.executable, "cli.py", "spaces", "--json"], capture_output=True, text=True,
                         cwd=__import__("pathlib").Path(__file__).resolve().parents[1])
    assert out.returncode == 0 and "nas_bench_graph" in out.stdout


@pytest.mark.slow  # a full search or several: over 2 s on 2 cores
def test_export_and_train_commands(tmp_path, cache_dir):
    run_dir = tmp_path / "run"
    assert runner.invoke(app, ["search", "--trials", "2", "--epochs", "5", "--run-dir", str(run_dir), "--quiet",
                               "--cache-dir", str(cache_dir)]).exit_code == 0
    arch = tmp_path / "arch.json"
    result = runner.invoke(app, ["export", str(run_dir), "--best", "-o", str(arch)])
    assert result.exit_code == 0, result.output
    assert json.loads(arch.read_text())["format"] == "graphnas-architecture"
    result = runner.invoke(app, ["train", str(arch), "--seeds", "2", "--epochs", "5", "--device", "cpu",
                                 "--cache-dir", str(cache_dir), "-o", str(tmp_path / "model")])
    assert result.exit_code == 0, result.output
    assert "2 seeds" in result.output and "test_metric" in result.output
    assert {p.name for p in (tmp_path / "model").iterdir()} == {"arch.json", "figures.json", "seed0.pt", "seed1.pt"}
    result = runner.invoke(app, ["export", str(run_dir), "--trial", "0", "--pareto", "0"])
    assert result.exit_code == 2 and "at most one of" in result.output
    result = runner.invoke(app, ["train", str(tmp_path / "nope.json")])
    assert result.exit_code == 2 and "nope.json: file not found" in result.output


def test_search_refuses_quadratic_attention_on_a_sampled_graph(tmp_path, shared_datasets, cache_dir):
    space = tmp_path / "global.yaml"
    space.write_text("name: global\nlayers:\n  attention: [linear, full, softplus]\n")
    args = ["search", "--space", str(space), "--dataset", "citeseer", "--data-root", str(shared_datasets),
            "--cache-dir", str(cache_dir), "--sample-above-nodes", "1000", "--fanouts", "5,3", "--quiet",
            "--run-dir", str(tmp_path / "run")]
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert "space 'global' (layers.attention) uses attention full, softplus, which scores all N^2" in result.output
    result = runner.invoke(app, [*args[:-1], str(tmp_path / "run2"), "--fanouts", "5,x"])
    assert result.exit_code == 2 and "--fanouts: expected comma-separated integers, got '5,x'" in result.output


@pytest.mark.slow
def test_mutag_search_with_median_pruner_prunes_some_trials(tmp_path, shared_datasets, cache_dir):
    """The default objectives (metric, flops) are two: the median rule on the metric prunes
    (random search: a strategy that learns may propose no trial below the median)."""
    import pandas as pd

    run_dir = tmp_path / "mutag"
    result = runner.invoke(app, ["search", "--dataset", "mutag", "--space", "tiny", "--trials", "10", "--pruner", "median",
                                 "--strategy", "random", "--epochs", "40", "--data-root", str(shared_datasets),
                                 "--cache-dir", str(cache_dir), "--run-dir", str(run_dir), "--quiet"])
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(run_dir / "trials.csv")
    states = frame["state"].value_counts().to_dict()
    assert len(frame) == 10 and states.get("PRUNED", 0) >= 1 and states.get("COMPLETE", 0) >= 5
    assert frame.loc[frame["state"] == "COMPLETE", "val_metric"].between(0.5, 1).all()


def test_zoo_lists_the_reference_designs():
    result = runner.invoke(app, ["zoo", "--json"])
    assert result.exit_code == 0
    listing = {e["name"]: e for e in json.loads(result.output)}
    assert {"gcn", "gat", "sage", "gin", "graphgps", "darts_gt"} <= set(listing)
    assert listing["gat"]["published"] == {"cora": 83.0, "citeseer": 72.5}
    assert listing["gat"]["protocol"]["optimizer"] == "adam" and listing["gin"]["protocol"]["folds"] == 10
    assert "Velickovic" in listing["gat"]["source"]["paper"]
    assert "Zoo of reference designs" in runner.invoke(app, ["zoo"]).output


def test_train_takes_a_zoo_name_with_its_protocol(cache_dir):
    result = runner.invoke(app, ["train", "zoo:gcn", "--dataset", "synthetic", "--seeds", "2", "--epochs", "5",
                                 "--cache-dir", str(cache_dir)])
    assert result.exit_code == 0, result.output
    assert "gcn on synthetic, 2 seeds" in result.output
    result = runner.invoke(app, ["train", "zoo:gatt", "--dataset", "synthetic"])
    assert result.exit_code == 2 and "unknown zoo entry 'gatt'; the zoo has:" in result.output


def test_train_folds_reports_over_folds(shared_datasets, cache_dir):
    result = runner.invoke(app, ["train", "zoo:gin", "--dataset", "mutag", "--seeds", "1", "--folds", "3",
                                 "--epochs", "3", "--data-root", str(shared_datasets), "--cache-dir", str(cache_dir)])
    assert result.exit_code == 0, result.output
    assert "gin on mutag, 1 seeds x 3 folds" in result.output


@pytest.mark.slow  # a full search or several: over 2 s on 2 cores
def test_search_protocol_errica_prints_the_folds(tmp_path, shared_datasets, cache_dir):
    args = ["search", "--dataset", "mutag", "--folds", "2", "--protocol", "errica", "--trials", "1", "--epochs", "2",
            "--strategy", "random", "--reference", "none", "--data-root", str(shared_datasets),
            "--cache-dir", str(cache_dir), "--run-dir", str(tmp_path / "e")]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "Errica et al.'s protocol on mutag" in result.output and "test over 2 folds" in result.output
    assert (tmp_path / "e" / "fold_1" / "trials.csv").is_file()
    result = runner.invoke(app, args + ["--resume"])  # both folds done: the table again, nothing retrained
    assert result.exit_code == 0 and "test over 2 folds" in result.output, result.output
    result = runner.invoke(app, ["search", "--dataset", "mutag", "--protocol", "errica", "--run-dir", str(tmp_path / "f")])
    assert result.exit_code == 2 and "give --folds K" in result.output


def test_references_run_first_tagged_and_are_checked(tmp_path, cache_dir):
    import pandas as pd

    run_dir = tmp_path / "ref"
    result = runner.invoke(app, ["search", "--trials", "3", "--epochs", "3", "--run-dir", str(run_dir), "--quiet",
                                 "--cache-dir", str(cache_dir), "--reference", "zoo:gcn,zoo:gat"])
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(run_dir / "trials.csv")
    assert list(frame["reference"].fillna("")) == ["zoo:gcn", "zoo:gat", ""]
    assert list(frame["params"][:1]) == [32 * 16 + 16 + 16 * 5 + 5]  # Kipf's GCN on synthetic (32 features, 5 classes)
    result = runner.invoke(app, ["search", "--trials", "3", "--run-dir", str(tmp_path / "r2"), "--quiet",
                                 "--reference", "zoo:gin"])
    assert result.exit_code == 2 and "--reference zoo:gin: the design is not in space 'node'" in result.output
    assert not (tmp_path / "r2").exists()  # refused before any work


def test_a_search_whose_every_trial_failed_says_why_and_exits_1(tmp_path, cache_dir):
    space = tmp_path / "broken.yaml"  # heads 3 does not divide 32 channels: every trial fails
    space.write_text("name: broken\nglobal:\n  hidden_dim: 32\n  num_layers: 1\n"
                     "layers:\n  mpnn: [gcn, sage]\n  attention: full\n  heads: 3\n")
    result = runner.invoke(app, ["search", "--space", str(space), "--trials", "2", "--epochs", "2", "--quiet",
                                 "--run-dir", str(tmp_path / "r"), "--cache-dir", str(cache_dir)])
    assert result.exit_code == 1, result.output
    assert "no trial completed" in result.output and "2 x ValueError" in result.output
    assert "channels divisible by heads" in result.output and not (tmp_path / "r" / "best_arch.json").exists()


@pytest.mark.slow  # a full search or several: over 2 s on 2 cores
def test_search_banner_and_config_say_what_the_node_features_are(tmp_path, shared_datasets, cache_dir):
    import yaml

    result = runner.invoke(app, ["search", "--dataset", "imdb-binary", "--space", "tiny", "--trials", "1", "--epochs", "1",
                                 "--reference", "none", "--data-root", str(shared_datasets), "--cache-dir",
                                 str(cache_dir), "--run-dir", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    assert "node features: one-hot degree 0..64" in result.output
    config = yaml.safe_load((tmp_path / "r" / "config.yaml").read_text())
    assert config["node_features"].startswith("one-hot degree")
    export = runner.invoke(app, ["export", str(tmp_path / "r"), "-o", str(tmp_path / "a.json")])
    assert export.exit_code == 0 and "one-hot degree" in (tmp_path / "a.json").read_text()


def test_help_shows_every_default_and_no_placeholder_for_flags():
    result = runner.invoke(app, ["search", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    assert "Trial budget, counting finished trials of a resumed run [default: 20]" in text
    assert "Maximum training epochs per trial [default: 200]" in text
    assert "pip install 'graphnas[ray]'" in text  # brackets are text, not markup
    assert "<bool>" not in text and "--quiet No progress bar" in text


def _one_line_exit_2(result) -> str:
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error:"), result.output
    assert "graphnas search:" not in result.output  # no banner: refused before any work
    return lines[0]


def test_errors_before_work_are_one_line_and_exit_2(tmp_path, monkeypatch):
    from graphnas.search_spaces.zoo import zoo_entry

    gcnn = tmp_path / "gcnn.json"
    gcnn.write_text(zoo_entry("zoo:gcn").architecture.to_json().replace('"gcn"', '"gcnn"', 1))
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "binary.yaml").write_bytes(bytes(range(128, 256)))
    (tmp_path / "key.yaml").write_text("name: k\nhiden_dim: [64]\nlayers:\n  mpnn: [gcn]\n")
    run = ["--run-dir", str(tmp_path / "r"), "--quiet"]
    cases = {
        ("train", str(gcnn), "--dataset", "synthetic"): "unknown mpnn operator 'gcnn' (did you mean 'gcn'?)",
        ("train", str(tmp_path / "list.json"), "--dataset", "synthetic"): "expected a JSON object",
        ("search", "--trials", "0", *run): "--trials must be at least 1",
        ("search", "--epochs", "0", *run): "--epochs must be at least 1",
        ("search", "--space", str(tmp_path / "binary.yaml"), *run): "binary.yaml: not a text file",
        ("search", "--space", "tinyy", *run): "did you mean the preset 'tiny'?",
        ("search", "--space", str(tmp_path / "key.yaml"), *run): "hiden_dim: unknown field; did you mean 'global.hidden_dim'?",
        ("search", "--metric", "foo", *run): "unknown metric 'foo'; registered: accuracy",
        ("search", "--objectives", "metric,foo", *run): "--objectives: unknown objective 'foo'",
        ("search", "--dataset", "nope", *run): "unknown dataset 'nope'",
    }
    for args, expected in cases.items():
        assert expected in _one_line_exit_2(runner.invoke(app, list(args))), args
    assert not (tmp_path / "r").exists()


def test_a_cuda_device_without_cuda_is_refused_before_work(tmp_path, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # as on this CPU machine, also on a GPU one
    for args in (["search", "--device", "cuda", "--run-dir", str(tmp_path / "r"), "--quiet"],
                 ["train", "zoo:gcn", "--dataset", "synthetic", "--device", "cuda:0"]):
        assert "CUDA is not available on this machine" in _one_line_exit_2(runner.invoke(app, args))
    assert "expected auto, cpu, cuda or cuda:N" in _one_line_exit_2(
        runner.invoke(app, ["search", "--device", "tpu", "--run-dir", str(tmp_path / "r"), "--quiet"]))


@pytest.mark.slow  # a full search or several: over 2 s on 2 cores
def test_validate_ops_and_zoo_do_not_import_pyg(tmp_path):
    """Issue 15's start-up target: reading the vocabulary or a space file must not pay for
    PyG's import (1.6 s beyond torch's); PyG is imported when a model is first built."""
    space = tmp_path / "space.yaml"
    space.write_text("name: s\nlayers:\n  mpnn: [gcn, gin, dagnn]\n  attention: [none, performer]\n")
    probe = ("import sys\nfrom cli import app\n"
             "for args in (['spaces', 'validate', sys.argv[1]], ['ops', '--json'], ['zoo', '--json']):\n"
             "    try:\n        app(args)\n    except SystemExit as stop:\n        assert not stop.code, (args, stop.code)\n"
             "loaded = sorted(m for m in sys.modules if m.startswith('torch_geometric'))\n"
             "print('PYG', loaded[:3])\n")
    out = subprocess.run([sys.executable, "-c", probe, str(space)], capture_output=True, text=True, timeout=120,
                         cwd=str(__import__("pathlib").Path(__file__).resolve().parents[1]))
    assert out.returncode == 0, out.stderr[-2000:]
    assert "PYG []" in out.stdout, out.stdout[-500:]


def test_a_database_url_without_its_driver_is_one_line(tmp_path):
    """mysql+pymysql:// without PyMySQL installed: one line naming the driver, no traceback."""
    pytest.importorskip("sqlalchemy")
    try:
        import pymysql  # noqa: F401
        pytest.skip("PyMySQL is installed here")
    except ImportError:
        pass
    result = runner.invoke(app, ["search", "--storage", "mysql+pymysql://u@host/db", "--run-dir",
                                 str(tmp_path / "r"), "--quiet"])
    assert "no database driver installed for it (pymysql)" in _one_line_exit_2(result)
    assert not (tmp_path / "r").exists()


@pytest.mark.slow  # a full search or several: over 2 s on 2 cores
def test_verbose_logs_the_engine_and_quiet_default_does_not(tmp_path):
    args = ["search", "--space", "nas_bench_graph", "--evaluator", "nas-bench-graph", "--dataset", "cora",
            "--objectives", "metric", "--trials", "3", "--quiet", "--knowledge", "none"]
    plain = runner.invoke(app, [*args, "--run-dir", str(tmp_path / "plain")])
    assert plain.exit_code == 0, plain.output
    assert "trial 0" not in plain.output
    loud = runner.invoke(app, ["-v", *args, "--run-dir", str(tmp_path / "loud")])
    assert loud.exit_code == 0, loud.output
    assert "new search of nas_bench_graph" in loud.output and "trial 2 COMPLETE 0." in loud.output
    runner.invoke(app, ["spaces", "--json"])  # a later command in this process: back to warnings only
    import logging
    assert logging.getLogger("graphnas").level == logging.WARNING


@pytest.mark.slow  # a full search or several: over 2 s on 2 cores
def test_config_replays_a_run_and_options_override_it(tmp_path):
    import optuna

    first = tmp_path / "first"
    args = ["search", "--space", "nas_bench_graph", "--evaluator", "nas-bench-graph", "--dataset", "citeseer",
            "--objectives", "metric", "--trials", "4", "--seed", "3", "--quiet", "--knowledge", "none"]
    assert runner.invoke(app, [*args, "--run-dir", str(first)]).exit_code == 0
    replay = runner.invoke(app, ["search", "--config", str(first / "config.yaml"), "--run-dir", str(tmp_path / "again"),
                                 "--quiet"])
    assert replay.exit_code == 0, replay.output
    longer = runner.invoke(app, ["search", "--config", str(first / "config.yaml"), "--trials", "6",
                                 "--run-dir", str(tmp_path / "longer"), "--quiet"])
    assert longer.exit_code == 0, longer.output

    def trials(name):
        study = optuna.load_study(study_name=name, storage=f"sqlite:///{tmp_path / name / 'study.db'}")
        return [(t.params, t.values) for t in study.trials]
    assert trials("again") == trials("first") and len(trials("first")) == 4
    assert trials("longer")[:4] == trials("first") and len(trials("longer")) == 6


def test_a_bad_config_file_is_one_line_naming_the_setting(tmp_path):
    bad = tmp_path / "run.yaml"
    bad.write_text("dataset: synthetic\ntrain: {epochs: 3, epochz: 4}\n")
    result = runner.invoke(app, ["search", "--config", str(bad), "--run-dir", str(tmp_path / "r"), "--quiet"])
    assert result.exit_code == 2
    assert "train.epochz: unknown setting" in result.output and len(result.output.strip().splitlines()) <= 2
    assert not (tmp_path / "r").exists()
    bad.write_text("- a list\n")
    result = runner.invoke(app, ["search", "--config", str(bad), "--quiet"])
    assert result.exit_code == 2 and "expected a mapping of settings" in result.output


def test_search_help_says_the_defaults_of_the_settings_models():
    from graphnas.cli import MODEL_DEFAULTS, _model_default
    from graphnas.evaluators import TrainConfig

    text = " ".join(runner.invoke(app, ["search", "--help"], terminal_width=200).output.split())
    for option, (section, field) in MODEL_DEFAULTS.items():
        said = f"[default: {_model_default(section, field)}]"
        assert said in text, (option, said)
    assert f"[default: {TrainConfig().epochs}]" in text and "[default: 10,10]" in text


def _earlier_output(out) -> dict:
    out.mkdir()
    for name in ("arch.json", "seed0.pt", "seed1.pt", "seed2.pt", "figures.json"):
        (out / name).write_text(f"earlier {name}")
    return {p.name: p.read_text() for p in out.iterdir()}


def test_train_o_refuses_an_earlier_output_and_replaces_it_whole_with_overwrite(tmp_path, cache_dir):
    out = tmp_path / "model"
    earlier = _earlier_output(out)
    args = ["train", "zoo:gcn", "--dataset", "synthetic", "--seeds", "1", "--epochs", "2", "--cache-dir", str(cache_dir),
            "-o", str(out)]
    line = _one_line_exit_2(runner.invoke(app, args))
    assert f"-o {out} already holds arch.json, figures.json, seed0.pt, seed1.pt ..." in line and "--overwrite" in line
    assert {p.name: p.read_text() for p in out.iterdir()} == earlier
    (tmp_path / "file").write_text("x")
    assert "a file, not a directory" in _one_line_exit_2(runner.invoke(app, [*args[:-1], str(tmp_path / "file")]))
    result = runner.invoke(app, [*args, "--overwrite"])
    assert result.exit_code == 0, result.output
    assert {p.name for p in out.iterdir()} == {"arch.json", "figures.json", "seed0.pt"}  # nothing of the earlier one
    assert json.loads((out / "figures.json").read_text())["seeds"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "model"]  # no staging directory left beside it


def test_train_o_interrupted_leaves_the_earlier_output_as_it_was(tmp_path, cache_dir, monkeypatch):
    import graphnas.results.retrain as retrain_module

    out = tmp_path / "model"
    earlier = _earlier_output(out)
    trained = []

    def interrupted_after_one_seed(*args, **kwargs):
        if trained:
            raise KeyboardInterrupt  # Ctrl-C in the second seed, after seed0.pt is written
        trained.append(1)
        return train_model(*args, **kwargs)

    train_model = retrain_module.train_model
    monkeypatch.setattr(retrain_module, "train_model", interrupted_after_one_seed)
    result = runner.invoke(app, ["train", "zoo:gcn", "--dataset", "synthetic", "--seeds", "2", "--epochs", "2",
                                 "--cache-dir", str(cache_dir), "-o", str(out), "--overwrite"])
    assert result.exit_code == 130 and trained
    assert {p.name: p.read_text() for p in out.iterdir()} == earlier  # no new seed0.pt beside the old seed1.pt
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


@pytest.mark.slow
def test_train_o_killed_mid_way_leaves_the_earlier_output_as_it_was(tmp_path, cache_dir):
    import signal
    import time
    from pathlib import Path

    out = tmp_path / "model"
    earlier = _earlier_output(out)
    proc = subprocess.Popen([sys.executable, "cli.py", "train", "zoo:gcn", "--dataset", "synthetic", "--seeds", "3",
                             "--epochs", "50", "--patience", "50", "--cache-dir", str(cache_dir), "-o", str(out),
                             "--overwrite"], cwd=Path(__file__).resolve().parents[1],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(".model.partial-*/seed0.pt")) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)  # mid-way: seed0.pt written, the other seeds not
    proc.wait()
    assert list(tmp_path.glob(".model.partial-*/seed0.pt")), "killed before its first seed was written"
    assert {p.name: p.read_text() for p in out.iterdir()} == earlier
