"""``agent``: Agent Attention (Han et al. 2023): a few agent tokens pooled from the queries
first gather from all keys and values, then every query reads from the agents."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from graphnas.search_spaces.operators.attention._dense import DenseAttention
from graphnas.search_spaces.operators.base import ATTENTION, OpContext

NUM_AGENTS = 8


class AgentAttention(DenseAttention):
    """``A = pool(Q)`` (n agents), ``V_A = softmax(A K^T / sqrt(D)) V``, ``out = softmax(Q A^T / sqrt(D)) V_A``.

    The vision paper pools agents over image patches; nodes have no order, so here the n
    agents are a learned-seed attention pooling of the queries (as Set Transformer's PMA),
    which keeps the layer permutation-equivariant. Cost: O(N n D). FLOPs: the ``2 N C 4C``
    projections, ``4 L n D`` for pooling, ``4 n L D`` for agent aggregation and ``4 L n D``
    for agent broadcast, per head and padded graph."""

    def __init__(self, ctx: OpContext, num_agents: int = NUM_AGENTS) -> None:
        super().__init__(ctx)
        self.seeds = nn.Parameter(torch.randn(ctx.heads, num_agents, self.head_dim) / math.sqrt(self.head_dim))

    def prune_heads(self, keep: Tensor) -> None:
        self.seeds = nn.Parameter(self.seeds.detach()[keep])
        super().prune_heads(keep)

    def attend(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor, **kw) -> Tensor:
        key_mask = mask[:, None, None, :]
        seeds = self.seeds.unsqueeze(0).expand(q.size(0), -1, -1, -1)
        agents = F.scaled_dot_product_attention(seeds, q, q, attn_mask=key_mask)  # [B, H, n, D]
        agent_values = F.scaled_dot_product_attention(agents, k, v, attn_mask=key_mask)
        return F.scaled_dot_product_attention(q, agents, agent_values)


ATTENTION.register("agent", f"Agent attention via {NUM_AGENTS} pooled agent tokens (Han et al. 2023), O(N n)",
                   cost="linear", prunable_heads=True)(
    AgentAttention)
