"""Random-walk return probabilities ``diag(P^t)``, t = 1..k, ``P = D^-1 A``, with sparse
operations only (RWSE, Dwivedi et al. 2022).

PyG's ``AddRandomWalkPE`` multiplies whole matrices, whose fill-in makes it superlinear
(measured on 2 cores: 14 s for 16 steps on Cora, more than 19 minutes for 8 steps on a
20k-node graph). Nothing in PyG or SciPy gives the diagonal of a matrix power cheaply, so:

* ``exact``: ``P^t`` applied to blocks of unit vectors (``[N, B]`` dense blocks times the
  sparse ``P``), reading the diagonal after each step: ``k E N`` multiply-adds, memory
  ``N B``; exact, for graphs up to ``exact_max_nodes``.
* ``estimate`` (Hutchinson's diagonal estimator, Bekas et al. 2007): with Rademacher
  probes ``z``, ``diag(M) ~ sum_s z_s * (M z_s) / S``; ``k E S`` multiply-adds, linear in
  steps x edges. Steps 1 and 2 are exact (``diag(P)`` from self-loops, ``diag(P^2)_i =
  sum_j P_ij P_ji`` over edges); later steps' error shrinks as ``1/sqrt(S)`` and with how
  far the walk has spread (``sum_j (P^t)_ij^2``).
"""
from __future__ import annotations

import torch
from torch import Tensor
from graphnas.search_spaces.operators.pyg import utils

EXACT_MAX_NODES = 20_000
PROBES = 256


def transition_matrix(edge_index: Tensor, num_nodes: int) -> Tensor:
    """Sparse CSR ``P = D^-1 A`` (rows of isolated nodes stay zero)."""
    edge_index = utils.coalesce(edge_index, num_nodes=num_nodes)
    row, col = edge_index
    deg = utils.degree(row, num_nodes)
    return utils.to_torch_csr_tensor(edge_index, 1.0 / deg[row], (num_nodes, num_nodes))


def return_probabilities(edge_index: Tensor, num_nodes: int, k: int, method: str = "auto",
                         probes: int = PROBES, block: int = 512, seed: int = 0) -> Tensor:
    """``[N, k]``: column ``t - 1`` is ``diag(P^t)``. ``method``: exact | estimate | auto
    (exact up to ``EXACT_MAX_NODES`` nodes)."""
    if method == "auto":
        method = "exact" if num_nodes <= EXACT_MAX_NODES else "estimate"
    p = transition_matrix(edge_index, num_nodes)
    if method == "exact":
        return _exact(p, num_nodes, k, block)
    if method == "estimate":
        return _estimate(p, num_nodes, k, probes, seed)
    raise ValueError(f"method must be exact, estimate or auto, got {method!r}")


def _exact(p: Tensor, n: int, k: int, block: int) -> Tensor:
    out = torch.zeros(n, k)
    for start in range(0, n, block):
        idx = torch.arange(start, min(start + block, n))
        x = torch.zeros(n, len(idx))
        x[idx, torch.arange(len(idx))] = 1.0
        for t in range(k):
            x = p @ x  # column j: P^(t+1) e_j
            out[idx, t] = x[idx, torch.arange(len(idx))]
    return out


def _estimate(p: Tensor, n: int, k: int, probes: int, seed: int) -> Tensor:
    gen = torch.Generator().manual_seed(seed)
    z = torch.randint(0, 2, (n, probes), generator=gen).float() * 2 - 1
    x, out = z, torch.zeros(n, k)
    for t in range(k):
        x = p @ x
        out[:, t] = (z * x).mean(1)
    exact = _first_two(p, n, min(k, 2))
    out[:, : exact.size(1)] = exact
    return out.clamp_(0.0, 1.0)


def _first_two(p: Tensor, n: int, k: int) -> Tensor:
    """``diag(P)`` and ``diag(P^2)`` exactly, from the edge list."""
    coo = p.to_sparse_coo().coalesce()
    (row, col), val = coo.indices(), coo.values()
    out = torch.zeros(n, k)
    loops = row == col
    out[row[loops], 0] = val[loops]
    if k > 1:  # (P^2)_ii = sum_j P_ij P_ji: pair each edge (i, j) with its reverse (j, i)
        key = row * n + col
        rev = col * n + row
        order = torch.argsort(key)
        pos = torch.searchsorted(key[order], rev).clamp(max=len(key) - 1)
        match = key[order][pos] == rev
        back = torch.where(match, val[order][pos], torch.zeros_like(val))
        out[:, 1] = torch.zeros(n).index_add_(0, row, val * back)
    return out
