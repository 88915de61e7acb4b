"""Neighbour-sampled mini-batches for node tasks on graphs too large for full-batch training.

Batches come from PyG's :class:`~torch_geometric.loader.NeighborLoader` (GraphSAGE
sampling, Hamilton et al. 2017): each batch holds ``batch_size`` seed nodes first, then
their sampled in-neighbours hop by hop, with the edges pointing towards the seeds.

PyG samples with the compiled kernels of ``pyg-lib`` or ``torch-sparse``. Neither has a
wheel for our torch (2.13) on the package index this project installs from, so when
neither is importable :class:`TorchNeighborSampler` supplies the sampling step itself,
vectorised in torch; everything else (CSC conversion, batch assembly, feature slicing,
shuffling, workers) is still PyG's loader. With either library installed, PyG's own
sampler is used unchanged.
"""
from __future__ import annotations

import copy
import warnings
from typing import Optional, Sequence

import torch
import torch_geometric.typing
from torch import Tensor
from torch_geometric.data import Data
from torch_geometric.loader import NeighborLoader
from torch_geometric.sampler import NeighborSampler, SamplerOutput


class TorchNeighborSampler(NeighborSampler):
    """:class:`NeighborSampler` whose homogeneous, directional sampling step runs in plain
    torch: per hop, each frontier node keeps a uniform sample without replacement of at
    most ``fanout`` of its in-edges (all of them when it has fewer; ``-1`` keeps all).

    Output contract (PyG's): ``node`` holds global ids with the seeds first, then each
    hop's new nodes; ``row``/``col`` are local source/target ids of the sampled edges;
    ``edge`` are positions in the sampler's CSC order (the loader maps them through
    ``perm``); ``num_sampled_nodes``/``num_sampled_edges`` count per hop.
    """

    def __init__(self, data: Data, num_neighbors: Sequence[int], seed: int = 0) -> None:
        with warnings.catch_warnings():  # PyG warns that sampling without pyg-lib is deprecated
            warnings.simplefilter("ignore", UserWarning)
            super().__init__(data, list(num_neighbors))
        self.generator = torch.Generator().manual_seed(seed)
        # global id -> local id of the batch being built; -1 = not in it. Kept between
        # batches (and reset entry by entry) so a batch costs O(its size), not O(N).
        self._local = torch.full((self.num_nodes,), -1, dtype=torch.long)

    def fork(self, seed: int) -> "TorchNeighborSampler":
        """A sampler on the same CSC index (shared, read-only) with its own random stream
        and scratch: one per loader, so the index is built once, not once per split."""
        twin = copy.copy(self)
        twin.generator = torch.Generator().manual_seed(seed)
        twin._local = torch.full_like(self._local, -1)
        return twin

    def _sample(self, seed: Tensor, seed_time: Optional[Tensor] = None, **kwargs) -> SamplerOutput:
        if isinstance(seed, dict) or seed_time is not None or self.disjoint:
            raise NotImplementedError("TorchNeighborSampler samples homogeneous, non-temporal graphs; "
                                      "install pyg-lib for heterogeneous or temporal sampling")
        seed = seed.long()
        nodes, rows, cols, edges = [seed], [], [], []
        self._local[seed] = torch.arange(len(seed))
        frontier, count = seed, len(seed)
        num_nodes, num_edges = [len(seed)], []
        for fanout in self.num_neighbors.get_mapped_values():
            edge_pos, target = self._sample_in_edges(frontier, fanout)
            source = self.row[edge_pos]
            new = torch.unique(source[self._local[source] < 0])
            self._local[new] = torch.arange(count, count + len(new))
            count += len(new)
            nodes.append(new)
            rows.append(self._local[source])
            cols.append(self._local[target])
            edges.append(edge_pos)
            num_nodes.append(len(new))
            num_edges.append(len(edge_pos))
            frontier = new
        node = torch.cat(nodes)
        self._local[node] = -1
        return SamplerOutput(node=node, row=torch.cat(rows), col=torch.cat(cols), edge=torch.cat(edges),
                             num_sampled_nodes=num_nodes, num_sampled_edges=num_edges)

    def _sample_in_edges(self, targets: Tensor, fanout: int) -> tuple[Tensor, Tensor]:
        """CSC positions of the kept in-edges of ``targets``, and each one's target."""
        start, degree = self.colptr[targets], self.colptr[targets + 1] - self.colptr[targets]
        owner = torch.repeat_interleave(torch.arange(len(targets)), degree)
        offset = torch.arange(len(owner)) - torch.repeat_interleave(torch.cumsum(degree, 0) - degree, degree)
        position = start[owner] + offset
        if fanout >= 0 and len(owner) and int(degree.max()) > fanout:
            # Uniform without replacement: order each node's edges by a random key, keep the first `fanout`.
            keys = torch.rand(len(owner), generator=self.generator)
            order = torch.argsort(owner.double() + keys, stable=True)
            rank = offset  # after the sort the edges of a node are contiguous, in the same slots
            keep = order[rank < fanout]
            position, owner = position[keep], owner[keep]
        return position, targets[owner]


def neighbor_sampler(data: Data, fanouts: Sequence[int]) -> NeighborSampler:
    """The sampler (and its CSC index of ``data``) for loaders with these fan-outs: PyG's
    compiled one when there is one, else :class:`TorchNeighborSampler`."""
    if torch_geometric.typing.WITH_PYG_LIB or torch_geometric.typing.WITH_TORCH_SPARSE:
        return NeighborSampler(data, list(fanouts))
    return TorchNeighborSampler(data, fanouts)


def neighbor_loader(data: Data, input_nodes: Tensor, fanouts: Sequence[int], batch_size: int,
                    shuffle: bool = False, seed: int = 0,
                    sampler: Optional[NeighborSampler] = None) -> NeighborLoader:
    """PyG's ``NeighborLoader`` over ``input_nodes`` with ``fanouts[i]`` neighbours at hop i;
    on the torch sampler when PyG has no compiled one. Loaders given one ``sampler`` (from
    :func:`neighbor_sampler`) share its index."""
    sampler = sampler if sampler is not None else neighbor_sampler(data, fanouts)
    if isinstance(sampler, TorchNeighborSampler):
        sampler = sampler.fork(seed)
    gen = torch.Generator().manual_seed(seed)
    return NeighborLoader(data, num_neighbors=list(fanouts), input_nodes=input_nodes, batch_size=batch_size,
                          shuffle=shuffle, neighbor_sampler=sampler, generator=gen)
