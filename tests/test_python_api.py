"""The Python API (issue 44): the README's example runs as written, and the same seeded search
through the CLI gives the same trials."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import graphnas
from graphnas.cli import app

REPO = Path(__file__).resolve().parents[1]


def readme_python_example() -> str:
    text = (REPO / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, "the README has no python example"
    return blocks[0]


@pytest.mark.slow  # two 3-trial searches and a training
def test_the_readme_example_runs_and_the_cli_gives_the_same_trials(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code = readme_python_example()
    assert len(code.strip().splitlines()) <= 12
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)  # noqa: S102 (our own README)
    result, model = scope["result"], scope["model"]
    out = capsys.readouterr().out
    assert result.best.arch_id in out and "parameters" in out
    assert len(result.trials) == 3 and isinstance(model, torch.nn.Module) and not model.training
    saved = tmp_path / "runs" / "python-example" / "data.pt"
    assert saved.is_file() and result.run_dir == Path("runs/python-example")
    # the same seeded search through the command line, on the data the API saved
    cli = CliRunner().invoke(app, ["search", "--dataset", str(saved), "--trials", "3", "--epochs", "20",
                                   "--seed", "0", "--run-dir", str(tmp_path / "cli"), "--quiet"])
    assert cli.exit_code == 0, cli.output
    ours, theirs = result.trials, graphnas.SearchResult.open(tmp_path / "cli").trials
    assert list(ours["arch_id"]) == list(theirs["arch_id"])
    assert list(ours["val_metric"]) == pytest.approx(list(theirs["val_metric"]), abs=1e-6)


def test_settings_are_the_engine_models_fields():
    config = graphnas.search_config(trials=4, epochs=7, patience=3, dataset="synthetic")
    assert isinstance(config, graphnas.SearchConfig)
    assert (config.trials, config.train.epochs, config.train.patience) == (4, 7, 3)
    with pytest.raises(TypeError, match="unknown setting 'epoch'.*SearchConfig.*TrainConfig"):
        graphnas.search_config(epoch=7)


def test_a_space_given_as_a_dict_is_written_into_the_run(tmp_path):
    from graphnas.api import _space_setting

    raw = {"name": "s", "version": 1, "global": {"hidden_dim": [8, 16], "num_layers": 1}, "layers": {"mpnn": "gcn"}}
    path = _space_setting(raw, tmp_path)
    assert Path(path).parent == tmp_path and graphnas.Space.load(path).size() == 2
    assert _space_setting("tiny", tmp_path) == "tiny" and _space_setting("auto", tmp_path) is None
    assert _space_setting(graphnas.Space.preset("tiny"), tmp_path) == "tiny"


def test_data_that_is_no_graph_is_refused_in_one_line():
    with pytest.raises(TypeError, match="data: expected a registered dataset name.*got int"):
        graphnas.search(42, trials=1)


@pytest.mark.slow  # trains 2 seeds
def test_train_retrains_an_architecture_on_in_memory_data(tmp_path):
    from graphnas.evaluators.datasets import contextual_sbm

    data, _ = contextual_sbm(num_nodes=200)
    report = graphnas.train("zoo:gcn", data, seeds=2, epochs=5, cache_dir=tmp_path)
    assert len(report.results) == 2 and 0 <= report.stat("val_metric")[0] <= 1
