"""Differentiable search: the supernet, the bi-level step, GDAS, the cost penalty, the run."""
from __future__ import annotations

import json

import optuna
import pandas as pd
import pytest
import torch
from torch_geometric import seed_everything

from graphnas.evaluators import TrainConfig, load_dataset
from graphnas.nas import Search, SearchConfig
from graphnas.nas.strategies import STRATEGIES
from graphnas.nas.architect import AlphaSearch, bilevel_batches
from graphnas.nas.darts import DartsConfig, narrow
from graphnas.nas.supernet import MixedOp, Supernet
from graphnas.search_spaces import SearchSpace
from graphnas.search_spaces.builder import model_inputs

CPU = torch.device("cpu")
FAST = TrainConfig(epochs=20, patience=10, latency_repeats=1)


def space(mpnn, attention=("none",), layers=2, **extra) -> SearchSpace:
    return SearchSpace.from_dict({
        "name": "t", "global": {"hidden_dim": 32, "num_layers": layers, "dropout": 0.2, "lr": 0.01,
                                "weight_decay": 5e-4, "residual": False},
        "layers": {"mpnn": list(mpnn), "attention": list(attention), "norm": "none", "heads": 2, **extra}})


@pytest.fixture(scope="module")
def synthetic(cache_dir):
    return load_dataset("synthetic", cache_dir=cache_dir)


def search(net, bundle, epochs, cost_weight=0.0, **cfg):
    steps = bilevel_batches(bundle, net.base, CPU, 0.4, seed=0)
    return AlphaSearch(net, DartsConfig(epochs=epochs, **cfg), cost_weight).run(steps)


def test_architecture_parameters_get_gradients_and_are_kept_apart(synthetic):
    seed_everything(0)
    net = Supernet(space(["gcn", "sage", "mlp"], ["none", "full"]), synthetic.info)
    weights, alphas = net.weight_parameters(), net.arch_parameters()
    assert len(alphas) == 4  # mpnn and attention of 2 layers
    assert not {id(p) for p in weights} & {id(p) for p in alphas}
    assert {id(p) for p in weights} | {id(p) for p in alphas} == {id(p) for p in net.parameters()}
    before = [a.detach().clone() for a in alphas]
    w_before = [p.detach().clone() for p in weights]
    steps = bilevel_batches(synthetic, net.base, CPU, 0.4, seed=0)
    _, alpha_loss = steps()[0](net)
    alpha_loss.backward()
    assert all(a.grad is not None and a.grad.abs().sum() > 0 for a in alphas)
    search(net, synthetic, epochs=2)
    assert all(not torch.equal(a, b) for a, b in zip(alphas, before))
    assert any(not torch.equal(p, b) for p, b in zip(weights, w_before))


def test_the_bilevel_split_keeps_validation_and_test_out(synthetic):
    net = Supernet(space(["gcn", "mlp"]), synthetic.info)
    steps = bilevel_batches(synthetic, net.base, CPU, 0.4, seed=0)()
    assert len(steps) == 1  # full batch: one forward serves both parts
    seen = []
    steps[0](lambda **inputs: _Recorder(seen))
    w_nodes, a_nodes = seen
    train = set(synthetic.splits.train.tolist())
    assert w_nodes | a_nodes == train and not w_nodes & a_nodes  # validation and test never read
    assert len(w_nodes) == round(0.6 * len(train))


class _Recorder:
    """Stands in for the model output; records which rows each loss reads."""

    def __init__(self, seen):
        self.seen = seen

    def __getitem__(self, idx):
        self.seen.append(set(idx.tolist()))
        return torch.zeros(len(idx), 64, requires_grad=True)


def _count_calls(net):
    calls = {}
    for op in net.mixed_ops():
        for name, cand in zip(op.names, op.ops):
            key = (op.key, name, id(op))
            calls[key] = 0
            cand.register_forward_hook(lambda *args, key=key: calls.__setitem__(key, calls[key] + 1))
    return calls


def test_gdas_runs_exactly_one_candidate_per_mixed_op(synthetic):
    net = Supernet(space(["gcn", "sage", "gin", "mlp"], ["none", "full", "linear"]), synthetic.info, mode="gdas")
    calls = _count_calls(net)
    inputs = model_inputs(synthetic.data, net.base)
    net.train()
    for _ in range(3):
        for k in calls:
            calls[k] = 0
        net(**inputs)
        per_op = {}
        for (key, _, op_id), n in calls.items():
            per_op[op_id] = per_op.get(op_id, 0) + n
        assert set(per_op.values()) == {1}
    darts = Supernet(space(["gcn", "sage", "gin", "mlp"], ["none", "full", "linear"]), synthetic.info)
    calls = _count_calls(darts)
    darts(**model_inputs(synthetic.data, darts.base))
    assert set(calls.values()) == {1}  # DARTS runs every candidate once


