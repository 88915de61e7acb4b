"""``performer``: FAVOR+ linear attention (Choromanski et al. 2021) on PyG's PerformerAttention."""
from __future__ import annotations

from typing import Optional

from torch import Tensor, nn

from graphnas.search_spaces.operators.attention._dense import head_width
from graphnas.search_spaces.operators.base import ATTENTION, OpContext
from graphnas.search_spaces.operators.pyg import gnn, performer, utils


class PerformerAttention(nn.Module):
    """Kernelised attention with random orthogonal features; never forms the N x N matrix.

    Shapes: ``x [N, C]``, ``batch [N]`` -> ``[N, C]``. Cost: O(N m C) for m random features
    (PyG: m = d log d per head of width d). FLOPs: ``2 N C 4C`` for the q, k, v and output
    projections, ``2 * 2 N m d`` per head for the feature maps of q and k, and
    ``2 * 2 N m d`` per head for ``K'^T V`` and ``Q' (K'^T V)``.

    Uses the layers, projection matrix, kernel and ``linear_attention`` of PyG's
    PerformerAttention, but its own forward: PyG masks padded nodes only in V, so the
    kernel's epsilon of every padding key still enters the normaliser and a graph's output
    depends on how much padding its batch has. Here padded keys are zeroed after the
    feature map, so a graph's output is the same alone or in any batch.
    """

    def __init__(self, ctx: OpContext) -> None:
        super().__init__()
        self.heads = ctx.heads
        self.head_dim = head_width(ctx)
        self.attn = gnn.PerformerAttention(ctx.channels, heads=ctx.heads, head_channels=self.head_dim,
                                            dropout=ctx.dropout)

    def forward(self, x: Tensor, edge_index: Tensor, edge_attr: Optional[Tensor] = None,
                batch: Optional[Tensor] = None) -> Tensor:
        dense, mask = utils.to_dense_batch(x, batch)  # [B, L, C], [B, L]
        b, length, _ = dense.shape
        a = self.attn
        q, k, v = (lin(dense).view(b, length, self.heads, self.head_dim).transpose(1, 2)
                   for lin in (a.q, a.k, a.v))  # [B, H, L, D]
        proj = a.fast_attn.projection_matrix
        q_feat = performer.generalized_kernel(q, proj, a.fast_attn.kernel)
        k_feat = performer.generalized_kernel(k, proj, a.fast_attn.kernel) * mask[:, None, :, None]
        out = performer.linear_attention(q_feat, k_feat, v)  # [B, H, L, D]
        out = a.dropout(a.attn_out(out.transpose(1, 2).reshape(b, length, -1)))
        return out[mask]


ATTENTION.register("performer", "Performer FAVOR+ linear attention (PyG PerformerAttention), O(N)",
                   cost="linear")(
    PerformerAttention)
