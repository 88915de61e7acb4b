"""Neighbour-sampled training of node tasks on large graphs (NeighborLoader)."""
from __future__ import annotations

import pytest
import torch
from torch_geometric.data import Data

import graphnas.evaluators.sampling as sampling
from graphnas.evaluators import TrainConfig, evaluate, load_dataset
from graphnas.evaluators.datasets import DatasetBundle
from graphnas.evaluators.splits import Splits
from graphnas.search_spaces import Architecture, DataInfo


def arch(mpnn: str = "sage", attention: str = "none", layers: int = 2, hidden: int = 32) -> Architecture:
    return Architecture(space="test", hidden_dim=hidden, num_layers=layers, dropout=0.2, lr=0.01, weight_decay=5e-4,
                        layers=tuple({"mpnn": mpnn, "attention": attention, "norm": "batch"} for _ in range(layers)))


def planted_graph(num_nodes: int, classes: int, degree: int, seed: int) -> Data:
    """Homophilous planted partition: 80% of a node's in-edges come from its own class;
    features are a weak class signal plus noise, so neighbours help."""
    gen = torch.Generator().manual_seed(seed)
    y = torch.randint(0, classes, (num_nodes,), generator=gen)
    by_class = [torch.nonzero(y == c).view(-1) for c in range(classes)]
    dst = torch.arange(num_nodes).repeat_interleave(degree)
    same = torch.rand(len(dst), generator=gen) < 0.8
    src = torch.randint(0, num_nodes, (len(dst),), generator=gen)
    for c in range(classes):
        pick = same & (y[dst] == c)
        src[pick] = by_class[c][torch.randint(0, len(by_class[c]), (int(pick.sum()),), generator=gen)]
    x = 0.5 * torch.nn.functional.one_hot(y, classes).float() + torch.randn(num_nodes, classes, generator=gen)
    return Data(x=x, edge_index=torch.stack([src, dst]), y=y)


def test_sampler_keeps_at_most_fanout_real_in_edges_per_node():
    data = planted_graph(500, 3, 12, seed=0)
    real = set((data.edge_index[0] * 500 + data.edge_index[1]).tolist())
    loader = sampling.neighbor_loader(data, torch.arange(100), [4, 3], batch_size=50, shuffle=True, seed=0)
    batches = list(loader)
    assert [b.batch_size for b in batches] == [50, 50]
    for b in batches:
        assert b.num_sampled_edges[0] == 50 * 4  # every seed has 12 in-edges, 4 are kept
        seeds_in = torch.bincount(b.edge_index[1, :b.num_sampled_edges[0]], minlength=50)
        assert seeds_in.tolist() == [4] * 50
        src, dst = b.n_id[b.edge_index[0]], b.n_id[b.edge_index[1]]
        assert set((src * 500 + dst).tolist()) <= real
        assert len(set(b.n_id.tolist())) == b.num_nodes  # no node twice
        assert torch.equal(b.x, data.x[b.n_id]) and torch.equal(b.y, data.y[b.n_id])
    assert {int(i) for b in batches for i in b.n_id[:b.batch_size]} == set(range(100))


def test_sampler_with_large_fanout_returns_the_whole_neighbourhood():
    data = planted_graph(300, 3, 5, seed=1)
    seed_nodes = torch.tensor([3, 7, 11])
    b = next(iter(sampling.neighbor_loader(data, seed_nodes, [-1], batch_size=3)))
    expected = torch.isin(data.edge_index[1], seed_nodes).sum()
    assert b.num_sampled_edges == [int(expected)]
    if not sampling.torch_geometric.typing.WITH_PYG_LIB:  # seeded: the same batch twice
        again = next(iter(sampling.neighbor_loader(data, seed_nodes, [2], batch_size=3, seed=5)))
        once = next(iter(sampling.neighbor_loader(data, seed_nodes, [2], batch_size=3, seed=5)))
        assert torch.equal(again.n_id, once.n_id)


@pytest.fixture(scope="module")
def citeseer(shared_datasets, cache_dir):
    return load_dataset("citeseer", shared_datasets, cache_dir)


