"""Local message-passing operators: thin adapters over PyG's convolutions.

Each adapter gives its PyG layer the common signature
``forward(x, edge_index, edge_attr=None, batch=None)`` and decides once, in its
constructor, whether the layer consumes edge features. Operators that take no
edge features ignore ``edge_attr``.

Every operator maps ``[N, ctx.in_width] -> [N, ctx.channels]``: a first layer may read
the raw features and a last layer may output the classes. Capabilities are declared at
registration: ``heads`` (multi-head, ``ctx.concat`` applies), ``attention_dropout``
(``ctx.dropout`` drops attention coefficients) and ``edge_features`` (reads ``edge_attr``:
the model embeds edge features only when some layer does).
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

from graphnas.search_spaces.operators.base import MPNN, OpContext
from graphnas.search_spaces.operators.pyg import gnn


class _Conv(nn.Module):
    """Wraps a PyG conv; ``uses_edge_attr`` says whether edge features are passed on."""

    def __init__(self, conv: nn.Module, uses_edge_attr: bool = False) -> None:
        super().__init__()
        self.conv = conv
        self.uses_edge_attr = uses_edge_attr

    def dataflow(self) -> str:
        return f"returns conv(x, edge_index{', edge_attr' if self.uses_edge_attr else ''})"

    def forward(self, x: Tensor, edge_index: Tensor, edge_attr: Optional[Tensor] = None,
                batch: Optional[Tensor] = None) -> Tensor:
        if self.uses_edge_attr and edge_attr is not None:
            return self.conv(x, edge_index, edge_attr)
        return self.conv(x, edge_index)


def _head_split(ctx: OpContext) -> tuple[int, bool]:
    """Per-head width and concat flag: heads of ``channels / heads`` concatenated, or heads
    of ``channels`` averaged; by default concatenated when ``heads`` divides ``channels``."""
    concat = ctx.channels % ctx.heads == 0 if ctx.concat is None else ctx.concat
    if concat and ctx.channels % ctx.heads:
        raise ValueError(f"concatenated heads need heads ({ctx.heads}) to divide the width ({ctx.channels})")
    return (ctx.channels // ctx.heads, True) if concat else (ctx.channels, False)


def _neighbour_attention(conv_class: type, ctx: OpContext) -> nn.Module:
    """A GAT-style conv (GATConv, GATv2Conv: the same arguments) with the context's heads."""
    width, concat = _head_split(ctx)
    conv = conv_class(ctx.in_width, width, heads=ctx.heads, concat=concat, dropout=ctx.dropout, edge_dim=ctx.edge_dim)
    return _Conv(conv, uses_edge_attr=ctx.edge_dim is not None)


def _mlp(ctx: OpContext, norm: str | None = None) -> nn.Module:
    return gnn.MLP([ctx.in_width, ctx.channels, ctx.channels], norm=norm)


@MPNN.register("gcn", "GCNConv: symmetric-normalised graph convolution (Kipf & Welling 2017)",
               sparse_adjacency="out")
def gcn(ctx: OpContext) -> nn.Module:
    return _Conv(gnn.GCNConv(ctx.in_width, ctx.channels))


@MPNN.register("gat", "GATConv: attention over neighbours, multi-head (Velickovic et al. 2018)",
               heads=True, head_mean=True, attention_dropout=True, edge_features=True)
def gat(ctx: OpContext) -> nn.Module:
    return _neighbour_attention(gnn.GATConv, ctx)


@MPNN.register("gatv2", "GATv2Conv: dynamic neighbour attention (Brody et al. 2022)",
               heads=True, head_mean=True, attention_dropout=True, edge_features=True)
def gatv2(ctx: OpContext) -> nn.Module:
    return _neighbour_attention(gnn.GATv2Conv, ctx)


@MPNN.register("gin", "GINConv: sum aggregation + MLP, WL-expressive (Xu et al. 2019)", sparse_adjacency="in")
def gin(ctx: OpContext) -> nn.Module:
    return _Conv(gnn.GINConv(_mlp(ctx), train_eps=True))


