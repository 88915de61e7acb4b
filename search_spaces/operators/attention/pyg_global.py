"""``sgformer`` and ``polynormer``: PyG's SGFormerAttention (Wu et al. 2023) and
PolynormerAttention (Deng et al. 2024)."""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

from graphnas.search_spaces.operators.attention._dense import head_width
from graphnas.search_spaces.operators.base import ATTENTION, OpContext
from graphnas.search_spaces.operators.pyg import attention


class _PerGraph(nn.Module):
    """Calls a PyG dense global-attention module once per graph, unpadded.

    Both PyG modules mask padded nodes only in V: padded keys still enter their key sums
    and SGFormer scales by the padded length, so a graph's output would depend on the rest
    of its batch. One call per graph keeps graphs apart exactly; for node-level tasks
    (one graph) it is a single call."""

    def __init__(self, attn: nn.Module) -> None:
        super().__init__()
        self.attn = attn

    def forward(self, x: Tensor, edge_index: Tensor, edge_attr: Optional[Tensor] = None,
                batch: Optional[Tensor] = None) -> Tensor:
        if batch is None:
            return self.attn(x.unsqueeze(0)).squeeze(0)
        sizes = torch.bincount(batch).tolist()
        return torch.cat([self.attn(part.unsqueeze(0)).squeeze(0) for part in x.split(sizes)])


class SGFormerAttention(_PerGraph):
    """SGFormer's simple global attention: l2-normalised q, k; ``out = (Q (K^T V) + N V) /
    (Q K^T 1 + N)``, averaged over heads; O(N D^2). FLOPs: ``2 N C 3 H C`` projections plus
    ``4 N H C C`` for the linear attention products."""

    def __init__(self, ctx: OpContext) -> None:
        super().__init__(attention.SGFormerAttention(ctx.channels, heads=ctx.heads, head_channels=ctx.channels))


class PolynormerAttention(_PerGraph):
    """Polynormer's linear global attention with a polynomial (gated) output; O(N D^2)."""

    def __init__(self, ctx: OpContext) -> None:
        super().__init__(attention.PolynormerAttention(ctx.channels, heads=ctx.heads, head_channels=head_width(ctx)))


ATTENTION.register("sgformer", "SGFormer simple global attention (PyG SGFormerAttention), O(N)",
                   cost="linear")(SGFormerAttention)
ATTENTION.register("polynormer", "Polynormer linear global attention (PyG PolynormerAttention), O(N)",
                   cost="linear")(
    PolynormerAttention)
