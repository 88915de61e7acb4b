"""``full``: multi-head softmax attention over all nodes of each graph (Vaswani et al.
2017, as the global branch of GraphGPS, Rampasek et al. 2022)."""
from __future__ import annotations

from typing import Optional

import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.utils import to_dense_batch

from search_spaces.operators.attention._dense import head_width
from search_spaces.operators.base import ATTENTION, OpContext


class FullAttention(nn.Module):
    """Softmax attention of every node to every node of its own graph.

    Graphs of a batch are padded to ``N_max`` nodes (``to_dense_batch``) and padding keys
    are masked out, so graphs never mix. Shapes: ``x [N, C]``, ``batch [N]`` -> ``[N, C]``.

    Cost: O(B N_max^2 C) time and O(B H N_max^2) memory. FLOPs (forward, 2 per
    multiply-add): ``2 N C 3C + 2 N C C`` for the projections plus ``4 B H N_max^2 (C/H)``
    for scores and weighted sum.
    """

    def __init__(self, ctx: OpContext) -> None:
        super().__init__()
        self.heads = ctx.heads
        self.head_dim = head_width(ctx)
        self.dropout = ctx.dropout
        self.qkv = nn.Linear(ctx.channels, 3 * ctx.channels)
        self.out = nn.Linear(ctx.channels, ctx.channels)

    def forward(self, x: Tensor, edge_index: Tensor, edge_attr: Optional[Tensor] = None,
                batch: Optional[Tensor] = None) -> Tensor:
        qkv, mask = to_dense_batch(self.qkv(x), batch)  # [B, L, 3C], [B, L]
        b, length, _ = qkv.shape
        q, k, v = qkv.view(b, length, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask[:, None, None, :],
            dropout_p=self.dropout if self.training else 0.0)  # [B, H, L, D]
        out = out.transpose(1, 2).reshape(b, length, -1)[mask]
        return self.out(out)


ATTENTION.register("full", "Multi-head softmax attention over all nodes of each graph, O(N^2)")(
    FullAttention)
