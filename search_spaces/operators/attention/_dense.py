"""Shared plumbing of the attention forms that work on padded per-graph batches."""
from __future__ import annotations

from typing import Optional

from torch import Tensor, nn
from torch_geometric.utils import to_dense_batch

from search_spaces.operators.base import OpContext


def head_width(ctx: OpContext) -> int:
    if ctx.channels % ctx.heads:
        raise ValueError(f"attention needs channels divisible by heads, got channels={ctx.channels}, "
                         f"heads={ctx.heads}")
    return ctx.channels // ctx.heads


class DenseAttention(nn.Module):
    """Projects ``x [N, C]`` to multi-head q, k, v, pads them per graph to
    ``[B, H, L, D]`` with a key mask ``[B, L]``, calls :meth:`attend`, and projects the
    result back to ``[N, C]``. Subclasses implement ``attend`` and must give padded keys
    no weight, so that graphs never mix and padding never matters."""

    def __init__(self, ctx: OpContext) -> None:
        super().__init__()
        self.heads = ctx.heads
        self.head_dim = head_width(ctx)
        self.qkv = nn.Linear(ctx.channels, 3 * ctx.channels)
        self.out = nn.Linear(ctx.channels, ctx.channels)

    def forward(self, x: Tensor, edge_index: Tensor, edge_attr: Optional[Tensor] = None,
                batch: Optional[Tensor] = None) -> Tensor:
        qkv, mask = to_dense_batch(self.qkv(x), batch)  # [B, L, 3C], [B, L]
        b, length, _ = qkv.shape
        q, k, v = qkv.view(b, length, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        out = self.attend(q, k, v, mask, x=x, batch=batch)  # [B, H, L, D]
        return self.out(out.transpose(1, 2).reshape(b, length, -1)[mask])

    def attend(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor, **kw) -> Tensor:
        raise NotImplementedError