@MPNN.register("gin0", "GINConv with eps fixed at 0 and a batch-normalised MLP: GIN-0 (Xu et al. 2019)",
               sparse_adjacency="in")
def gin0(ctx: OpContext) -> nn.Module:
    return _Conv(gnn.GINConv(_mlp(ctx, norm="batch_norm"), train_eps=False))


class _GINE(nn.Module):
    """GINEConv; without edge features it uses one learned edge embedding for every edge,
    because GINEConv itself requires ``edge_attr``."""

    def __init__(self, ctx: OpContext) -> None:
        super().__init__()
        self.conv = gnn.GINEConv(_mlp(ctx), train_eps=True, edge_dim=ctx.edge_dim)
        self.default_edge = None if ctx.edge_dim else nn.Parameter(torch.zeros(ctx.in_width))

    def dataflow(self) -> str:
        if self.default_edge is not None:
            return "returns conv(x, edge_index, default_edge repeated for every edge)"
        return "returns conv(x, edge_index, edge_attr)"

    def forward(self, x: Tensor, edge_index: Tensor, edge_attr: Optional[Tensor] = None,
                batch: Optional[Tensor] = None) -> Tensor:
        if self.default_edge is not None:
            # broadcast-add, not expand: an expanded view of a Parameter made under no_grad
            # claims requires_grad without a grad_fn, which breaks torch's module tracker
            # (and with it FlopCounterMode)
            edge_attr = x.new_zeros(edge_index.size(1), x.size(1)) + self.default_edge
        return self.conv(x, edge_index, edge_attr)


@MPNN.register("gine", "GINEConv: GIN with edge features added to messages (Hu et al. 2020)",
               edge_features=True)
def gine(ctx: OpContext) -> nn.Module:
    return _GINE(ctx)


@MPNN.register("sage", "SAGEConv: mean aggregation with a root weight (Hamilton et al. 2017)",
               sparse_adjacency="in")
def sage(ctx: OpContext) -> nn.Module:
    return _Conv(gnn.SAGEConv(ctx.in_width, ctx.channels))


@MPNN.register("graphconv", "GraphConv: k-GNN sum aggregation with root weight (Morris et al. 2019)",
               sparse_adjacency="in")
def graphconv(ctx: OpContext) -> nn.Module:
    return _Conv(gnn.GraphConv(ctx.in_width, ctx.channels))


@MPNN.register("cheb", "ChebConv: Chebyshev spectral filter, K=2 (Defferrard et al. 2016)")
def cheb(ctx: OpContext) -> nn.Module:
    return _Conv(gnn.ChebConv(ctx.in_width, ctx.channels, K=2))


@MPNN.register("arma", "ARMAConv: auto-regressive moving-average filter, 1 stack of depth 2 (Bianchi et al. 2021)")
def arma(ctx: OpContext) -> nn.Module:
    # depth 2: with depth 1 PyG keeps an unused weight tensor (no gradient, counted as a parameter)
    return _Conv(gnn.ARMAConv(ctx.in_width, ctx.channels, num_stacks=1, num_layers=2))


@MPNN.register("pna", "PNAConv: mean/min/max/std aggregators with degree scalers (Corso et al. 2020)",
               edge_features=True)
def pna(ctx: OpContext) -> nn.Module:
    deg = ctx.deg if ctx.deg is not None else torch.tensor([0, 1])
    conv = gnn.PNAConv(ctx.in_width, ctx.channels, aggregators=["mean", "min", "max", "std"],
                       scalers=["identity", "amplification", "attenuation"], deg=deg,
                       edge_dim=ctx.edge_dim, towers=1)
    return _Conv(conv, uses_edge_attr=ctx.edge_dim is not None)


@MPNN.register("gatedgcn", "ResGatedGraphConv: edge-gated graph convolution (Bresson & Laurent 2017)",
               edge_features=True)
def gatedgcn(ctx: OpContext) -> nn.Module:
    conv = gnn.ResGatedGraphConv(ctx.in_width, ctx.channels, edge_dim=ctx.edge_dim)
    return _Conv(conv, uses_edge_attr=ctx.edge_dim is not None)


