"""The layers of Platonov et al., "A critical look at the evaluation of GNNs under
heterophily" (ICLR 2023): GAT-sep, GT-sep and their feed-forward module, as PyG
``MessagePassing`` layers (PyG has no layer that computes these). One file for the three:
the attention layers end in the feed-forward module or share its shape. Imported when an
operator is first built (see ``operators.pyg``).

The "-sep" idea: a node's own representation and its neighbours' aggregate are kept apart
(concatenated) rather than summed, so a layer can weigh itself against a neighbourhood that
disagrees with it (heterophily). The model's dropout is applied after each layer by the
stack (``layer_form: pre_norm``), so these modules end without one.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.nn import MessagePassing
from torch_geometric.utils import softmax


class FeedForward(nn.Module):
    """``lin2(gelu(dropout(lin1(x))))``: Platonov et al.'s feed-forward module without its
    final dropout. Shapes: ``x [N, in]`` -> ``[N, out]``."""

    def __init__(self, in_channels: int, hidden: int, out_channels: int, dropout: float) -> None:
        super().__init__()
        self.lin1, self.lin2 = nn.Linear(in_channels, hidden), nn.Linear(hidden, out_channels)
        self.dropout = dropout

    def dataflow(self) -> str:
        return f"returns lin2(gelu(dropout(lin1(x), p={self.dropout})))"

    def forward(self, x: Tensor, edge_index: Tensor | None = None) -> Tensor:
        return self.lin2(F.gelu(F.dropout(self.lin1(x), self.dropout, self.training)))


def _check_heads(channels: int, heads: int, concat: bool | None) -> None:
    if channels % heads or concat is False:
        raise ValueError(f"the -sep layers split the width into heads and concatenate them: heads ({heads}) must "
                         f"divide the width ({channels}) and head_merge cannot be 'mean'")


class GATSep(MessagePassing):
    """GAT-sep: ``x = lin(x)``; per head, scores ``leaky_relu(att_src(x)_j + att_dst(x)_i, 0.2)``
    softmax-normalised over each node's in-edges (no self-loops added); ``m_i`` the
    score-weighted sum of the ``x_j``; returns ``ffn(cat[x_i, m_i])``. As in the reference
    code, the scores of a head read the whole ``x`` and head ``h`` weighs the columns
    ``h, h + heads, ...``. Shapes: ``x [N, in]`` -> ``[N, C]``."""

    def __init__(self, in_channels: int, channels: int, heads: int, dropout: float) -> None:
        super().__init__(aggr="add", node_dim=0)
        self.heads = heads
        self.lin = nn.Linear(in_channels, channels)
        self.att_src = nn.Linear(channels, heads)
        self.att_dst = nn.Linear(channels, heads, bias=False)
        self.ffn = FeedForward(2 * channels, channels, channels, dropout)

    def dataflow(self) -> str:
        return ("x = lin(x); alpha_ij = softmax over i's in-edges of leaky_relu(att_src(x)_j + att_dst(x)_i, 0.2) "
                f"({self.heads} heads; head h weighs columns h, h + {self.heads}, ...); m_i = sum_j alpha_ij x_j; "
                "returns ffn(cat[x, m])")

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        x = self.lin(x)
        src, dst = edge_index
        alpha = F.leaky_relu(self.att_src(x)[src] + self.att_dst(x)[dst], 0.2)
        alpha = softmax(alpha, dst, num_nodes=x.size(0))
        per_head = x.view(x.size(0), -1, self.heads)  # [N, C / heads, heads], as the reference reshapes
        message = self.propagate(edge_index, x=per_head, alpha=alpha).reshape(x.size(0), -1)
        return self.ffn(torch.cat([x, message], dim=-1))

    def message(self, x_j: Tensor, alpha: Tensor) -> Tensor:
        return x_j * alpha.unsqueeze(1)


class GTSep(MessagePassing):
    """GT-sep's attention: per head, scores ``q_j . k_i / sqrt(d)`` over each node's in-edges
    (the reference code scores an edge j -> i with the query of its source and the key of
    its target), softmax-normalised per target; ``m_i`` the weighted sum of the ``v_j``;
    returns ``out(cat[x_i, m_i])``. Shapes: ``x [N, in]`` -> ``[N, C]``."""

    def __init__(self, in_channels: int, channels: int, heads: int) -> None:
        super().__init__(aggr="add", node_dim=0)
        self.heads = heads
        self.query, self.key, self.value = (nn.Linear(in_channels, channels) for _ in range(3))
        self.out = nn.Linear(in_channels + channels, channels)

    def dataflow(self) -> str:
        return (f"q, k, v = query(x), key(x), value(x) in {self.heads} heads of width d; alpha_ij = softmax over i's "
                "in-edges of (q_j . k_i) / sqrt(d); m_i = sum_j alpha_ij v_j; returns out(cat[x, m])")

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        n, src, dst = x.size(0), edge_index[0], edge_index[1]
        q, k, v = (f(x).view(n, self.heads, -1) for f in (self.query, self.key, self.value))
        alpha = softmax((q[src] * k[dst]).sum(-1) / math.sqrt(q.size(-1)), dst, num_nodes=n)
        message = self.propagate(edge_index, v=v, alpha=alpha).reshape(n, -1)
        return self.out(torch.cat([x, message], dim=-1))

    def message(self, v_j: Tensor, alpha: Tensor) -> Tensor:
        return v_j * alpha.unsqueeze(-1)


def gat_sep(in_channels: int, channels: int, heads: int, concat: bool | None, dropout: float) -> GATSep:
    _check_heads(channels, heads, concat)
    return GATSep(in_channels, channels, heads, dropout)


def gt_sep(in_channels: int, channels: int, heads: int, concat: bool | None) -> GTSep:
    _check_heads(channels, heads, concat)
    return GTSep(in_channels, channels, heads)
