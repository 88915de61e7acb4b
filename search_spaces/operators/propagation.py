"""DAGNN's adaptive propagation: a PyG ``MessagePassing`` layer, in a module of its own so
that PyG is imported only when a ``dagnn`` operator is built (see ``operators.pyg``)."""
from __future__ import annotations

import torch
from torch import Tensor, nn
from torch_geometric.nn import MessagePassing
from torch_geometric.nn.conv.gcn_conv import gcn_norm
from torch_geometric.utils import spmm


class AdaptivePropagation(MessagePassing):
    """DAGNN's propagation (Liu et al., Towards Deeper Graph Neural Networks, KDD 2020):
    ``H_k = A_hat^k H`` for k = 0..K with the GCN normalisation, each node mixing its hops
    by learned retention scores ``s_k = sigmoid(H_k w)``. Written here because PyG has no
    DAGNN layer. Shapes: ``x [N, C]`` -> ``[N, C]``."""

    def __init__(self, channels: int, k: int = 10, cached: bool = False) -> None:
        super().__init__(aggr="add")
        self.k = k
        self.score = nn.Linear(channels, 1)
        # PyG's GCNConv convention: with ``cached`` the first forward's normalised graph is kept
        # (for full-batch training on one graph; search_spaces.adjacency.cached_normalisation)
        self.cached = cached
        self._cached_edge_index: tuple[Tensor, Tensor] | None = None
        self._cached_adj_t: tuple[Tensor, None] | None = None

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        edge_index, weight = self._normalised(edge_index, x.size(0))
        hops = [x]
        for _ in range(self.k):
            hops.append(self.propagate(edge_index, x=hops[-1], weight=weight))
        stack = torch.stack(hops, dim=1)  # [N, K + 1, C]
        retain = torch.sigmoid(self.score(stack))  # [N, K + 1, 1]
        return (retain * stack).sum(dim=1)

    def _normalised(self, edge_index: Tensor, num_nodes: int) -> tuple[Tensor, Tensor | None]:
        """GCN normalisation with self-loops. ``edge_index`` may be a torch.sparse adj_t
        (search_spaces.adjacency): gcn_norm then returns the normalised matrix with its weights
        inside (and None), and propagate calls message_and_aggregate."""
        sparse = edge_index.layout != torch.strided
        cache = self._cached_adj_t if sparse else self._cached_edge_index
        if cache is not None:
            return cache
        out = gcn_norm(edge_index, None, num_nodes, add_self_loops=True)
        if self.cached:
            if sparse:
                self._cached_adj_t = out
            else:
                self._cached_edge_index = out
        return out

    def message(self, x_j: Tensor, weight: Tensor) -> Tensor:
        return weight.view(-1, 1) * x_j

    def message_and_aggregate(self, adj_t: Tensor, x: Tensor) -> Tensor:
        return spmm(adj_t, x, reduce=self.aggr)
