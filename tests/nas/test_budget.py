"""A candidate's cost is known before it trains, and one that cannot fit its trial's budget
is never trained (issue 42): the estimate, the refusal, and --timeout over the whole search."""
from __future__ import annotations

import optuna
import pytest
import torch
from torch_geometric.data import Data
from typer.testing import CliRunner

from graphnas.cli import app
from graphnas.evaluators.estimate import CostEstimate, TrialBudget, estimate_cost
from graphnas.evaluators.result import RESULT_ATTR
from graphnas.search_spaces import Architecture, LayerArch

runner = CliRunner()


def _graph(path, nodes: int, seed: int = 0) -> None:
    gen = torch.Generator().manual_seed(seed)
    edge_index = torch.randint(0, nodes, (2, 8 * nodes), generator=gen)
    y = torch.randint(0, 3, (nodes,), generator=gen)
    torch.save(Data(x=torch.randn(nodes, 16, generator=gen), edge_index=edge_index, y=y), path)


def _arch(attention: str, layers: int = 2, width: int = 32) -> Architecture:
    return Architecture(space="t", hidden_dim=width, num_layers=layers, dropout=0.0, lr=0.01, weight_decay=0.0,
                        layers=tuple(LayerArch(mpnn="gcn", attention=attention, heads=4) for _ in range(layers)))


def test_the_estimate_grows_with_the_graph_as_each_form_does(tmp_path):
    from graphnas.evaluators.datasets import load_dataset

    small, large = tmp_path / "small.pt", tmp_path / "large.pt"
    _graph(small, 500)
    _graph(large, 2000)
    bundles = [load_dataset(str(p), cache_dir=tmp_path / "cache") for p in (small, large)]
    mpnn = [estimate_cost(_arch("none"), b) for b in bundles]
    full = [estimate_cost(_arch("full"), b) for b in bundles]
    assert mpnn[0].attention_bytes == 0 and 3.5 < mpnn[1].flops / mpnn[0].flops < 4.5  # linear in the graph
    # quadratic: 16x the scores for 4x the nodes; scores and probabilities of 4 heads, 2 layers, float32
    assert full[1].attention_bytes / full[0].attention_bytes == pytest.approx(16)
    assert full[1].attention_bytes == 2 * (2 * 4 * 2000 ** 2 * 4)
    assert full[1].flops > 10 * mpnn[1].flops and full[1].seconds_per_epoch > 0


def test_a_budget_refuses_what_cannot_fit_and_says_why():
    estimate = CostEstimate(flops=10 ** 10, attention_bytes=2 ** 31, seconds_per_epoch=0.5)
    assert TrialBudget(None, 2 ** 32).refusal(estimate, 100) is None
    assert "2.0 GiB of scores, more than the 1.0 GiB" in TrialBudget(None, 2 ** 30).refusal(estimate, 100)
    assert "100 epochs of 10 GFLOPs forward take at least 50 s" in TrialBudget(10, 2 ** 32).refusal(estimate, 100)


@pytest.mark.slow
def test_dense_attention_over_budget_is_never_trained(tmp_path):
    graph = tmp_path / "graph.pt"
    _graph(graph, 8000)
    space = tmp_path / "space.yaml"
    space.write_text("name: dense\nversion: 1\nglobal:\n  hidden_dim: [16, 32]\n  num_layers: 2\n  dropout: 0.0\n"
                     "  lr: 0.01\n  weight_decay: 0.0\n  input_projection: true\n"
                     "layers:\n  mpnn: gcn\n  attention: [none, full]\n  heads: 4\n")
    run_dir = tmp_path / "r"
    result = runner.invoke(app, ["search", "--dataset", str(graph), "--space", str(space), "--trials", "2",
                                 "--epochs", "60", "--trial-timeout", "8", "--pruner", "none", "--strategy", "random", "--confirm", "0",
                                 "--reference", "none", "--threads", "1", "--quiet", "--run-dir", str(run_dir)])
    assert result.exit_code == 0, result.output
    study = optuna.load_study(study_name="r", storage=f"sqlite:///{run_dir / 'study.db'}")
    dense = [t for t in study.trials if '"full"' in t.user_attrs["arch_json"]]
    assert dense, "the random search drew no dense-attention candidate"
    for t in dense:  # refused before training: no figures, its estimate recorded, the reason given
        assert t.state.name == "FAIL" and RESULT_ATTR not in t.user_attrs
        assert t.user_attrs["error"].startswith("over budget, not trained: 51 epochs of")  # patience 50
        assert t.user_attrs["estimate"]["attention_mib"] > 1000
    assert sum(t.state.name == "COMPLETE" for t in study.trials) == 2  # refusals do not take the budget
    assert "not trained" in result.output


@pytest.mark.slow
def test_timeout_bounds_the_whole_search_confirmation_included(tmp_path):
    import time

    run_dir = tmp_path / "r"
    start = time.monotonic()
    result = runner.invoke(app, ["search", "--space", "tiny", "--trials", "50", "--epochs", "60", "--patience", "60",
                                 "--pruner", "none", "--timeout", "8", "--confirm", "3", "--strategy", "random",
                                 "--threads", "1", "--quiet", "--run-dir", str(run_dir)])
    elapsed = time.monotonic() - start
    assert result.exit_code == 0, result.output
    assert elapsed < 8 + 4, elapsed  # the search, its confirmation and its outputs (a trial stops within an epoch)
    study = optuna.load_study(study_name="r", storage=f"sqlite:///{run_dir / 'study.db'}")
    states = [t.state.name for t in study.trials]
    assert "COMPLETE" in states and len(states) < 50
    # near the deadline a trial is either stopped by it or, estimated not to fit, never begun
    assert any("--timeout 8 s ran out" in t.user_attrs.get("pruned", "") or t.user_attrs.get("over_budget")
               for t in study.trials)


def test_a_reference_design_trains_to_the_end_under_successive_halving(tmp_path, monkeypatch):
    from graphnas.nas import pruners

    class Always:  # a rule that would stop every trial at its first report
        def __init__(self, maximize: bool) -> None:
            pass

        def should_prune(self, study, curve) -> bool:
            return True

    monkeypatch.setitem(pruners.METRIC_RULES, "asha", Always)
    run_dir = tmp_path / "r"
    result = runner.invoke(app, ["search", "--space", "tiny", "--reference", "none", "--trials", "1", "--epochs", "30",
                                 "--strategy", "random", "--quiet", "--run-dir", str(run_dir)])
    assert result.exit_code == 1  # its one sampled trial was stopped: nothing completed
    node = tmp_path / "n"
    result = runner.invoke(app, ["search", "--space", "node", "--reference", "zoo:gcn", "--trials", "1", "--epochs",
                                 "30", "--confirm", "0", "--strategy", "random", "--quiet", "--run-dir", str(node)])
    assert result.exit_code == 0, result.output
    study = optuna.load_study(study_name="n", storage=f"sqlite:///{node / 'study.db'}")
    assert [(t.user_attrs.get("reference"), t.state.name) for t in study.trials] == [("zoo:gcn", "COMPLETE")]
    assert len(study.trials[0].user_attrs["val_curve"]) > 1
