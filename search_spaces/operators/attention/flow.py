"""``flow``: Flow-Attention (Flowformer, Wu et al. 2022): attention as flow from sources
(keys, values) to sinks (queries), with conservation instead of softmax."""
from __future__ import annotations

import torch
from torch import Tensor

from graphnas.search_spaces.operators.attention._dense import DenseAttention
from graphnas.search_spaces.operators.base import ATTENTION

EPS = 1e-6


def flow_scores(q: Tensor, k: Tensor, qmask: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """For non-negative features ``q, k [B, H, L, D]`` (padded rows zero) return the sink
    incoming flow ``I``, source outgoing flow ``O``, and their conserved versions
    ``I_hat = q_i . sum_j k_j / O_j`` and ``O_hat = k_j . sum_i q_i / I_i``. Conservation:
    ``sum_j O_hat_j`` equals the number of sinks and ``sum_i I_hat_i`` the number of sources."""
    incoming = q @ k.sum(2, keepdim=True).transpose(-1, -2) + EPS  # [B, H, L, 1]
    outgoing = k @ q.sum(2, keepdim=True).transpose(-1, -2) + EPS
    conserved_sink = q @ (k / outgoing).sum(2, keepdim=True).transpose(-1, -2)
    conserved_source = k @ ((q / incoming) * qmask).sum(2, keepdim=True).transpose(-1, -2)
    return incoming, outgoing, conserved_sink, conserved_source


class FlowAttention(DenseAttention):
    """Sigmoid features ``phi``; each sink's incoming flow and each source's outgoing flow
    are normalised so that flow is conserved; sources **compete** (softmax over their
    conserved outgoing flow, times the number of sources) and sinks **allocate** (sigmoid of
    their conserved incoming flow). Then, linearly:
    ``out_i = sigmoid(I_hat_i) * (phi(q_i) / I_i) (sum_j phi(k_j) (c_j v_j)^T)``.

    Cost: O(N D^2) per head. FLOPs: the ``2 N C 4C`` projections plus, per head and padded
    graph, ``2 L D`` for each of the four flow products and ``4 L D D`` for the
    key-value summary and its read-out."""

    def attend(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor, **kw) -> Tensor:
        m = mask[:, None, :, None].to(q.dtype)
        q, k = torch.sigmoid(q) * m, torch.sigmoid(k) * m
        incoming, _, conserved_sink, conserved_source = flow_scores(q, k, m)
        sources = m.sum(2, keepdim=True)  # [B, 1, 1, 1] real nodes per graph
        allocation = torch.sigmoid(conserved_sink)
        logits = conserved_source.clamp(-1.0, 1.0).masked_fill(m == 0, float("-inf"))
        competition = torch.softmax(logits, dim=2) * sources
        summary = k.transpose(-1, -2) @ (v * competition)  # [B, H, D, D]
        return ((q / incoming) @ summary) * allocation


ATTENTION.register("flow", "Flow-Attention: conservation, competition, allocation (Wu et al. 2022), O(N)",
                   cost="linear", prunable_heads=True)(
    FlowAttention)
