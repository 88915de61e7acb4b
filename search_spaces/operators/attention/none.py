"""``none``: no attention branch."""
from __future__ import annotations

from typing import Optional

from torch import Tensor, nn

from graphnas.search_spaces.operators.base import ATTENTION, OpContext


class NoAttention(nn.Module):
    """The zero operation of DARTS: contributes nothing. The model builder skips the
    attention branch entirely for ``none``; this class exists so that mixed operations
    can weigh "no attention" against the other forms. Cost: 0 FLOPs."""

    def __init__(self, ctx: OpContext) -> None:
        super().__init__()

    def forward(self, x: Tensor, edge_index: Tensor, edge_attr: Optional[Tensor] = None,
                batch: Optional[Tensor] = None) -> Tensor:
        return x.new_zeros(x.shape)


ATTENTION.register("none", "No global attention: the layer is a pure MPNN layer",
                   cost="none")(NoAttention)