class _LinearThenPropagate(nn.Module):
    """A linear map, then a propagation without weights of its own (APPNP, DAGNN's): the
    decoupled designs, whose first layer is a per-node MLP."""

    def __init__(self, ctx: OpContext, prop: nn.Module) -> None:
        super().__init__()
        self.lin = nn.Linear(ctx.in_width, ctx.channels)
        self.prop = prop

    def dataflow(self) -> str:
        return "returns prop(lin(x), edge_index)"

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        return self.prop(self.lin(x), edge_index)


@MPNN.register("appnp", "Linear map then 10 steps of personalised-PageRank propagation, alpha 0.1 "
               "(Klicpera et al. 2019)", sparse_adjacency="out")
def appnp(ctx: OpContext) -> nn.Module:
    return _Conv(_LinearThenPropagate(ctx, gnn.APPNP(K=10, alpha=0.1)))


@MPNN.register("dagnn", "A linear map, then 10 hops of GCN propagation mixed per node by learned retention "
               "scores (DAGNN, Liu et al. 2020)", sparse_adjacency="out")
def dagnn(ctx: OpContext) -> nn.Module:
    from graphnas.search_spaces.operators.propagation import AdaptivePropagation  # subclasses PyG's MessagePassing

    return _Conv(_LinearThenPropagate(ctx, AdaptivePropagation(ctx.channels)))


@MPNN.register("mlp", "Linear layer on each node, no message passing (NAS-Bench-Graph's fc)",
               sparse_adjacency="none")
def mlp(ctx: OpContext) -> nn.Module:
    return _Conv(_NodeLinear(ctx.in_width, ctx.channels))


class _NodeLinear(nn.Module):
    """``lin(x)``: a linear map of each node, the edges unused."""

    def __init__(self, in_channels: int, channels: int) -> None:
        super().__init__()
        self.lin = nn.Linear(in_channels, channels)

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        return self.lin(x)


class _Identity(nn.Module):
    """Returns ``x`` unchanged."""

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        return x


@MPNN.register("skip", "Identity: passes node features through unchanged", sparse_adjacency="none")
def skip(ctx: OpContext) -> nn.Module:
    if ctx.in_width != ctx.channels:
        raise ValueError(f"mpnn 'skip' cannot change the width ({ctx.in_width} -> {ctx.channels}): it cannot be "
                         "a layer that reads the raw features or outputs the classes")
    return _Conv(_Identity())


# Platonov et al. 2023's layers (search_spaces/operators/platonov.py): written for
# ``layer_form: pre_norm`` with an identity residual, as in their model.
@MPNN.register("gat_sep", "GAT-sep: GAT-style attention whose aggregate is concatenated with the node's own "
               "representation, then a feed-forward module (Platonov et al. 2023)", heads=True)
def gat_sep(ctx: OpContext) -> nn.Module:
    from graphnas.search_spaces.operators.platonov import gat_sep as build

    return _Conv(build(ctx.in_width, ctx.channels, ctx.heads, ctx.concat, ctx.hidden_dropout))


@MPNN.register("gt_sep", "GT-sep: transformer attention over graph edges, concatenated with the node's own "
               "representation, then a linear map (Platonov et al. 2023)", heads=True)
def gt_sep(ctx: OpContext) -> nn.Module:
    from graphnas.search_spaces.operators.platonov import gt_sep as build

    return _Conv(build(ctx.in_width, ctx.channels, ctx.heads, ctx.concat))


@MPNN.register("feedforward", "Feed-forward module on each node, Linear -> dropout -> GELU -> Linear, no message "
               "passing (the FFN of Platonov et al. 2023's GT layers)", sparse_adjacency="none")
def feedforward(ctx: OpContext) -> nn.Module:
    from graphnas.search_spaces.operators.platonov import FeedForward

    return _Conv(FeedForward(ctx.in_width, ctx.channels, ctx.channels, ctx.hidden_dropout))