@pytest.mark.parametrize("mode", ["darts", "gdas"])
def test_search_prefers_the_candidate_the_task_needs(synthetic, mode):
    # The embedded task is a contextual SBM: features alone give 0.46, one GCN layer ~0.9,
    # so the right layer is the one that aggregates neighbours, not the MLP.
    seed_everything(0)
    net = Supernet(space(["mlp", "gcn"], layers=1), synthetic.info, mode=mode)
    rows = search(net, synthetic, epochs=60)
    final = pd.DataFrame(rows).query("epoch == 59").set_index("candidate")["weight"]
    assert final["gcn"] > 0.6
    assert net.derive().layers[0].mpnn == "gcn"


@pytest.mark.slow  # a full search or several: over 2 s on 2 cores
def test_flops_penalty_moves_weight_to_cheaper_candidates(synthetic):
    # Two seeds, averaged: the weight of ``none`` without a penalty moves with the initial
    # weights (0.43-0.89 over seeds 0-3), the penalty's effect does not.
    none_weight, derived = {0.0: 0.0, 1.0: 0.0}, {}
    for seed in (1, 2):
        for lam in (0.0, 1.0):
            seed_everything(seed)
            net = Supernet(space(["gcn"], ["none", "full"]), synthetic.info)
            net.measure_flops(model_inputs(synthetic.data, net.base))
            assert net.flops["layer1.attention"][0] == 0 and net.flops["layer1.attention"][1] > 1e7
            search(net, synthetic, epochs=40, cost_weight=lam)
            none_weight[lam] += sum(torch.softmax(net.alpha(f"layer{i}.attention"), -1)[0].item() for i in range(2)) / 4
            derived[lam, seed] = [layer.attention for layer in net.derive(keep_none=lam > 0).layers]
    assert none_weight[1.0] > none_weight[0.0] + 0.1  # measured 0.68 -> 0.85
    assert derived[1.0, 1] == derived[1.0, 2] == ["none", "none"]
    assert derived[0.0, 1] == derived[0.0, 2] == ["full", "full"]  # without a penalty, none is skipped as in DARTS


def test_derive_says_where_none_won_and_was_not_taken(synthetic):
    net = Supernet(space(["gcn"], ["none", "full"]), synthetic.info)
    with torch.no_grad():
        for i in range(2):
            net.alpha(f"layer{i}.attention").copy_(torch.tensor([3.0, 0.0]))  # none far ahead
    assert [layer.attention for layer in net.derive().layers] == ["full", "full"]
    overridden = net.overridden_none()
    assert set(overridden) == {"layer0.attention", "layer1.attention"} and all(w > 0.9 for w in overridden.values())
    assert net.overridden_none(keep_none=True) == {}
    assert [layer.attention for layer in net.derive(keep_none=True).layers] == ["none", "none"]


def test_second_order_step_gives_finite_alpha_gradients(synthetic):
    seed_everything(0)
    net = Supernet(space(["gcn", "mlp"], ["none", "full"]), synthetic.info)
    net.measure_flops(model_inputs(synthetic.data, net.base))
    before = [a.detach().clone() for a in net.arch_parameters()]
    search(net, synthetic, epochs=2, cost_weight=0.5, second_order=True)
    assert all(torch.isfinite(a).all() and not torch.equal(a, b) for a, b in zip(net.arch_parameters(), before))


def test_derive_gives_kv_source_features_when_attention_does_not_read_the_mpnn(synthetic):
    sp = space(["gcn", "gin"], ["kv_from_mpnn", "full"], kv_source=["features", "mpnn"])
    net = Supernet(sp, synthetic.info)
    with torch.no_grad():
        for i in range(2):
            net.alpha(f"layer{i}.kv_source").copy_(torch.tensor([0.0, 5.0]))  # mpnn preferred
        net.alpha("layer0.attention").copy_(torch.tensor([5.0, 0.0]))  # kv_from_mpnn
        net.alpha("layer1.attention").copy_(torch.tensor([0.0, 5.0]))  # full
    arch = net.derive()
    assert (arch.layers[0].attention, arch.layers[0].kv_source) == ("kv_from_mpnn", "mpnn")
    assert (arch.layers[1].attention, arch.layers[1].kv_source) == ("full", "features")
    assert sp.contains(arch)
    net(**model_inputs(synthetic.data, net.base))  # the kv mixed op runs


