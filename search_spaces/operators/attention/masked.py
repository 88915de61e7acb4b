"""``masked``: softmax attention restricted to graph edges, with edge features (the graph
transformer of Dwivedi & Bresson 2021), via PyG's TransformerConv."""
from __future__ import annotations

from graphnas.search_spaces.operators.attention._dense import head_width
from graphnas.search_spaces.operators.base import ATTENTION, OpContext
from graphnas.search_spaces.operators.mpnn import _Conv
from graphnas.search_spaces.operators.pyg import gnn


class MaskedAttention(_Conv):  # an MPNN wrapper's call: conv(x, edge_index[, edge_attr])
    """Each node attends to its in-neighbours only; edge features enter keys and values.
    TransformerConv's root weight is kept on: with it off, PyG still creates (and counts)
    the skip projection but never uses it.

    Shapes: ``x [N, C]``, ``edge_index [2, E]``, ``edge_attr [E, edge_dim]`` -> ``[N, C]``.
    Cost: O(E C) beyond the O(N C^2) projections. FLOPs: ``2 N C 3C`` (q, k, v) plus
    ``2 E C`` (scores) plus ``2 E C`` (weighted sum), ``2 N C C`` (root weight), plus ``2 E edge_dim C`` with edge
    features.
    """

    def __init__(self, ctx: OpContext) -> None:
        super().__init__(gnn.TransformerConv(ctx.channels, head_width(ctx), heads=ctx.heads, dropout=ctx.dropout,
                                             edge_dim=ctx.edge_dim, root_weight=True),
                         uses_edge_attr=ctx.edge_dim is not None)


ATTENTION.register("masked", "Softmax attention over graph edges with edge features, O(E)",
                   cost="edges",
                   attention_dropout=True,
                   edge_features=True)(
    MaskedAttention)
