"""Registries and the construction context shared by all primitives."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import torch
from torch import nn

from graphnas.search_spaces.registry import Registry


@dataclass(frozen=True)
class OpContext:
    """What a primitive needs to know to build itself.

    Attributes:
        channels: node feature width out (and in, unless ``in_channels`` is given).
        heads: attention heads (for multi-head operators).
        edge_dim: width of ``edge_attr`` (already embedded to ``channels`` by the
            model when the data has edge features), or ``None`` when there are none.
        deg: in-degree histogram of the training graphs (PNA's scalers need it).
        dropout: dropout on attention coefficients, for the operators registered with
            ``attention_dropout=True`` (0 for every other).
        top_m: how many nodes each node attends to (``topm`` attention).
        head_sparsity: fraction of attention heads to learn to remove (``sparsity.heads``);
            forms with per-head projections gate and prune their heads, others ignore it.
        in_channels: input width when it differs from ``channels`` (a first layer that reads
            the raw features, a last layer that outputs the classes); MPNNs only.
        concat: multi-head MPNNs (``heads=True`` at registration): concatenate heads of
            width ``channels / heads`` (True) or average heads of width ``channels``
            (False); ``None`` concatenates when ``heads`` divides ``channels``.
        hidden_dropout: the model's dropout, for operators with a hidden layer of their own
            (Platonov et al.'s feed-forward modules drop inside it).
    """

    channels: int
    heads: int = 1
    edge_dim: Optional[int] = None
    deg: Optional[torch.Tensor] = None
    dropout: float = 0.0
    top_m: int = 8
    head_sparsity: float = 0.0
    in_channels: Optional[int] = None
    concat: Optional[bool] = None
    hidden_dropout: float = 0.0

    @property
    def in_width(self) -> int:
        return self.channels if self.in_channels is None else self.in_channels


OpFactory = Callable[[OpContext], nn.Module]

_EDGE_FEATURES = "reads edge_attr (the model embeds edge features only for a layer that does)"
_ATTENTION_DROPOUT = "ctx.dropout drops its attention coefficients (0 for every other operator)"
MPNN: Registry[OpFactory] = Registry("mpnn", noun="mpnn operator", capabilities={
    "heads": "multi-head: ctx.heads and ctx.concat apply",
    "head_mean": "its heads can be averaged (ctx.concat False: head_merge mean, a classifier layer)",
    "attention_dropout": _ATTENTION_DROPOUT,
    "edge_features": _EDGE_FEATURES,
    "sparse_adjacency": "accepts a torch.sparse CSR adj_t in place of edge_index (one sparse matmul "
                        "instead of a gather and a scatter per layer; search_spaces.adjacency), and at which "
                        "width it aggregates: 'in' (before its linear map), 'out' (after it) or 'none'"})
ATTENTION: Registry[OpFactory] = Registry("attention", noun="attention operator", capabilities={
    "cost": "how its work grows with the graph: quadratic, linear, edges or none",
    "attention_dropout": _ATTENTION_DROPOUT, "edge_features": _EDGE_FEATURES,
    "prunable_heads": "has per-head projections that head sparsity gates and prunes",
    "takes_kv": "reads its keys and values from kv= (kv_source: mpnn)",
    "top_m": "attends to ctx.top_m nodes per node (the top_m choice applies)"}, required=("cost",))
ENCODING: Registry[type] = Registry("encoding", noun="encoding operator")
NORM: Registry[Callable[[int], nn.Module]] = Registry("norm", noun="norm operator")
POOLING: Registry[Callable] = Registry("pooling", noun="pooling operator")
ACTIVATION: Registry[Callable[[], nn.Module]] = Registry("activation", noun="activation operator")
