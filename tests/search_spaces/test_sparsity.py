"""Sparsification: the space's sparsity section, masks that really remove what they drop,
and counted FLOPs that fall accordingly."""
from __future__ import annotations

import copy

import numpy as np
import optuna
import pytest
import torch
from torch_geometric.explain.algorithm.utils import clear_masks

from graphnas.evaluators.cost import flops_of, params_of
from graphnas.search_spaces import Architecture, DataInfo, SearchSpace, SpaceError, build_model
from graphnas.search_spaces.architecture import Sparsity
from graphnas.search_spaces.sparsity import keep_count, prunable_weight_stats, teddy_scores
from tests.conftest import random_graph

C = 32


def arch(sparsity=None, mpnn="gcn", attention="none", layers=2, heads=4, norm="none") -> Architecture:
    return Architecture(space="t", hidden_dim=C, num_layers=layers, dropout=0.0, lr=0.01, weight_decay=0.0,
                        layers=tuple({"mpnn": mpnn, "attention": attention, "heads": heads, "norm": norm}
                                     for _ in range(layers)), sparsity=sparsity)


@pytest.fixture
def graph():
    return random_graph(120, 900, 8, 2, seed=3)


def info_of(graph) -> DataInfo:
    return DataInfo("node_classification", graph.num_features, 3, num_edges=graph.edge_index.size(1))


def built(a: Architecture, graph, harden: bool = True):
    torch.manual_seed(0)
    model = build_model(a, info_of(graph))
    model(graph.x, graph.edge_index)  # one soft forward: the masks are in place
    if harden:
        model.harden()
    return model


def flops(model, graph) -> int:
    return flops_of(model, x=graph.x, edge_index=graph.edge_index)


# --- the space section --------------------------------------------------------------------------

GTSP_SMALL = {"name": "sp", "layers": {"mpnn": ["gcn", "gin"]},
              "sparsity": {"edges": [0.0, 0.5], "edge_method": ["learned", "teddy"], "heads": [0.0, 0.5],
                           "weights": [0.0, 0.5]}}


