"""The sparse adjacency path (search_spaces/adjacency.py): every operator that declares
``sparse_adjacency`` computes with ``adj_t`` what it computes with ``edge_index``, on a directed
graph with a repeated edge and a self-loop, outputs and gradients; a whole model does too; and
full-graph training uses it exactly for the architectures that may."""
from __future__ import annotations

import pytest
import torch
from torch_geometric.utils import coalesce

from graphnas.search_spaces import DataInfo, build_model
from graphnas.search_spaces.adjacency import MIN_SPARSE_WIDTH, aggregation_widths, sparse_adjacency, uses_sparse_adjacency
from graphnas.search_spaces.operators import MPNN, OpContext
from graphnas.search_spaces.zoo import zoo_entry

SPARSE = MPNN.with_capability("sparse_adjacency")


def directed_graph(n: int = 15, e: int = 50, channels: int = 8):
    gen = torch.Generator().manual_seed(0)
    edge_index = torch.randint(0, n, (2, e), generator=gen)
    # directed, unsorted, a node with no in-edges (the last); graphs with self-loops or
    # repeated edges keep edge_index (test below)
    edge_index = edge_index[:, edge_index[0] != edge_index[1]]
    edge_index = coalesce(edge_index[:, edge_index[1] != n - 1]).flip(1)
    return torch.randn(n, channels, generator=gen), edge_index


def test_the_capability_is_declared_by_the_gather_free_operators_and_not_by_attention():
    assert {"gcn", "sage", "gin", "graphconv", "appnp", "dagnn", "mlp"} <= set(SPARSE)
    assert not {"gat", "gatv2", "gat_sep", "gt_sep", "gine", "pna", "cheb"} & set(SPARSE)


