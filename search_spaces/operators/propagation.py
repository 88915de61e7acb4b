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

    def __init__(self, channels: int, k: int = 10) -> None:
        super().__init__(aggr="add")
        self.k = k
        self.score = nn.Linear(channels, 1)

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        # edge_index may be a torch.sparse adj_t (search_spaces.adjacency): gcn_norm then returns
        # the normalised matrix with its weights inside, and propagate calls message_and_aggregate
        edge_index, weight = gcn_norm(edge_index, None, x.size(0), add_self_loops=True)
        hops = [x]
        for _ in range(self.k):
            hops.append(self.propagate(edge_index, x=hops[-1], weight=weight))
        stack = torch.stack(hops, dim=1)  # [N, K + 1, C]
        retain = torch.sigmoid(self.score(stack))  # [N, K + 1, 1]
        return (retain * stack).sum(dim=1)

    def message(self, x_j: Tensor, weight: Tensor) -> Tensor:
        return weight.view(-1, 1) * x_j

    def message_and_aggregate(self, adj_t: Tensor, x: Tensor) -> Tensor:
        return spmm(adj_t, x, reduce=self.aggr)
