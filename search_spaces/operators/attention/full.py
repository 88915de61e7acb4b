"""``full``: multi-head softmax attention over all nodes of each graph (Vaswani et al.
2017, as the global branch of GraphGPS, Rampasek et al. 2022)."""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from graphnas.search_spaces.operators.attention._dense import DenseAttention
from graphnas.search_spaces.operators.base import ATTENTION, OpContext


class FullAttention(DenseAttention):
    """Softmax attention of every node to every node of its own graph.

    Graphs of a batch are padded to ``N_max`` nodes (``to_dense_batch``) and padding keys
    are masked out, so graphs never mix. Shapes: ``x [N, C]``, ``batch [N]`` -> ``[N, C]``.

    Cost: O(B N_max^2 C) time and O(B H N_max^2) memory. FLOPs (forward, 2 per
    multiply-add): ``2 N C 3C + 2 N C C`` for the projections plus ``4 B H N_max^2 (C/H)``
    for scores and weighted sum.
    """


    def __init__(self, ctx: OpContext) -> None:
        super().__init__(ctx)
        self.dropout = ctx.dropout

    def attend(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor, **kw) -> Tensor:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None, None, :],
                                              dropout_p=self.dropout if self.training else 0.0)


ATTENTION.register("full", "Multi-head softmax attention over all nodes of each graph, O(N^2)",
                   cost="quadratic", prunable_heads=True,
                   attention_dropout=True)(
    FullAttention)
