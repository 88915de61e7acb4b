"""Normalisation layers and graph pooling functions (PyG's)."""
from __future__ import annotations

from typing import Optional

from torch import Tensor, nn
from graphnas.search_spaces.operators.base import NORM, POOLING
from graphnas.search_spaces.operators.pyg import gnn


class _Norm(nn.Module):
    """Gives every norm the call ``norm(x, batch)``; BatchNorm ignores ``batch``."""

    def __init__(self, norm: nn.Module, takes_batch: bool) -> None:
        super().__init__()
        self.norm = norm
        self.takes_batch = takes_batch

    def dataflow(self) -> str:
        return f"returns norm(x{', batch' if self.takes_batch else ''})"

    def forward(self, x: Tensor, batch: Optional[Tensor] = None) -> Tensor:
        return self.norm(x, batch) if self.takes_batch else self.norm(x)


NORM.register("none", "No normalisation")(lambda c: _Norm(nn.Identity(), False))
NORM.register("batch", "BatchNorm over the nodes of a mini-batch")(
    lambda c: _Norm(gnn.BatchNorm(c), False))
NORM.register("layer", "LayerNorm per node")(lambda c: _Norm(nn.LayerNorm(c), False))
NORM.register("graph", "GraphNorm: per-graph normalisation with learnable shift (Cai et al. 2021)")(
    lambda c: _Norm(gnn.GraphNorm(c), True))



# Named functions rather than PyG's own, which would import PyG when the registry is filled.
@POOLING.register("mean", "Mean of node embeddings per graph")
def mean_pool(x: Tensor, batch: Optional[Tensor]) -> Tensor:
    return gnn.global_mean_pool(x, batch)


@POOLING.register("add", "Sum of node embeddings per graph")
def add_pool(x: Tensor, batch: Optional[Tensor]) -> Tensor:
    return gnn.global_add_pool(x, batch)


@POOLING.register("max", "Element-wise max of node embeddings per graph")
def max_pool(x: Tensor, batch: Optional[Tensor]) -> Tensor:
    return gnn.global_max_pool(x, batch)
