"""``softplus``: softplus similarities normalised by their l1 sum and scaled by log N
(softplus attention with length re-weighting, Gao et al. 2025)."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from graphnas.search_spaces.operators.attention._dense import DenseAttention
from graphnas.search_spaces.operators.base import ATTENTION


class SoftplusAttention(DenseAttention):
    """``w_ij = softplus(log(N) q_i k_j / sqrt(D)) / sum_j softplus(...)``, ``out_i = sum_j w_ij v_j``
    with N the number of nodes of the query's graph: softplus replaces exp, so scores grow
    linearly rather than exponentially, and the log N factor keeps attention from flattening
    as graphs grow (length extrapolation).

    Cost: O(N^2 D). FLOPs: the ``2 N C 4C`` projections and ``4 B H L^2 D``."""


    def attend(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor, **kw) -> Tensor:
        n = mask.sum(1).clamp(min=2).to(q.dtype)  # log 1 = 0 would flatten a one-node graph
        scale = (torch.log(n) / math.sqrt(q.size(-1)))[:, None, None, None]
        scores = F.softplus(scale * (q @ k.transpose(-1, -2))) * mask[:, None, None, :]
        return (scores / scores.sum(-1, keepdim=True).clamp(min=1e-12)) @ v


ATTENTION.register("softplus", "Softplus attention, l1-normalised, log N scaled (Gao et al. 2025), O(N^2)",
                   cost="quadratic", prunable_heads=True)(
    SoftplusAttention)
