"""``masked``: softmax attention restricted to graph edges, with edge features (the graph
transformer of Dwivedi & Bresson 2021), via PyG's TransformerConv."""
from __future__ import annotations

from typing import Optional

from torch import Tensor, nn

from search_spaces.operators.attention._dense import head_width
from search_spaces.operators.base import ATTENTION, OpContext
from search_spaces.operators.pyg import gnn


class MaskedAttention(nn.Module):
    """Each node attends to its in-neighbours only; edge features enter keys and values.
    TransformerConv's root weight is kept on: with it off, PyG still creates (and counts)
    the skip projection but never uses it.

    Shapes: ``x [N, C]``, ``edge_index [2, E]``, ``edge_attr [E, edge_dim]`` -> ``[N, C]``.
    Cost: O(E C) beyond the O(N C^2) projections. FLOPs: ``2 N C 3C`` (q, k, v) plus
    ``2 E C`` (scores) plus ``2 E C`` (weighted sum), ``2 N C C`` (root weight), plus ``2 E edge_dim C`` with edge
    features.
    """

    def __init__(self, ctx: OpContext) -> None:
        super().__init__()
        self.uses_edge_attr = ctx.edge_dim is not None
        self.conv = gnn.TransformerConv(ctx.channels, head_width(ctx), heads=ctx.heads,
                                    dropout=ctx.dropout, edge_dim=ctx.edge_dim, root_weight=True)

    def dataflow(self) -> str:
        return f"returns conv(x, edge_index{', edge_attr' if self.uses_edge_attr else ''})"

    def forward(self, x: Tensor, edge_index: Tensor, edge_attr: Optional[Tensor] = None,
                batch: Optional[Tensor] = None) -> Tensor:
        if self.uses_edge_attr and edge_attr is not None:
            return self.conv(x, edge_index, edge_attr)
        return self.conv(x, edge_index)


ATTENTION.register("masked", "Softmax attention over graph edges with edge features, O(E)",
                   cost="edges",
                   attention_dropout=True,
                   edge_features=True)(
    MaskedAttention)
