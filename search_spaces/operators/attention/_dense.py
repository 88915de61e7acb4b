"""Shared plumbing of the attention forms that work on padded per-graph batches."""
from __future__ import annotations

from typing import Optional

from torch import Tensor, nn

from graphnas.search_spaces.operators.base import OpContext
from graphnas.search_spaces.sparsity import Gates, head_rows, slice_linear
from graphnas.search_spaces.operators.pyg import utils


def head_width(ctx: OpContext) -> int:
    if ctx.channels % ctx.heads:
        raise ValueError(f"attention needs channels divisible by heads, got channels={ctx.channels}, "
                         f"heads={ctx.heads}")
    return ctx.channels // ctx.heads


class DenseAttention(nn.Module):
    """Projects ``x [N, C]`` to multi-head q, k, v, pads them per graph to
    ``[B, H, L, D]`` with a key mask ``[B, L]``, calls :meth:`attend`, and projects the
    result back to ``[N, C]``. Subclasses implement ``attend`` and must give padded keys
    no weight, so that graphs never mix and padding never matters.

    With ``ctx.head_sparsity > 0`` each head's output is scaled by a learned gate
    (:class:`~search_spaces.sparsity.Gates`) until :meth:`prune_heads` removes the heads
    that lost: their rows of ``qkv`` and columns of ``out`` go, so their FLOPs go too.
    Subclasses with more per-head parameters extend :meth:`prune_heads`."""


    def __init__(self, ctx: OpContext) -> None:
        super().__init__()
        self.heads = ctx.heads
        self.head_dim = head_width(ctx)
        self.qkv = nn.Linear(ctx.channels, 3 * ctx.channels)
        self.out = nn.Linear(ctx.channels, ctx.channels)
        self.head_gates = Gates(ctx.heads, ctx.head_sparsity) if ctx.head_sparsity > 0 and ctx.heads > 1 else None

    def forward(self, x: Tensor, edge_index: Tensor, edge_attr: Optional[Tensor] = None,
                batch: Optional[Tensor] = None) -> Tensor:
        qkv, mask = utils.to_dense_batch(self.qkv(x), batch)  # [B, L, 3C], [B, L]
        b, length, _ = qkv.shape
        q, k, v = qkv.view(b, length, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        out = self.attend(q, k, v, mask, x=x, batch=batch)  # [B, H, L, D]
        if self.head_gates is not None:
            out = out * self.head_gates()[None, :, None, None]
        return self.out(out.transpose(1, 2).reshape(b, length, -1)[mask])

    def harden(self) -> None:
        """Keep the heads whose gates won; drop the gates."""
        if self.head_gates is not None:
            keep = self.head_gates.keep()
            self.head_gates = None
            self.prune_heads(keep)

    def prune_heads(self, keep: Tensor) -> None:
        """Keep only heads ``keep`` (sorted indices): slice q/k/v rows and output columns."""
        width = self.heads * self.head_dim
        self.qkv = slice_linear(self.qkv, rows=head_rows(keep, self.head_dim, blocks=3, width=width))
        self.out = slice_linear(self.out, cols=head_rows(keep, self.head_dim))
        self.heads = len(keep)

    def attend(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor, **kw) -> Tensor:
        raise NotImplementedError
