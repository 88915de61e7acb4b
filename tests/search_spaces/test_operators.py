"""Every registered MPNN and attention primitive: shapes, gradients, equivariance, no mixing."""
from __future__ import annotations

import pytest
import torch

from graphnas.search_spaces.operators import ACTIVATION, ATTENTION, ENCODING, MPNN, NORM, POOLING, OpContext
from graphnas.search_spaces.registry import Registry, UnknownNameError
from graphnas.evaluators.metrics import METRICS

C, EDGE_DIM = 16, 4
OPERATORS = [("mpnn", n) for n in MPNN.names()] + [("attention", n) for n in ATTENTION.names()]
REG = {"mpnn": MPNN, "attention": ATTENTION}


def make(kind: str, name: str, edge_dim=EDGE_DIM):
    torch.manual_seed(0)
    ctx = OpContext(channels=C, heads=2, edge_dim=edge_dim, deg=torch.tensor([0, 3, 5, 4, 2]))
    return REG[kind].get(name)(ctx)


def test_every_name_a_preset_or_zoo_design_uses_is_registered_with_its_capabilities_declared():
    """Derived from the registries and the presets, not a hand-written list of names: a new
    operator needs no edit here, and one a preset names but nobody registered fails."""
    from graphnas.search_spaces import SearchSpace, preset_names
    from graphnas.search_spaces.zoo import zoo_entries

    registries = {"mpnn": MPNN, "attention": ATTENTION, "encoding": ENCODING, "norm": NORM, "pooling": POOLING,
                  "activation": ACTIVATION}
    used: dict[str, set] = {field: set() for field in registries}
    for name in preset_names():
        spec = SearchSpace.preset(name).spec
        for field in registries:
            choice = getattr(spec.layers, field, None) or getattr(spec.global_, field, None)
            if choice is not None:
                used[field].update(choice.values())
    for design in zoo_entries():
        for layer in design.architecture.layers:
            used["mpnn"].add(layer.mpnn)
            used["attention"].add(layer.attention)
    for field, names in used.items():
        assert names and names <= set(registries[field].names()), (field, names - set(registries[field].names()))
    for registry in (MPNN, ATTENTION):
        for entry in registry:
            assert entry.description and set(entry.capabilities) <= set(registry.capabilities)
            assert all(c in entry.capabilities for c in registry.required)


def test_a_misspelt_or_missing_capability_is_refused_at_registration():
    demo = Registry("demo", capabilities={"edge_features": "reads edge_attr"}, required=("edge_features",))
    with pytest.raises(ValueError, match=r"declares unknown capabilities \['edge_feature'\]; a demo may declare: "
                                         r"edge_features"):
        demo.register("x", "an operator", edge_feature=True)(object)
    with pytest.raises(ValueError, match="'y' must declare edge_features"):
        demo.register("y", "an operator")(object)
    with pytest.raises(ValueError, match="must declare cost"):
        ATTENTION.register("quadratic_but_forgot", "a new attention form")(object)
    assert "quadratic_but_forgot" not in ATTENTION


