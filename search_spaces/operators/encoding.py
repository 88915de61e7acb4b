"""Positional and structural encodings.

Each encoding has two halves: ``compute(data, k) -> Tensor [N, k]``, run once per
dataset by the evaluators (and cached on disk, never per trial), and the module
``Encoding(k, channels)`` that maps the first ``k`` columns to ``[N, channels]`` inside
the model. Computing with the largest ``k`` of a space and slicing lets every trial
share one precomputation.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from graphnas.search_spaces.operators.base import ENCODING
from graphnas.search_spaces.operators.pyg import data as pyg_data, transforms, utils
from graphnas.search_spaces.operators.random_walk import return_probabilities

if TYPE_CHECKING:
    from torch_geometric.data import Data


class Encoding(nn.Module):
    """Linear map of a precomputed ``[N, k]`` encoding to ``[N, channels]``."""

    attr: str = ""

    def __init__(self, k: int, channels: int) -> None:
        super().__init__()
        self.k = k
        self.lin = nn.Linear(k, channels)

    def dataflow(self) -> str:
        return f"returns lin(pe[:, :{self.k}]): the first {self.k} columns of the precomputed {self.attr!r}"

    def forward(self, pe: Tensor) -> Tensor:
        return self.lin(pe[:, : self.k])

    @staticmethod
    def compute(data: Data, k: int) -> Tensor:
        raise NotImplementedError


@ENCODING.register("none", "No positional or structural encoding")
class NoEncoding(Encoding):
    attr = ""

    @staticmethod
    def compute(data: Data, k: int) -> Tensor:
        return torch.zeros(data.num_nodes, 0)


@ENCODING.register("lap_pe", "Laplacian eigenvectors (k smallest non-trivial), random sign flip in training")
class LapPE(Encoding):
    attr = "lap_pe"

    def dataflow(self) -> str:
        return super().dataflow() + ", each column's sign flipped at random in training"

    def forward(self, pe: Tensor) -> Tensor:
        pe = pe[:, : self.k]
        if self.training:  # eigenvectors are defined up to sign: learn invariance to it
            sign = torch.randint(0, 2, (1, self.k), device=pe.device).to(pe.dtype) * 2 - 1
            pe = pe * sign
        return self.lin(pe)

    @staticmethod
    def compute(data: Data, k: int) -> Tensor:
        n = data.num_nodes
        # PyG's transform needs k < N - 1; small graphs get fewer vectors, zero-padded to k.
        k_eff = min(k, n - 2)
        pe = torch.zeros(n, k)
        if k_eff >= 1:
            out = transforms.AddLaplacianEigenvectorPE(k_eff, attr_name="pe", is_undirected=True)(
                pyg_data.Data(edge_index=data.edge_index, num_nodes=n))
            vecs = out.pe.float()
            # the solver returns each eigenvector with an arbitrary sign: fix it (largest
            # entry positive) so the same graph always gives the same encoding
            peak = vecs.gather(0, vecs.abs().argmax(0, keepdim=True))
            pe[:, :k_eff] = vecs * torch.where(peak < 0, -1.0, 1.0)
        return pe


@ENCODING.register("rwse", "Random-walk structural encoding: return probabilities for 1..k steps (sparse; "
                   "estimated above 20k nodes)")
class RWSE(Encoding):
    attr = "rwse"

    @staticmethod
    def compute(data: Data, k: int) -> Tensor:
        # Not PyG's AddRandomWalkPE: its matrix powers do not scale past ~10^4 nodes.
        return return_probabilities(data.edge_index, data.num_nodes, k)


@ENCODING.register("degree", "In-degree, one-hot with the last of k buckets for degree >= k-1")
class DegreeEncoding(Encoding):
    attr = "degree_enc"

    @staticmethod
    def compute(data: Data, k: int) -> Tensor:
        deg = utils.degree(data.edge_index[1], data.num_nodes).long().clamp(max=k - 1)
        return torch.nn.functional.one_hot(deg, k).float()


@ENCODING.register("lap_pe_signnet", "Laplacian eigenvectors through SignNet: phi(v) + phi(-v), sign-invariant")
class SignNetLapPE(Encoding):
    """SignNet (Lim et al. 2022) on the k Laplacian eigenvectors: each eigenvector's entry
    goes through a shared MLP ``phi`` as ``phi(v) + phi(-v)``, which is invariant to the
    sign of every eigenvector exactly (no random flips needed); ``rho`` maps the k results
    to ``channels``. Shares the ``lap_pe`` precomputation."""

    attr = "lap_pe"
    compute = staticmethod(LapPE.compute)

    def __init__(self, k: int, channels: int, hidden: int = 16) -> None:
        super().__init__(k, channels)
        self.phi = nn.Sequential(nn.Linear(1, hidden), nn.ReLU(), nn.Linear(hidden, hidden))
        self.lin = nn.Linear(k * hidden, channels)  # rho

    def dataflow(self) -> str:
        return (f"v = pe[:, :{self.k}] (the precomputed 'lap_pe'), one entry at a time; "
                "returns lin(flatten(phi(v) + phi(-v)))")

    def forward(self, pe: Tensor) -> Tensor:
        v = pe[:, : self.k].unsqueeze(-1)  # [N, k, 1]
        invariant = self.phi(v) + self.phi(-v)  # [N, k, hidden]
        return self.lin(invariant.flatten(1))
