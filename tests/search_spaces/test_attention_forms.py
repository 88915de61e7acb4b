"""Each attention form against a plain dense reference written here, or the property that
defines it; and its FLOPs against its formula."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from graphnas.evaluators.cost import flops_of
from graphnas.search_spaces.operators import ATTENTION, OpContext
from graphnas.search_spaces.operators.attention.flow import flow_scores

B, H, L, D = 1, 2, 9, 4
C = H * D


def qkv(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(B, H, L, D, generator=g) for _ in range(3))


def form(name: str):
    torch.manual_seed(0)
    return ATTENTION.get(name)(OpContext(channels=C, heads=H)).eval()


MASK = torch.ones(B, L, dtype=torch.bool)


def test_linear_equals_dense_reference():
    q, k, v = qkv()
    phi_q, phi_k = F.elu(q) + 1, F.elu(k) + 1
    weights = phi_q @ phi_k.transpose(-1, -2)
    expected = (weights / weights.sum(-1, keepdim=True)) @ v
    torch.testing.assert_close(form("linear").attend(q, k, v, MASK), expected, atol=1e-5, rtol=1e-5)


def test_softplus_equals_dense_reference():
    q, k, v = qkv(1)
    scores = F.softplus(math.log(L) * (q @ k.transpose(-1, -2)) / math.sqrt(D))
    expected = (scores / scores.sum(-1, keepdim=True)) @ v
    torch.testing.assert_close(form("softplus").attend(q, k, v, MASK), expected, atol=1e-5, rtol=1e-5)


def test_gated_equals_dense_reference_and_gates_are_in_0_1():
    op = form("gated")
    x = torch.randn(L, C, generator=torch.Generator().manual_seed(2))
    q, k, v = op.qkv(x).view(L, 3, H, D).permute(1, 2, 0, 3).unsqueeze(1)
    attn = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(D), -1) @ v  # [1, H, L, D]
    gate = op.gates(x)
    assert ((gate > 0) & (gate < 1)).all()
    expected = op.out((attn * gate.view(L, H, D).transpose(0, 1).unsqueeze(0)).transpose(1, 2).reshape(L, C))
    with torch.no_grad():
        torch.testing.assert_close(op(x, torch.empty(2, 0, dtype=torch.long)), expected, atol=1e-5, rtol=1e-5)


def test_agent_equals_dense_reference():
    op = form("agent")
    q, k, v = qkv(3)

    def softmax_attend(a, b, c):
        return torch.softmax(a @ b.transpose(-1, -2) / math.sqrt(D), -1) @ c

    agents = softmax_attend(op.seeds.unsqueeze(0), q, q)
    expected = softmax_attend(q, agents, softmax_attend(agents, k, v))
    torch.testing.assert_close(op.attend(q, k, v, MASK), expected, atol=1e-5, rtol=1e-5)


def test_flow_conserves_flow_and_allocates_in_0_1():
    q, k, _ = (torch.sigmoid(t) for t in qkv(4))
    m = torch.ones(B, 1, L, 1)
    _, _, conserved_sink, conserved_source = flow_scores(q, k, m)
    # every sink receives, and every source emits, a unit of normalised flow in total
    torch.testing.assert_close(conserved_source.sum(2), torch.full((B, H, 1), float(L)), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(conserved_sink.sum(2), torch.full((B, H, 1), float(L)), atol=1e-4, rtol=1e-4)
    allocation = torch.sigmoid(conserved_sink)
    assert ((allocation > 0) & (allocation < 1)).all()


def test_quadratic_and_linear_forms_scale_differently():
    def cost(name: str, n: int) -> int:
        x = torch.randn(n, C)
        return flops_of(form(name), x=x, edge_index=torch.empty(2, 0, dtype=torch.long))

    for name in ("full", "gated", "softplus", "topm"):
        assert cost(name, 800) / cost(name, 200) > 10  # quadratic: ~16x for 4x the nodes
    for name in ("linear", "flow", "agent", "performer", "sgformer", "polynormer"):
        assert cost(name, 800) / cost(name, 200) == pytest.approx(4, rel=0.05)  # linear


def test_linear_flops_formula():
    n = 50
    x = torch.randn(n, C)
    proj = 2 * n * C * 3 * C + 2 * n * C * C
    # per head: K'^T V and Q'(K'^T V) are 2 n D D each, the normaliser Q' (sum K') is 2 n D
    body = H * (2 * n * D * D * 2 + 2 * n * D)
    assert flops_of(form("linear"), x=x, edge_index=torch.empty(2, 0, dtype=torch.long)) == proj + body


@pytest.mark.parametrize("m", [1, 3, 20])
def test_topm_keeps_exactly_m_keys_of_its_graph(m):
    op = ATTENTION.get("topm")(OpContext(channels=C, heads=H, top_m=m))
    q, k, v = (torch.randn(2, H, L, D, generator=torch.Generator().manual_seed(s)) for s in (6, 7, 8))
    mask = torch.ones(2, L, dtype=torch.bool)
    mask[1, 5:] = False  # the second graph has 5 nodes
    index, weight = op.weights(q, k, mask)
    nonzero = (weight > 0).sum(-1)
    assert (nonzero[0] == min(m, L)).all() and (nonzero[1] == min(m, 5)).all()
    assert (index[1][weight[1] > 0] < 5).all()  # never a padded key
    # dense reference: softmax restricted to the top-m scores of each row
    scores = q[0] @ k[0].transpose(-1, -2) / math.sqrt(D)
    keep = scores >= scores.topk(min(m, L), -1).values[..., -1:]
    expected = torch.softmax(scores.masked_fill(~keep, float("-inf")), -1) @ v[0]
    torch.testing.assert_close(op.attend(q, k, v, mask)[0], expected, atol=1e-5, rtol=1e-5)


def test_topm_chunks_queries(monkeypatch):
    import graphnas.search_spaces.operators.attention.topm as topm

    q, k, v = qkv(9)
    op = ATTENTION.get("topm")(OpContext(channels=C, heads=H, top_m=3))
    whole = op.attend(q, k, v, MASK)
    monkeypatch.setattr(topm, "CHUNK", 2)
    torch.testing.assert_close(op.attend(q, k, v, MASK), whole)


def test_kv_from_mpnn_takes_keys_and_values_from_the_mpnn(small_graph):
    from graphnas.search_spaces import Architecture, DataInfo, LayerArch, build_model

    op = ATTENTION.get("kv_from_mpnn")(OpContext(channels=16, heads=2)).eval()
    x, ei = small_graph.x, small_graph.edge_index
    kv = torch.randn_like(x)
    with torch.no_grad():
        assert not torch.allclose(op(x, ei, kv=kv), op(x, ei))  # keys/values matter
        changed_kv = kv.clone()
        isolated = sorted(set(range(x.size(0))) - set(ei[0].tolist()))  # nodes that are no one's source
        if isolated:
            changed_kv[isolated[0]] += 10
            torch.testing.assert_close(op(x, ei, kv=changed_kv), op(x, ei, kv=kv))  # only edges carry kv
    arch = Architecture(space="s", hidden_dim=16, num_layers=1, dropout=0, lr=0.1, weight_decay=0,
                        layers=(LayerArch(mpnn="gin", attention="kv_from_mpnn", kv_source="mpnn", heads=2),))
    model = build_model(arch, DataInfo("node_classification", 16, 3))
    assert model(x, ei).shape == (x.size(0), 3)
    bad = arch.model_copy(update={"layers": (LayerArch(mpnn="gin", attention="full", kv_source="mpnn", heads=2),)})
    with pytest.raises(ValueError, match="kv_source='mpnn' needs an attention form"):
        build_model(bad, DataInfo("node_classification", 16, 3))


def count(name: str, n: int, **ctx) -> int:
    torch.manual_seed(0)
    op = ATTENTION.get(name)(OpContext(channels=C, heads=H, **ctx)).eval()
    return flops_of(op, x=torch.randn(n, C), edge_index=torch.empty(2, 0, dtype=torch.long))


PROJ = lambda n: 2 * n * C * 3 * C + 2 * n * C * C  # noqa: E731  q, k, v and output projections


@pytest.mark.parametrize("name,body", [
    ("full", lambda n: 4 * H * n * n * D),                      # scores + weighted sum
    ("gated", lambda n: 2 * n * C * C + 4 * H * n * n * D),     # + the gate projection
    ("softplus", lambda n: 4 * H * n * n * D),
    ("agent", lambda n: 3 * 4 * H * 8 * n * D),                 # pooling, aggregation, broadcast with 8 agents
    ("topm", lambda n: 2 * H * n * n * D + 2 * H * n * 8 * D),  # all scores, then m=8 values per query
])
def test_flops_formula_per_form(name, body):
    n = 40
    assert count(name, n) == PROJ(n) + body(n)


def test_every_attention_form_declares_its_cost_at_registration():
    from graphnas.search_spaces.operators.attention import COSTS, forms_costing, head_prunable_forms, quadratic_forms

    for entry in ATTENTION:
        assert entry.capabilities.get("cost") in COSTS, f"{entry.name} declares no cost= (one of {COSTS})"
        assert not hasattr(entry.factory, "quadratic") and not hasattr(entry.factory, "takes_kv")  # one place
    assert set(quadratic_forms()) == {"full", "gated", "softplus", "topm"}
    assert forms_costing("none") == ["none"] and "kv_from_mpnn" in forms_costing("edges")
    assert "masked" not in head_prunable_forms() and "full" in head_prunable_forms()