def test_citeseer_trains_on_neighbour_samples_when_forced(citeseer, monkeypatch):
    calls = []
    real = sampling.neighbor_loader
    monkeypatch.setattr(sampling, "neighbor_loader", lambda *a, **k: calls.append(a[2]) or real(*a, **k))
    config = TrainConfig(epochs=8, patience=8, device="cpu", sample_above_nodes=1000, fanouts=(4,),
                         node_batch_size=256)
    result = evaluate(arch(layers=2), citeseer, config)
    assert calls == [[4, 4]] * 3  # train, val and test loaders; the fan-out repeats per layer
    assert 0.45 < result.test_metric <= 1 and 0.45 < result.val_metric <= 1
    assert result.flops > 0  # measured on one full-graph forward


def test_quadratic_attention_is_refused_on_a_sampled_graph(citeseer):
    config = TrainConfig(epochs=1, device="cpu", sample_above_nodes=1000)
    with pytest.raises(ValueError, match=r"attention full, which scores all N\^2 node pairs; this graph has 3,327 "
                                         r"nodes \(> sample_above_nodes=1,000\)"):
        evaluate(arch(attention="full"), citeseer, config)
    linear = evaluate(arch(attention="linear", layers=1), citeseer, config)
    assert 0 < linear.val_metric <= 1


@pytest.mark.slow  # a full search or several: over 2 s on 2 cores
def test_generated_graph_of_200k_nodes_trains_with_small_fanout():
    data = planted_graph(200_000, 3, 6, seed=2)
    perm = torch.randperm(200_000, generator=torch.Generator().manual_seed(0))
    bundle = DatasetBundle(name="planted-200k", data=data, info=DataInfo("node_classification", 3, 3),
                           splits=Splits(perm[:3000], perm[3000:4000], perm[4000:5000]))
    config = TrainConfig(epochs=3, patience=3, device="cpu", fanouts=(5, 3), node_batch_size=512, latency_repeats=1)
    assert data.num_nodes > config.sample_above_nodes  # the default threshold picks sampling by itself
    result = evaluate(arch(hidden=16), bundle, config)
    assert result.test_metric > 0.6  # an MLP on the features alone: 0.48; the neighbours carry the rest


def planted_bundle(num_nodes: int = 2000) -> DatasetBundle:
    data = planted_graph(num_nodes, 3, 6, seed=3)
    perm = torch.randperm(num_nodes, generator=torch.Generator().manual_seed(0))
    third = num_nodes // 3
    return DatasetBundle(name=f"planted-{num_nodes}", data=data, info=DataInfo("node_classification", 3, 3),
                         splits=Splits(perm[:third], perm[third:2 * third], perm[2 * third:]))


def plain_sage(hidden: int = 16) -> Architecture:
    """2-layer SAGE without dropout or batch statistics: with every neighbour sampled and the
    training nodes in one batch, a sampled epoch computes the full-batch epoch's loss."""
    return Architecture(space="test", hidden_dim=hidden, num_layers=2, dropout=0.0, lr=0.01, weight_decay=5e-4,
                        layers=tuple({"mpnn": "sage", "attention": "none", "norm": "none"} for _ in range(2)))


def test_sampled_training_with_every_neighbour_matches_full_batch():
    bundle = planted_bundle()
    full = TrainConfig(epochs=15, patience=15, device="cpu", latency_repeats=1)
    sampled = full.model_copy(update={"sample_above_nodes": 100, "fanouts": (-1,), "node_batch_size": 2000})
    a, b = evaluate(plain_sage(), bundle, full), evaluate(plain_sage(), bundle, sampled)
    assert b.val_metric == pytest.approx(a.val_metric, abs=2e-3)  # at most one node of 666 flips
    assert b.test_metric == pytest.approx(a.test_metric, abs=2e-3)
    assert b.best_epoch == a.best_epoch and a.val_metric > 0.6


def test_sampled_training_with_small_fanouts_agrees_with_full_batch():
    bundle = planted_bundle()
    full = TrainConfig(epochs=30, patience=30, device="cpu", latency_repeats=1)
    sampled = full.model_copy(update={"sample_above_nodes": 100, "fanouts": (5, 3), "node_batch_size": 128})
    a, b = evaluate(arch(hidden=16), bundle, full), evaluate(arch(hidden=16), bundle, sampled)
    assert a.test_metric > 0.6 and abs(b.test_metric - a.test_metric) < 0.05
