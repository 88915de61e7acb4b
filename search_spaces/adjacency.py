"""The graph as a sparse matrix, for the message-passing layers that can use one.

PyG's convolutions take either ``edge_index`` or a transposed adjacency ``adj_t`` (row = target,
column = source). With ``adj_t`` a layer aggregates with one sparse matrix product instead of a
gather of ``E x C`` messages and a scatter back, and its backward is another product instead of a
scatter-add: measured here on chameleon_filtered at width 512, one thread, forward and backward,
GCNConv ran 5.8x and SAGEConv 1.9x faster, with the same outputs. The operators that accept it
declare ``sparse_adjacency`` at registration (``MPNN.with_capability("sparse_adjacency")``).

The matrix is built once per graph by :func:`sparse_adjacency` (torch.sparse CSR through PyG's
``to_torch_csr_tensor``); :func:`uses_sparse_adjacency` says whether an architecture may be given
it: every layer's operator accepts it, and nothing reads the edges one by one (edge features,
attention branches, learned edge masks).
"""
from __future__ import annotations

from typing import Optional

from torch import Tensor

from search_spaces.architecture import Architecture
from search_spaces.operators import MPNN
from search_spaces.operators.pyg import utils


def uses_sparse_adjacency(arch: Architecture) -> bool:
    """May ``GraphModel(arch)`` be called with ``adj_t`` as its ``edge_index``? (The operators
    that declare ``sparse_adjacency`` read no edge features, so the model embeds none.)"""
    if arch.sparsity_targets.edges > 0:  # learned edge masks score the edges one by one
        return False
    return all(MPNN.entry(layer.mpnn).can("sparse_adjacency") and layer.attention == "none"
               for layer in arch.layers)


def sparse_adjacency(edge_index: Tensor, num_nodes: int) -> Optional[Tensor]:
    """``adj_t`` of a graph: ``adj_t[i, j] = 1`` for an edge ``j -> i``, as a torch.sparse CSR
    matrix on ``edge_index``'s device. ``None`` for a graph with self-loops or repeated edges:
    there PyG's ``gcn_norm`` treats a sparse matrix differently from an ``edge_index`` (it adds
    a second self-loop rather than replacing one, and normalises repeated entries otherwise),
    so the GCN-normalised operators would compute something else (tests/search_spaces/
    test_adjacency.py found both)."""
    if utils.contains_self_loops(edge_index) or utils.coalesce(edge_index).size(1) != edge_index.size(1):
        return None
    return utils.to_torch_csr_tensor(edge_index.flip(0), size=(num_nodes, num_nodes))
