"""Each attention form against a plain dense reference written here, or the property that
defines it; and its FLOPs against its formula."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from evaluators.cost import flops_of
from search_spaces.operators import ATTENTION, OpContext
from search_spaces.operators.attention.flow import flow_scores

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

    for name in ("full", "gated", "softplus"):
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