@pytest.mark.parametrize("kind,name", OPERATORS)
@pytest.mark.parametrize("edge_dim", [EDGE_DIM, None], ids=["edges", "no-edges"])
@pytest.mark.parametrize("graphs", ["single", "batch"])
def test_forward_backward(kind, name, edge_dim, graphs, small_graph, graph_batch):
    data = small_graph if graphs == "single" else graph_batch
    op = make(kind, name, edge_dim)
    edge_attr = data.edge_attr if edge_dim else None
    x = data.x.clone().requires_grad_(True)
    out = op(x, data.edge_index, edge_attr, getattr(data, "batch", None))
    assert out.shape == (data.num_nodes, C)
    assert torch.isfinite(out).all()
    if name == "none":
        assert not any(True for _ in op.parameters()) and (out == 0).all()
        return
    (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
    for pname, p in op.named_parameters():
        assert p.grad is not None, f"{name}: parameter {pname} got no gradient"
        assert torch.isfinite(p.grad).all(), f"{name}: parameter {pname} has a non-finite gradient"
        assert p.grad.abs().sum() > 0, f"{name}: parameter {pname} has an all-zero gradient"
    assert x.grad is not None and torch.isfinite(x.grad).all()


@pytest.mark.parametrize("kind,name", OPERATORS)
def test_permutation_equivariance(kind, name, small_graph):
    op = make(kind, name).eval()
    g = small_graph
    perm = torch.randperm(g.num_nodes, generator=torch.Generator().manual_seed(1))
    inv = torch.empty_like(perm)
    inv[perm] = torch.arange(len(perm))
    with torch.no_grad():
        out = op(g.x, g.edge_index, g.edge_attr, None)
        out_perm = op(g.x[perm], inv[g.edge_index], g.edge_attr, None)
    torch.testing.assert_close(out_perm, out[perm], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("kind,name", OPERATORS)
def test_graphs_of_a_batch_do_not_mix(kind, name, graph_batch):
    op = make(kind, name).eval()
    with torch.no_grad():
        batched = op(graph_batch.x, graph_batch.edge_index, graph_batch.edge_attr, graph_batch.batch)
        for i, g in enumerate(graph_batch.to_data_list()):
            alone = op(g.x, g.edge_index, g.edge_attr, None)
            torch.testing.assert_close(batched[graph_batch.batch == i], alone, atol=1e-5, rtol=1e-4)


def test_attention_needs_divisible_heads():
    with pytest.raises(ValueError, match="channels divisible by heads"):
        ATTENTION.get("full")(OpContext(channels=10, heads=3))


@pytest.mark.parametrize("name", ["lap_pe", "rwse", "degree", "lap_pe_signnet"])
def test_encodings_compute_and_embed(name, small_graph):
    from torch_geometric.utils import to_undirected

    g = small_graph.clone()
    g.edge_index = to_undirected(g.edge_index)
    pe = ENCODING.get(name).compute(g, 6)
    assert pe.shape == (g.num_nodes, 6) and torch.isfinite(pe).all()
    if name.startswith("lap_pe"):  # orthonormal eigenvectors of the normalised Laplacian
        torch.testing.assert_close(pe.T @ pe, torch.eye(6), atol=1e-4, rtol=0)
    if name == "rwse":  # return probabilities; one step never returns without self-loops
        assert (pe >= 0).all() and (pe <= 1 + 1e-6).all() and (pe[:, 0] == 0).all()
    if name == "degree":
        assert (pe.sum(1) == 1).all()
    enc = ENCODING.get(name)(4, C)  # a trial may use fewer columns than were computed
    assert enc(pe).shape == (g.num_nodes, C)


def test_lap_pe_pads_graphs_smaller_than_k():
    from torch_geometric.data import Data

    g = Data(edge_index=torch.tensor([[0, 1, 1, 2], [1, 0, 2, 1]]), num_nodes=3)
    pe = ENCODING.get("lap_pe").compute(g, 5)
    assert pe.shape == (3, 5) and (pe[:, 1:] == 0).all() and pe[:, 0].abs().sum() > 0


def test_norms_and_pooling(graph_batch):
    for name in NORM.names():
        assert NORM.get(name)(C)(graph_batch.x, graph_batch.batch).shape == graph_batch.x.shape
    for name in POOLING.names():
        assert POOLING.get(name)(graph_batch.x, graph_batch.batch).shape == (3, C)


def test_registry_rejects_duplicates_and_lists_names():
    reg: Registry = Registry("demo")
    reg.register("a", "first")(object)
    with pytest.raises(ValueError, match="'a' is already registered"):
        reg.register("a", "again")(object)
    with pytest.raises(UnknownNameError,
                       match=r"unknown mpnn operator 'gcnn' \(did you mean 'gcn'\?\); registered: appnp, arma, cheb"):
        MPNN.get("gcnn")
    with pytest.raises(UnknownNameError, match=r"^unknown metric 'foo'; registered: accuracy"):  # no "operator"
        METRICS.get("foo")


def test_signnet_is_invariant_to_eigenvector_signs(small_graph):
    from torch_geometric.utils import to_undirected

    g = small_graph.clone()
    g.edge_index = to_undirected(g.edge_index)
    enc = ENCODING.get("lap_pe_signnet")
    pe = enc.compute(g, 6)
    assert enc.attr == "lap_pe" and torch.equal(pe, ENCODING.get("lap_pe").compute(g, 6))
    module = enc(6, C)
    flipped = pe * torch.tensor([1, -1, -1, 1, -1, 1.0])
    torch.testing.assert_close(module(flipped), module(pe))
    assert not torch.allclose(module(pe), module(torch.roll(pe, 1, dims=1)))  # but not to their order