def test_fixed_choices_default_to_the_middle_and_obey_fix(synthetic):
    net = Supernet(SearchSpace.preset("tiny"), synthetic.info, fix={"lr": 0.01, "layer1.mpnn": "gcn"})
    assert net.fixed["lr"] == 0.01 and net.fixed["layer1.mpnn"] == "gcn"
    assert net.fixed["num_layers"] == 2 and net.fixed["hidden_dim"] == 64
    assert net.fixed["dropout"] == pytest.approx(0.6)
    assert "layer1.mpnn" not in net.candidates and "layer0.mpnn" in net.candidates
    with pytest.raises(ValueError, match="--fix lr=5.0: not in the space"):
        Supernet(SearchSpace.preset("tiny"), synthetic.info, fix={"lr": 5.0})
    with pytest.raises(ValueError, match="nothing for DARTS to search"):
        Supernet(space(["gcn"]), synthetic.info)


def test_cell_spaces_and_graph_tasks_work(cache_dir):
    triangles = load_dataset("triangles", cache_dir=cache_dir)
    seed_everything(0)
    net = Supernet(SearchSpace.preset("nas_bench_graph"), triangles.info, mode="gdas")
    assert isinstance(net.model.body.ops[0], MixedOp)
    rows = search(net, triangles, epochs=1)
    assert len(rows) == 4 * 9
    assert SearchSpace.preset("nas_bench_graph").contains(net.derive())


def test_narrow_keeps_the_union_of_each_layers_top_k(synthetic):
    sp = space(["gcn", "sage", "gin", "mlp"])
    net = Supernet(sp, synthetic.info)
    with torch.no_grad():
        net.alpha("layer0.mpnn").copy_(torch.tensor([3.0, 2.0, 0.0, 0.0]))
        net.alpha("layer1.mpnn").copy_(torch.tensor([0.0, 0.0, 1.0, 3.0]))
    assert narrow(sp, net, 1).spec.layers.mpnn.values() == ["gcn", "mlp"]
    assert narrow(sp, net, 2).spec.layers.mpnn.values() == ["gcn", "sage", "gin", "mlp"]


@pytest.mark.parametrize("preset", ["tiny", "gps", "darts_gt", "nas_bench_graph"])
def test_trial_params_make_suggest_return_the_architecture(preset):
    import numpy as np

    sp = SearchSpace.preset(preset)
    for seed in range(3):
        arch = sp.sample(np.random.default_rng(seed))
        assert sp.suggest(optuna.trial.FixedTrial(sp.trial_params(arch))) == arch


@pytest.mark.slow
def test_darts_run_records_one_trial_per_cost_weight_and_resumes(tmp_path, cache_dir):
    darts = DartsConfig(epochs=8, cost_weights=(0.0,))
    config = SearchConfig(space="tiny", run_dir=str(tmp_path / "d"), cache_dir=str(cache_dir), train=FAST, strategy="darts",
                          darts=darts)
    Search(config).run()
    more = config.model_copy(update={"darts": darts.model_copy(update={"cost_weights": (0.0, 2.0)})})
    s = Search(more, resume=True)
    study = s.run()
    d = s.run_dir
    frame = pd.read_csv(d / "trials.csv")
    assert len(frame) == 2 and list(frame["cost_weight"]) == [0.0, 2.0]  # lambda 0 was not searched again
    assert set(frame["strategy"]) == {"darts"} and (frame["state"] == "COMPLETE").all()
    alphas = pd.read_csv(d / "alphas.csv")
    assert list(alphas.columns) == ["epoch", "layer", "choice", "candidate", "weight", "cost_weight"]
    assert set(alphas["cost_weight"]) == {0.0, 2.0} and alphas["epoch"].max() == 7
    sums = alphas.groupby(["cost_weight", "epoch", "layer", "choice"])["weight"].sum()
    assert sums.round(5).eq(1).all()
    record = json.loads((d / "darts.json").read_text())
    assert record["0.0"]["fixed"]["num_layers"] == 2 and "layer0.mpnn" in record["0.0"]["searched"]
    assert (d / "alphas.png").is_file()
    derived = [t.user_attrs["arch_id"] for t in study.trials]
    assert derived[0] == record["0.0"]["derived_arch_id"] and derived[1] == record["2.0"]["derived_arch_id"]