def test_sparsity_section_is_validated(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("name: s\nsparsity:\n  edges: [0.0, 1.0]\n  edge_method: [learned, random]\n  heads: {low: -0.1, high: 0.5}\n")
    with pytest.raises(SpaceError) as err:
        SearchSpace.from_yaml(path)
    msg = str(err.value)
    assert "sparsity.edges[1]: expected a number in [0.0, 1.0), got 1.0" in msg
    assert "sparsity.edge_method[1]: expected one of: learned, teddy, got 'random'" in msg
    assert "sparsity.heads.low: expected a number in [0.0, 1.0), got -0.1" in msg
    with pytest.raises(SpaceError, match="sparsity: a space with links"):
        SearchSpace.from_dict({"name": "c", "global": {"links": [[0, 1]], "num_layers": 2, "residual": False},
                               "sparsity": {"edges": 0.5}})


def test_space_samples_suggests_and_counts_sparsity():
    space = SearchSpace.from_dict(GTSP_SMALL)
    rng = np.random.default_rng(0)
    archs = [space.sample(rng) for _ in range(200)]
    assert all(space.contains(a) for a in archs)
    dense = [a for a in archs if a.sparsity is None]
    sparse = [a for a in archs if a.sparsity is not None]
    assert dense and sparse and {a.sparsity.weights for a in sparse} == {0.0, 0.5}
    assert all(a.sparsity.edge_method == "learned" for a in sparse if a.sparsity.edges == 0)  # method only with edges
    assert all(a.sparsity.heads == 0 for a in sparse)  # no attention here: a heads target would remove nothing
    # a dense architecture is the same, same id, with or without the section
    plain = SearchSpace.from_dict({"name": "sp", "layers": {"mpnn": ["gcn", "gin"]}})
    assert plain.contains(dense[0])
    assert plain.suggest(optuna.trial.FixedTrial(plain.trial_params(dense[0]))).arch_id == dense[0].arch_id
    study = optuna.create_study()
    trial = study.ask()
    suggested = space.suggest(trial)
    assert {k for k in trial.params if k.startswith("sparsity.")} == {"sparsity.edges", "sparsity.edge_method",
                                                                     "sparsity.heads", "sparsity.weights"}
    assert space.suggest(optuna.trial.FixedTrial(space.trial_params(suggested) | {
        k: v for k, v in trial.params.items() if k not in space.trial_params(suggested)})) == suggested
    assert space.labelled_size() == 2 * 2 * 2 * 2 * 2 ** 2  # edges x method x heads x weights x mpnn per layer


def test_gtsp_preset_has_the_four_dimensions():
    space = SearchSpace.preset("gtsp")
    spec = space.spec.sparsity
    assert all(max(getattr(spec, dim).values()) > 0 for dim in ("edges", "heads", "layers", "weights"))
    assert set(spec.edge_method.values()) == {"learned", "teddy"}


# --- edges ----------------------------------------------------------------------------------------

def test_half_the_edges_go_and_message_passing_flops_drop_accordingly(graph):
    e = graph.edge_index.size(1)
    dense = built(arch(), graph)
    pruned = built(arch(Sparsity(edges=0.5)), graph)
    kept = pruned.edge_sparsifier.kept
    assert abs(len(kept) - e / 2) <= 0.01 * e and len(set(kept.tolist())) == len(kept)
    removed = e - len(kept)
    # GCN per layer: degree sum 2 (E + N) and aggregation 2 (E + N) C, self-loops kept
    assert flops(dense, graph) - flops(pruned, graph) == 2 * removed * (C + 1) * 2
    assert pruned.edge_sparsifier.gates is None and not pruned.has_soft_masks


def test_learned_edge_gates_scale_messages_then_edges_really_go(graph):
    torch.manual_seed(0)
    model = build_model(arch(Sparsity(edges=0.5), mpnn="gin"), info_of(graph))  # sum aggregation: gate 0 = no edge
    gates = model.edge_sparsifier.gates
    twin = copy.deepcopy(model)  # the same weights with every edge really removed
    twin.edge_sparsifier.gates, twin.edge_sparsifier.kept = None, torch.zeros(0, dtype=torch.long)
    clear_masks(twin.body)
    with torch.no_grad():
        gates.logits.fill_(-30.0)  # every edge gated shut: only the self-loops carry messages
        assert torch.allclose(model(graph.x, graph.edge_index), twin(graph.x, graph.edge_index), atol=1e-5)
    with torch.no_grad():
        gates.logits.copy_(torch.linspace(-3, 3, gates.logits.numel()))
    model.harden()
    assert model.edge_sparsifier.kept.tolist() == list(range(graph.edge_index.size(1) // 2, graph.edge_index.size(1)))


def test_teddy_scores_by_hand():
    # star 0-1, 0-2, 0-3 plus 1-2, both directions: degrees d0=3, d1=2, d2=2, d3=1
    pairs = [(0, 1), (0, 2), (0, 3), (1, 2)]
    edge_index = torch.tensor(pairs + [(b, a) for a, b in pairs]).t()
    d = torch.tensor([3.0, 2.0, 2.0, 1.0])
    nbrs = {0: [1, 2, 3], 1: [0, 2], 2: [0, 1], 3: [0]}
    g = torch.tensor([sum(d[u] ** -0.5 for u in nbrs[v]) / d[v] for v in range(4)])
    expected = torch.tensor([g[a] / d[a] * g[b] / d[b] for a, b in edge_index.t().tolist()])
    assert torch.allclose(teddy_scores(edge_index, 4), expected)
    pruned = built(arch(Sparsity(edges=0.5, edge_method="teddy"), layers=1), random_graph(60, 300, 8, 2, seed=1))
    assert pruned.edge_sparsifier.gates is None  # one-shot: nothing to learn


def test_learned_edges_need_one_graph():
    with pytest.raises(ValueError, match="for graph-level tasks use edge_method: teddy"):
        build_model(arch(Sparsity(edges=0.5)), DataInfo("graph_classification", 8, 2))


# --- heads and layers -----------------------------------------------------------------------------

def test_a_head_gated_to_zero_is_removed_with_its_flops(graph):
    soft = built(arch(Sparsity(heads=0.25), attention="full", layers=1), graph, harden=False)
    gates = soft.body.layers[0].attention.attn.head_gates
    with torch.no_grad():
        gates.logits.copy_(torch.tensor([30.0, 30.0, -30.0, 30.0]))  # head 2 off
        before = soft(graph.x, graph.edge_index)
    dense_flops = flops(built(arch(attention="full", layers=1), graph), graph)
    soft.harden()
    attn = soft.body.layers[0].attention.attn
    assert attn.heads == 3 and attn.qkv.out_features == 3 * 3 * (C // 4) and attn.out.in_features == 3 * (C // 4)
    with torch.no_grad():
        assert torch.allclose(soft(graph.x, graph.edge_index), before, atol=1e-5)
    n, d = graph.num_nodes, C // 4
    one_head = 2 * n * C * 3 * d + 4 * n * n * d + 2 * n * d * C  # q/k/v rows, scores and values, out columns
    assert dense_flops - flops(soft, graph) == one_head


def test_layer_sparsity_removes_layers(graph):
    dense = built(arch(layers=4), graph)
    pruned = built(arch(Sparsity(layers=0.5), layers=4), graph)
    assert len(pruned.body.layers) == 2 and pruned.body.gates is None
    per_layer = (flops(dense, graph) - flops(built(arch(layers=2), graph), graph)) // 2
    assert flops(dense, graph) - flops(pruned, graph) == 2 * per_layer
    assert keep_count(1, 0.9) == 1  # never an empty stack


# --- weights --------------------------------------------------------------------------------------

def test_weight_sparsity_zeroes_half_the_prunable_weights_and_they_stay_zero(graph):
    a = arch(Sparsity(weights=0.5), mpnn="gin")
    model = built(a, graph)
    zeros, total = prunable_weight_stats(model.body)
    assert zeros == total - keep_count(total, 0.5) and abs(zeros / total - 0.5) < 0.01
    dense = built(arch(mpnn="gin"), graph)
    assert params_of(dense) - params_of(model) == zeros
    assert flops(model, graph) < flops(dense, graph)
    opt = torch.optim.AdamW(model.parameters(), lr=0.1, weight_decay=0.1)
    for _ in range(3):
        opt.zero_grad()
        model(graph.x, graph.edge_index).pow(2).mean().backward()
        opt.step()
    assert prunable_weight_stats(model.body)[0] == zeros
    state = {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(state)  # plain state dicts: the trainer restores its best epoch with them


def test_weight_flops_count_non_zeros_only(graph):
    a = arch(Sparsity(weights=0.5), mpnn="mlp", layers=1)
    dense, pruned = built(arch(mpnn="mlp", layers=1), graph), built(a, graph)
    zeros, _ = prunable_weight_stats(pruned.body)
    assert flops(dense, graph) - flops(pruned, graph) == 2 * graph.num_nodes * zeros


# --- training ------------------------------------------------------------------------------------

@pytest.mark.slow  # a full search or several: over 2 s on 2 cores
def test_training_learns_masks_then_reports_the_pruned_model(cache_dir):
    from graphnas.evaluators import TrainConfig, load_dataset
    from graphnas.evaluators.training import train_model

    data = load_dataset("synthetic", cache_dir=cache_dir)
    config = TrainConfig(epochs=30, patience=30, device="cpu", mask_epochs=10, latency_repeats=1)
    sparse = Sparsity(edges=0.5, heads=0.5, layers=0.5, weights=0.5)
    trained = train_model(arch(sparse, attention="full", layers=2, norm="batch"), data, config)
    dense = train_model(arch(attention="full", layers=2, norm="batch"), data, config)
    model = trained.model
    assert not model.has_soft_masks and len(model.body.layers) == 1
    assert model.body.layers[0].attention.attn.heads == 2
    assert trained.result.best_epoch >= 10  # selected among the pruned model's epochs
    assert trained.result.flops < 0.6 * dense.result.flops and trained.result.params < dense.result.params
    assert 0.3 < trained.result.val_metric <= 1


@pytest.mark.slow  # a full search or several: over 2 s on 2 cores
def test_a_trained_sparse_model_reloads_and_exports(tmp_path, cache_dir):
    from graphnas.evaluators import TrainConfig, load_dataset
    from graphnas.evaluators.training import train_model
    from graphnas.results.export import export_program

    data = load_dataset("synthetic", cache_dir=cache_dir)
    a = arch(Sparsity(edges=0.3, heads=0.5, layers=0.5, weights=0.5), attention="full", layers=2)
    trained = train_model(a, data, TrainConfig(epochs=6, device="cpu", mask_epochs=2, latency_repeats=1)).model
    torch.save(trained.state_dict(), tmp_path / "w.pt")
    fresh = build_model(a, data.info)
    fresh.load_trained_state(torch.load(tmp_path / "w.pt"))
    inputs = {"x": data.data.x, "edge_index": data.data.edge_index}
    with torch.no_grad():
        assert torch.allclose(fresh.eval()(**inputs), trained.eval()(**inputs), atol=1e-6)
    assert flops_of(fresh, **inputs) == flops_of(trained, **inputs) and params_of(fresh) == params_of(trained)
    export_program(fresh, inputs, tmp_path / "m.pt2")
    program = torch.export.load(tmp_path / "m.pt2")
    assert torch.allclose(program.module()(**inputs), trained(**inputs), atol=1e-5)


def test_search_refuses_learned_edges_on_graph_level_data(tmp_path, shared_datasets):
    from graphnas.nas import Search, SearchConfig

    space = tmp_path / "s.yaml"
    space.write_text("name: s\nsparsity:\n  edges: [0.0, 0.5]\n  edge_method: [learned, teddy]\n")
    config = SearchConfig(space=str(space), dataset="mutag", data_root=str(shared_datasets),
                          run_dir=str(tmp_path / "run"), trials=1)
    with pytest.raises(ValueError, match="sparsity.edge_method 'learned' .* this dataset is graph-level: use "
                                         "edge_method: teddy"):
        Search(config).run()


def test_gates_keep_the_parts_the_loss_depends_on():
    from graphnas.search_spaces.sparsity import Gates

    gates = Gates(4, target=0.5)
    for _ in range(3):  # the loss leans on parts 1 and 3; the penalty pushes all alike
        loss = (gates() * torch.tensor([0.0, 5.0, 0.1, 1.0])).sum() + 10 * gates.penalty()
        loss.backward()
    assert gates.keep().tolist() == [1, 3]
    assert Gates(4, target=0.5).keep().tolist() == [0, 1]  # untrained: ties, by position
