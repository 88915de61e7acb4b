"""``gated``: softmax attention followed by a head-specific, query-dependent sigmoid gate
(Gated Attention, Qiu et al. 2025: the gate after SDPA, before the output projection)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from graphnas.search_spaces.operators.attention._dense import DenseAttention
from graphnas.search_spaces.sparsity import head_rows, slice_linear
from graphnas.search_spaces.operators.base import ATTENTION, OpContext
from graphnas.search_spaces.operators.pyg import utils


class GatedAttention(DenseAttention):
    """``out_i = sigmoid(x_i W_g)_h * softmax(q_i K^T / sqrt(D)) V`` per head h: each query
    scales what its head returns by a gate in (0, 1), which adds non-linearity and lets a
    head return nothing (no attention sink needed).

    Cost: O(N^2 D) like ``full``. FLOPs: the ``2 N C 4C`` projections, ``2 N C C`` for the
    gate and ``4 B H L^2 D`` for scores and weighted sum."""


    def __init__(self, ctx: OpContext) -> None:
        super().__init__(ctx)
        self.gate = nn.Linear(ctx.channels, ctx.channels)

    def attend(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor, x: Tensor = None, batch=None,
               **kw) -> Tensor:
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None, None, :])
        gate, _ = utils.to_dense_batch(torch.sigmoid(self.gate(x)), batch)  # [B, L, C]
        b, length, _ = gate.shape
        return out * gate.view(b, length, self.heads, self.head_dim).transpose(1, 2)

    def prune_heads(self, keep: Tensor) -> None:
        self.gate = slice_linear(self.gate, rows=head_rows(keep, self.head_dim))
        super().prune_heads(keep)

    def gates(self, x: Tensor) -> Tensor:
        """The gate values ``[N, C]`` (for inspection and tests)."""
        return torch.sigmoid(self.gate(x))


ATTENTION.register("gated", "Softmax attention with a per-head sigmoid output gate (Qiu et al. 2025), O(N^2)",
                   cost="quadratic", prunable_heads=True)(
    GatedAttention)
