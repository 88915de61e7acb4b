"""The graph as a sparse matrix, for the message-passing layers that can use one.

PyG's convolutions take either ``edge_index`` or a transposed adjacency ``adj_t`` (row = target,
column = source). With ``adj_t`` a layer aggregates with one sparse matrix product instead of a
gather of ``E x C`` messages and a scatter back, and its backward is another product instead of a
scatter-add: measured here on chameleon_filtered at width 512, one thread, forward and backward,
GCNConv ran 5.8x and SAGEConv 1.9x faster, with the same outputs. The operators that accept it
declare ``sparse_adjacency`` at registration (``MPNN.with_capability("sparse_adjacency")``).

The matrix is built once per graph by :func:`sparse_adjacency` (torch.sparse CSR through PyG's
``to_torch_csr_tensor``); :func:`uses_sparse_adjacency` says whether an architecture may be given
it: every layer's operator accepts it, nothing reads the edges one by one (edge features,
attention branches, learned edge masks), and the model's aggregations are wide enough for the
sparse product to be the faster (:data:`MIN_SPARSE_WIDTH`, :data:`WIDE_TO_NARROW`).
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING, Iterator, Optional

from torch import Tensor

from graphnas.search_spaces.architecture import Architecture
from graphnas.search_spaces.builder import DataInfo
from graphnas.search_spaces.operators import MPNN
from graphnas.search_spaces.operators.pyg import utils

if TYPE_CHECKING:
    import torch


# The narrowest aggregation that still gains. Measured on one CPU thread, forward and backward,
# edge_index time / adj_t time: at width 5 the sparse product loses (GCN 0.50x, SAGE 0.47x, APPNP
# 0.37x on 890 nodes; 0.73-0.94x on 10k), at 16-32 it depends on the graph (0.55-1.10x on 890
# nodes, 1.07-2.24x on 10k), at 64 it wins on both (DAGNN 2.1x, APPNP 2.6-3.2x) and at 512 by
# more (GCN 5.8x, SAGE 1.9x on 890 nodes).
MIN_SPARSE_WIDTH = 64
# A model has one form of the graph for all its layers, so a narrow layer (a classifier layer
# aggregating at the class count) takes the product too. Aggregation time grows with the width
# on either path, a narrow layer loses at most 2x on the product (the 0.37x-0.50x above: it
# costs at most one extra edge_index time) and a wide one gains at least 2x (saves at least
# half its edge_index time), so the product wins when the wide layers' widths add up to at
# least twice the narrow ones'. A 128-wide GCN with a 5-class GCN classifier: 4.3x faster per
# epoch on 10k nodes (benchmarks/scale.py); zoo:gcn (16 and 5) and zoo:dagnn (5) stay on edge_index.
WIDE_TO_NARROW = 2


def aggregation_widths(arch: Architecture, info: DataInfo) -> list[int]:
    """The width at which each layer's operator aggregates messages: its input width for an
    operator that aggregates before its linear map (SAGE, GIN: ``sparse_adjacency="in"``), its
    output width for one that aggregates after it (GCN, APPNP, DAGNN: ``"out"``); layers
    without message passing (MLP) have none."""
    c = arch.hidden_dim
    first_in = c if arch.input_projection or info.x_cardinalities is not None else info.num_features
    last_out = info.num_outputs if arch.head == "last_layer" else c
    widths = []
    for i, layer in enumerate(arch.layers):
        where = MPNN.entry(layer.mpnn).capabilities.get("sparse_adjacency")
        if where == "in":
            widths.append(first_in if i == 0 and arch.links is None else c)
        elif where == "out":
            widths.append(last_out if i == len(arch.layers) - 1 and arch.links is None else c)
    return widths


def uses_sparse_adjacency(arch: Architecture, info: DataInfo) -> bool:
    """Is ``GraphModel(arch)`` given ``adj_t`` as its ``edge_index``? Every layer's operator must
    accept it (those read no edge features, so the model embeds none), no attention branch or
    learned edge mask may read the edges one by one, and the aggregations at least
    :data:`MIN_SPARSE_WIDTH` wide, where the sparse product is the faster, must outweigh the
    narrower ones (:data:`WIDE_TO_NARROW`)."""
    if arch.sparsity_targets.edges > 0:  # learned edge masks score the edges one by one
        return False
    if not all(MPNN.entry(layer.mpnn).can("sparse_adjacency") and layer.attention == "none" for layer in arch.layers):
        return False
    widths = aggregation_widths(arch, info)
    wide = sum(w for w in widths if w >= MIN_SPARSE_WIDTH)
    return wide > 0 and wide >= WIDE_TO_NARROW * sum(w for w in widths if w < MIN_SPARSE_WIDTH)


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


@contextmanager
def cached_normalisation(model: "torch.nn.Module") -> Iterator[None]:
    """Within: every module that GCN-normalises its graph (PyG's GCNConv and APPNP, DAGNN's
    propagation: PyG's ``cached`` convention) normalises it once, on its first forward, and
    reuses it. Only for full-batch training, where every forward sees the same graph: the
    normalisation depends on the data alone, and per forward it cost a GCN layer on a torch.sparse
    adj_t about a fifth of its time (10k nodes, 80k edges, width 128). On exit the caches are
    dropped and ``cached`` restored, so that the cost measured afterwards (FLOPs, latency) is
    that of the model as built."""
    modules = [m for m in model.modules()
               if hasattr(m, "_cached_adj_t") and hasattr(m, "_cached_edge_index") and not m.cached]
    for m in modules:
        m.cached = True
    try:
        yield
    finally:
        for m in modules:
            m.cached, m._cached_edge_index, m._cached_adj_t = False, None, None
