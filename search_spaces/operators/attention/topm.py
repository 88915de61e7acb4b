"""``topm``: each node attends only to its m most similar nodes (TANGNN, "Top-m Attention
and Neighborhood Aggregation", 2024)."""
from __future__ import annotations

import math

import torch
from torch import Tensor

from graphnas.search_spaces.operators.attention._dense import DenseAttention
from graphnas.search_spaces.operators.base import ATTENTION, OpContext

CHUNK = 1024  # queries per chunk: peak memory B x H x CHUNK x L instead of B x H x L x L


class TopMAttention(DenseAttention):
    """Scores ``q_i k_j / sqrt(D)`` are computed a chunk of queries at a time; each query
    keeps its m highest-scoring keys of its own graph, softmax over those m, and sums
    their values. Rows have exactly ``min(m, n_graph)`` non-zero weights.

    Cost: O(N^2 D) for the scores (chunked, never an N x N matrix for graphs larger than a
    chunk) plus O(N m D) for the aggregation. FLOPs: the ``2 N C 4C`` projections,
    ``2 B H L^2 D`` for the scores and ``2 B H L m D`` for the weighted sum."""


    def __init__(self, ctx: OpContext) -> None:
        super().__init__(ctx)
        self.m = ctx.top_m

    def weights(self, q: Tensor, k: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """Top-m indices ``[B, H, Lq, m]`` and their softmax weights (zero on padding)."""
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(q.size(-1))
        scores = scores.masked_fill(~mask[:, None, None, :], float("-inf"))
        top, index = scores.topk(min(self.m, k.size(2)), dim=-1)
        return index, torch.softmax(top, dim=-1).nan_to_num(0.0)

    def attend(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor, **kw) -> Tensor:
        outs = []
        for start in range(0, q.size(2), CHUNK):
            index, weight = self.weights(q[:, :, start:start + CHUNK], k, mask)
            b, h, lq, m = index.shape
            picked = v.gather(2, index.reshape(b, h, lq * m, 1).expand(-1, -1, -1, v.size(-1)))
            outs.append(torch.einsum("bhqm,bhqmd->bhqd", weight, picked.view(b, h, lq, m, -1)))
        return torch.cat(outs, dim=2)


ATTENTION.register("topm", "Each node attends to its top-m most similar nodes (TANGNN), chunked",
                   cost="quadratic", prunable_heads=True, top_m=True)(TopMAttention)