@pytest.mark.slow  # a full search or several: over 2 s on 2 cores
def test_darts_plus_tpe_narrows_then_searches_from_the_derived_architecture(tmp_path, cache_dir):
    config = SearchConfig(space="tiny", run_dir=str(tmp_path / "dt"), cache_dir=str(cache_dir), train=FAST,
                          strategy="darts+tpe", trials=4, darts=DartsConfig(epochs=5, top_k=1))
    s = Search(config)
    study = s.run()
    narrowed = SearchSpace.from_yaml(s.run_dir / "narrowed_space.yaml")
    assert len(narrowed.spec.layers.mpnn.values()) <= 2  # top-1 of each of the two layers
    assert len(study.trials) == 4 and study.trials[0].user_attrs["strategy"] == "darts"
    first = json.loads((s.run_dir / "darts.json").read_text())["0.0"]["derived_arch_id"]
    assert study.trials[0].user_attrs["arch_id"] == first
    from graphnas.search_spaces import Architecture
    assert all(narrowed.contains(Architecture.from_json(t.user_attrs["arch_json"])) for t in study.trials)


@pytest.mark.slow  # two short supernet searches per strategy
@pytest.mark.parametrize("strategy", STRATEGIES.with_capability("differentiable"))
def test_every_differentiable_strategy_keeps_the_strategy_contract(strategy, tmp_path, cache_dir):
    """The contract the black-box strategies keep (tests/nas/test_strategies.py), for those
    with a run of their own: members of the space only, the same trials given the same seed,
    and a resumed finished run that queries nothing again."""
    from graphnas.search_spaces import Architecture

    def run(name, resume=False):
        config = SearchConfig(space="tiny", run_dir=str(tmp_path / name), cache_dir=str(cache_dir),
                              train=TrainConfig(epochs=4, patience=4, latency_repeats=1), strategy=strategy,
                              trials=2, objectives="metric,flops", darts=DartsConfig(epochs=3, top_k=1))
        search = Search(config, resume=resume)
        study = search.run()
        return search, [(t.state.name, t.user_attrs.get("arch_id"), t.values) for t in study.trials]

    search, first = run("a")
    assert len(first) == search.config.budget and all(state == "COMPLETE" for state, _, _ in first)
    space = SearchSpace.preset("tiny")
    assert all(space.contains(Architecture.from_json(t.user_attrs["arch_json"]))
               for t in search.store.load_study(search.config.study_name).trials)
    assert run("b")[1] == first  # repeats itself given the seed
    assert run("a", resume=True)[1] == first  # a finished run resumed queries nothing again


@pytest.mark.parametrize("strategy", STRATEGIES.with_capability("differentiable"))
def test_a_differentiable_entry_is_a_runner_not_a_proposal_strategy(strategy):
    """Issue 44: darts, gdas and darts+tpe register a SupernetSearch, run by SupernetRunner;
    the study's sampler is that of a real strategy: the second phase's (TPE), or random, which
    only replays the queued derived architectures."""
    from graphnas.nas.differentiable import SupernetSearch
    from graphnas.nas.strategy_base import Strategy

    entry = STRATEGIES.get(strategy)
    assert isinstance(entry, SupernetSearch) and not isinstance(entry, Strategy)
    study_strategy = entry(SearchSpace.preset("tiny"), 0, 2)
    assert isinstance(study_strategy, Strategy)
    assert type(study_strategy).__name__ == ("TPE" if entry.then else "Random")
    config = SearchConfig(strategy=strategy, trials=7, darts=DartsConfig(cost_weights=[0.0, 0.1, 0.3]))
    assert config.budget == (7 if entry.then else 3)


def test_differentiable_strategies_refuse_several_workers(tmp_path):
    with pytest.raises(ValueError, match="one process"):
        Search(SearchConfig(run_dir=str(tmp_path / "w"), strategy="gdas", workers=2))