@pytest.mark.parametrize("name", SPARSE)
def test_an_operator_computes_the_same_with_adj_t_as_with_edge_index(name):
    x, edge_index = directed_graph()
    adj_t = sparse_adjacency(edge_index, x.size(0))
    torch.manual_seed(0)
    op = MPNN.get(name)(OpContext(channels=8)).eval()
    grads = []
    for graph in (edge_index, adj_t):
        xg = x.clone().requires_grad_(True)
        out = op(xg, graph)
        (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
        grads.append((out.detach(), xg.grad))
        op.zero_grad()
    torch.testing.assert_close(grads[0][0], grads[1][0], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(grads[0][1], grads[1][1], atol=1e-5, rtol=1e-4)


def test_a_deep_skip_connected_normalised_model_computes_the_same_with_adj_t():
    x, edge_index = directed_graph(channels=7)
    info = DataInfo("node_classification", num_features=7, num_outputs=3)
    arch = zoo_entry("luo_sage").architecture_for("squirrel_filtered").model_copy(update={"hidden_dim": 16})
    torch.manual_seed(0)
    model = build_model(arch, info).eval()
    a = model(x, edge_index)
    b = model(x, sparse_adjacency(edge_index, x.size(0)))
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_a_graph_with_self_loops_or_repeated_edges_keeps_edge_index():
    x, edge_index = directed_graph()
    assert sparse_adjacency(edge_index, x.size(0)) is not None
    assert sparse_adjacency(torch.cat([edge_index, torch.tensor([[4], [4]])], dim=1), x.size(0)) is None
    assert sparse_adjacency(torch.cat([edge_index, edge_index[:, :1]], dim=1), x.size(0)) is None


INFO = DataInfo("node_classification", num_features=100, num_outputs=5)


def test_attention_and_edge_masks_keep_edge_index():
    assert not uses_sparse_adjacency(zoo_entry("luo_gat").architecture, INFO)
    assert not uses_sparse_adjacency(zoo_entry("platonov_gt_sep").architecture, INFO)
    arch = zoo_entry("luo_gcn").architecture
    assert uses_sparse_adjacency(arch, INFO)
    masked = arch.model_copy(update={"sparsity": {"edges": 0.5}})
    assert not uses_sparse_adjacency(type(arch).model_validate(masked.model_dump()), INFO)


def test_a_narrow_aggregation_keeps_edge_index():
    """GCN and DAGNN aggregate after their linear map, SAGE before it: zoo:gcn's classifier layer
    aggregates at the 5 classes, where the sparse product is the slower."""
    assert aggregation_widths(zoo_entry("gcn").architecture, INFO) == [16, 5]
    assert aggregation_widths(zoo_entry("sage").architecture, INFO) == [100, 64]
    assert aggregation_widths(zoo_entry("dagnn").architecture, INFO) == [5]  # its mlp layer aggregates nothing
    assert aggregation_widths(zoo_entry("luo_gcn").architecture, INFO) == [512] * 5  # a linear head
    assert uses_sparse_adjacency(zoo_entry("sage").architecture, INFO)
    for narrow in ("gcn", "dagnn"):
        assert not uses_sparse_adjacency(zoo_entry(narrow).architecture, INFO)
    wide = zoo_entry("luo_gcn").architecture.model_copy(update={"hidden_dim": MIN_SPARSE_WIDTH // 2})
    assert not uses_sparse_adjacency(wide, INFO)


def test_a_wide_model_with_a_narrow_classifier_layer_takes_the_sparse_product():
    """A 128-wide GCN whose last GCN layer aggregates at the 5 classes: the wide layer's gain
    outweighs the narrow one's loss (4.3x per epoch on 10k nodes, benchmarks/scale.py)."""
    gcn = zoo_entry("gcn").architecture.model_copy(update={"hidden_dim": 128})
    assert aggregation_widths(gcn, INFO) == [128, 5]
    assert uses_sparse_adjacency(gcn, INFO)
    four_narrow = gcn.model_copy(update={"hidden_dim": 64, "num_layers": 2})
    assert uses_sparse_adjacency(four_narrow, INFO)  # [64, 5]
    many = DataInfo("node_classification", num_features=100, num_outputs=40)
    assert not uses_sparse_adjacency(four_narrow, many)  # [64, 40]: 64 < 2 x 40


def test_full_graph_training_uses_adj_t_and_learns_the_same(monkeypatch, cache_dir):
    from graphnas.evaluators import training
    from graphnas.evaluators.datasets import load_dataset

    bundle = load_dataset("synthetic", cache_dir=cache_dir)
    assert not bundle.info.graph_level
    # chameleon's setting, no BatchNorm: a bias before BatchNorm has a gradient of 0 up to float
    # noise, which Adam turns into full-size steps, so the two paths would drift apart harmlessly
    arch = zoo_entry("luo_gcn").architecture_for("chameleon_filtered").model_copy(
        update={"hidden_dim": MIN_SPARSE_WIDTH, "num_layers": 3})
    config = training.TrainConfig(epochs=8, patience=8, seed=0, device="cpu")
    task = training._NodeTask(bundle, arch, torch.device("cpu"), config)
    assert task.inputs["edge_index"].layout == torch.sparse_csr
    sparse = training.train_model(arch, bundle, config).result
    monkeypatch.setattr(training, "uses_sparse_adjacency", lambda arch, info: False)
    assert training._NodeTask(bundle, arch, torch.device("cpu"), config).inputs["edge_index"].layout == torch.strided
    dense = training.train_model(arch, bundle, config).result
    assert sparse.val_metric == pytest.approx(dense.val_metric, abs=1e-6)
    assert sparse.test_metric == pytest.approx(dense.test_metric, abs=1e-6)
    assert sparse.flops == dense.flops  # cost is measured on edge_index either way


def test_the_adjacency_is_built_once_per_dataset(cache_dir):
    from dataclasses import replace

    from graphnas.evaluators.datasets import load_dataset

    bundle = load_dataset("synthetic", cache_dir=cache_dir)
    first = bundle.sparse_adjacency()
    assert first is not None and replace(bundle, splits=bundle.splits).sparse_adjacency() is first
    other = replace(bundle, data=bundle.data.clone())  # other edge tensors: built again
    assert other.sparse_adjacency() is not first


def _propagating_model(channels: int = 8):
    from graphnas.search_spaces import Architecture

    arch = Architecture(space="test", hidden_dim=MIN_SPARSE_WIDTH, num_layers=3, dropout=0.0, lr=0.01,
                        weight_decay=0.0, layers=tuple({"mpnn": m, "attention": "none", "norm": "none"}
                                                       for m in ("gcn", "dagnn", "appnp")))
    torch.manual_seed(0)
    return build_model(arch, DataInfo("node_classification", num_features=channels, num_outputs=3)).eval()


@pytest.mark.parametrize("layout", ["edge_index", "adj_t"])
def test_cached_normalisation_normalises_once_and_computes_the_same(monkeypatch, layout):
    import torch_geometric.nn.conv.appnp as appnp
    import torch_geometric.nn.conv.gcn_conv as gcn_conv

    import graphnas.search_spaces.operators.propagation as propagation
    from graphnas.search_spaces.adjacency import cached_normalisation

    x, edge_index = directed_graph()
    graph = edge_index if layout == "edge_index" else sparse_adjacency(edge_index, x.size(0))
    model = _propagating_model()
    plain = [model(x, graph) for _ in range(2)]
    calls = []
    for module in (gcn_conv, appnp, propagation):
        real = module.gcn_norm
        monkeypatch.setattr(module, "gcn_norm", lambda *a, _real=real, **k: calls.append(1) or _real(*a, **k))
    with cached_normalisation(model):
        cached = [model(x, graph) for _ in range(3)]
    assert len(calls) == 3  # once per normalising module (GCNConv, DAGNN, APPNP), not once per forward
    for out in cached:
        torch.testing.assert_close(out, plain[0], atol=1e-6, rtol=1e-5)
    normalising = [m for m in model.modules() if hasattr(m, "_cached_adj_t")]
    assert len(normalising) == 3
    assert all(not m.cached and m._cached_adj_t is None and m._cached_edge_index is None for m in normalising)
    calls.clear()
    model(x, graph)
    assert len(calls) == 3  # after the block, every forward normalises again


def test_full_batch_training_normalises_once_per_trial_except_with_edge_masks(monkeypatch, cache_dir):
    import torch_geometric.nn.conv.gcn_conv as gcn_conv

    from graphnas.evaluators import training
    from graphnas.evaluators.datasets import load_dataset
    from graphnas.search_spaces import Architecture

    bundle = load_dataset("synthetic", cache_dir=cache_dir)
    calls = []
    real = gcn_conv.gcn_norm
    monkeypatch.setattr(gcn_conv, "gcn_norm", lambda *a, **k: calls.append(1) or real(*a, **k))
    arch = Architecture(space="test", hidden_dim=MIN_SPARSE_WIDTH, num_layers=2, dropout=0.0, lr=0.01,
                        weight_decay=0.0, layers=tuple({"mpnn": "gcn", "attention": "none", "norm": "none"}
                                                       for _ in range(2)))
    config = training.TrainConfig(epochs=6, patience=6, seed=0, device="cpu", latency_repeats=1)
    training.train_model(arch, bundle, config)
    cached = len(calls)
    calls.clear()
    masked = Architecture.model_validate({**arch.model_dump(), "sparsity": {"edges": 0.3}})
    training.train_model(masked, bundle, config)
    # 2 layers x 6 epochs x (a training and an eval forward): 24 normalisations uncached, as with
    # edge masks (hardening changes the graph); cached, 2. The cost measurement's forwards on the
    # model as built (FLOPs, latency) normalise each time in both.
    assert len(calls) >= 24 and cached == len(calls) - 24 + 2
