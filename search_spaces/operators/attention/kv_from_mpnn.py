"""``kv_from_mpnn``: DARTS-GT's asymmetric attention (2025): queries from the node features,
keys and values from the layer's MPNN output, over the graph's edges."""
from __future__ import annotations

from typing import Optional

from torch import Tensor, nn

from graphnas.search_spaces.operators.attention._dense import head_width
from graphnas.search_spaces.operators.base import ATTENTION, OpContext
from graphnas.search_spaces.operators.pyg import gnn


class KVFromMPNNAttention(nn.Module):
    """Edge-masked softmax attention where node i's query comes from ``x_i`` and the keys
    and values of its neighbours j from ``kv_j``, the output of the layer's MPNN when the
    layer's ``kv_source`` is ``mpnn`` (the builder passes it), else the features themselves.
    PyG's TransformerConv takes the bipartite pair ``(kv, x)`` for exactly this.

    Shapes: ``x [N, C]``, ``kv [N, C]``, ``edge_index [2, E]`` -> ``[N, C]``. Cost: O(E C) plus
    the projections. FLOPs: ``2 N C 4C`` (q, k, v, root) + ``4 E C`` (+ ``2 E edge_dim C``)."""


    def __init__(self, ctx: OpContext) -> None:
        super().__init__()
        self.uses_edge_attr = ctx.edge_dim is not None
        self.conv = gnn.TransformerConv(ctx.channels, head_width(ctx), heads=ctx.heads, edge_dim=ctx.edge_dim,
                                    root_weight=True)

    def dataflow(self) -> str:
        return f"returns conv((kv if given else x, x), edge_index{', edge_attr' if self.uses_edge_attr else ''})"

    def forward(self, x: Tensor, edge_index: Tensor, edge_attr: Optional[Tensor] = None,
                batch: Optional[Tensor] = None, kv: Optional[Tensor] = None) -> Tensor:
        pair = (x if kv is None else kv, x)
        if self.uses_edge_attr and edge_attr is not None:
            return self.conv(pair, edge_index, edge_attr)
        return self.conv(pair, edge_index)


ATTENTION.register("kv_from_mpnn", "DARTS-GT asymmetric attention: keys/values from the MPNN output, O(E)",
                   cost="edges", takes_kv=True, edge_features=True)(
    KVFromMPNNAttention)