def test_supernet_over_the_node_space_mixes_a_raw_feature_layer_and_a_classifier_layer(synthetic):
    """The published shapes in DARTS: the first layer's candidates read the raw features,
    the last layer's candidates output the classes (no projection, no head)."""
    from graphnas.search_spaces.builder import ClassifierLayer

    seed_everything(0)
    node = SearchSpace.from_dict({"name": "n", "global": {"hidden_dim": 16, "num_layers": 2, "dropout": 0.5,
                                                          "lr": 0.01, "weight_decay": 5e-4, "residual": False,
                                                          "input_projection": False, "head": "last_layer",
                                                          "attention_dropout": 0.6, "feature_norm": "row",
                                                          "optimizer": "adam"},
                                  "layers": {"mpnn": ["gat", "gcn", "dagnn"], "heads": 2, "norm": "none",
                                             "activation": "elu"}})
    bundle = load_dataset("synthetic", feature_norms={"row"})
    net = Supernet(node, bundle.info)
    assert net.model.input is None and net.model.head is None
    first, last = net.model.body.layers
    assert isinstance(last, ClassifierLayer) and isinstance(last.local, MixedOp)
    assert first.local.ops[0].conv.in_channels == bundle.info.num_features  # gat reads the raw features
    assert first.local.ops[0].conv.dropout == 0.6 and not hasattr(first.local.ops[1].conv, "dropout")
    out = net(**model_inputs(bundle.data, net.base))
    assert out.shape == (bundle.data.num_nodes, bundle.info.num_outputs)
    net.measure_flops(model_inputs(bundle.data, net.base))
    assert all(f.min() > 0 for f in net.flops.values())
    search(net, bundle, epochs=2)
    derived = net.derive()
    assert node.contains(derived) and derived.input_projection is False and derived.head == "last_layer"


def test_a_candidate_is_built_as_the_derived_model_builds_it(synthetic):
    """The supernet's candidates come from the model's own builder: a GAT candidate that is
    not the first gets the attention dropout the derived GAT model has (before the supernet
    was built by composition, every candidate took the first candidate's context, and a GAT
    after a GCN trained with dropout 0)."""
    sp = SearchSpace.from_dict({
        "name": "t", "global": {"hidden_dim": 32, "num_layers": 1, "dropout": 0.2, "lr": 0.01, "weight_decay": 5e-4,
                                "residual": False, "attention_dropout": 0.6},
        "layers": {"mpnn": ["gcn", "gat"], "attention": ["none", "full"], "norm": "none", "heads": 2}})
    net = Supernet(sp, synthetic.info)
    (layer,) = net.model.body.layers
    gat = layer.local.ops[layer.local.names.index("gat")]
    assert gat.conv.dropout == 0.6
    derived = sp.build(lambda name, choice: {"layer0.mpnn": "gat", "mpnn": "gat"}.get(name, choice.values()[0]))
    from graphnas.search_spaces import build_model
    assert build_model(derived, synthetic.info).body.layers[0].local.conv.dropout == 0.6
    assert set(layer.attention.names) == {"none", "full"} and layer.kv_source is None


def _rings(count: int = 120, n: int = 12) -> list:
    """Graph classification that only a sum aggregator can answer: every graph has n nodes
    and constant features; class 0 is a cycle (degree 2), class 1 a ring lattice (degree 4).
    An MLP sees the same constant everywhere, and GCN's normalised mean of a regular graph's
    constant features is that constant again; GIN's sum counts the neighbours."""
    from torch_geometric.data import Data
    from torch_geometric.utils import to_undirected

    graphs = []
    for i in range(count):
        hops = (1,) if i % 2 == 0 else (1, 2)
        edges = torch.cat([torch.stack([torch.arange(n), (torch.arange(n) + h) % n]) for h in hops], 1)
        graphs.append(Data(x=torch.ones(n, 1), edge_index=to_undirected(edges), y=torch.tensor([i % 2])))
    return graphs


@pytest.mark.parametrize("mode", ["darts", "gdas"])
def test_on_a_graph_task_the_supernet_discretises_to_the_one_candidate_that_can_answer(mode, tmp_path):
    from graphnas.evaluators.datasets import _graph_bundle
    from graphnas.evaluators.splits import stratified_splits

    graphs = _rings()
    bundle = _graph_bundle("rings", graphs, stratified_splits(torch.cat([g.y for g in graphs]), seed=0))
    sp = SearchSpace.from_dict({
        "name": "g", "global": {"hidden_dim": 16, "num_layers": 2, "dropout": 0.0, "lr": 0.01, "weight_decay": 0.0,
                                "pooling": "mean", "residual": False},
        "layers": {"mpnn": ["mlp", "gcn", "gin"], "norm": "none", "tied": True}})
    seed_everything(0)
    net = Supernet(sp, bundle.info, mode=mode)
    rows = search(net, bundle, epochs=40, **({"tau_max": 5.0} if mode == "gdas" else {}))
    final = pd.DataFrame(rows).query("epoch == 39").set_index("candidate")["weight"]
    assert final.idxmax() == "gin" and final["gin"] > 0.4, final.to_dict()
    assert net.derive().layers[0].mpnn == "gin"
