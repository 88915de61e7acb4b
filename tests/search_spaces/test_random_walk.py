"""Sparse random-walk return probabilities against PyG's dense-power reference."""
from __future__ import annotations

import pytest
import torch
from torch_geometric.data import Data
from torch_geometric.transforms import AddRandomWalkPE
from torch_geometric.utils import to_undirected

from graphnas.search_spaces.operators import ENCODING
from graphnas.search_spaces.operators.random_walk import return_probabilities


def graph(n: int, m: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    ei = to_undirected(torch.randint(0, n, (2, m), generator=gen), num_nodes=n)
    return ei


def pyg(ei: torch.Tensor, n: int, k: int) -> torch.Tensor:
    return AddRandomWalkPE(k, attr_name="pe")(Data(edge_index=ei, num_nodes=n)).pe


def test_exact_equals_pyg_including_self_loops_and_isolated_nodes():
    n = 300
    ei = graph(280, 700)  # nodes 280..299 are isolated; random pairs include self-loops
    assert (ei[0] == ei[1]).any()
    ours = return_probabilities(ei, n, 10, method="exact", block=64)
    assert torch.allclose(ours, pyg(ei, n, 10), atol=1e-6)
    assert ours[280:].abs().sum() == 0


def test_estimate_is_exact_for_two_steps_and_close_after():
    n = 500
    ei = graph(n, 2000, seed=1)
    ref = pyg(ei, n, 8)
    est = return_probabilities(ei, n, 8, method="estimate", probes=256, seed=0)
    assert torch.allclose(est[:, :2], ref[:, :2], atol=1e-6)
    err = (est[:, 2:] - ref[:, 2:]).abs()
    assert err.mean() < 0.005 and err.max() < 0.06  # measured 0.0018 and 0.02
    fewer = return_probabilities(ei, n, 8, method="estimate", probes=16, seed=0)
    assert (fewer[:, 2:] - ref[:, 2:]).abs().mean() > err.mean()  # error shrinks with probes
    assert torch.equal(est, return_probabilities(ei, n, 8, method="estimate", probes=256, seed=0))


def test_rwse_encoding_uses_it_and_rejects_unknown_methods():
    ei = graph(50, 150)
    data = Data(edge_index=ei, num_nodes=50)
    assert torch.allclose(ENCODING.get("rwse").compute(data, 6), pyg(ei, 50, 6), atol=1e-6)
    with pytest.raises(ValueError, match="exact, estimate or auto"):
        return_probabilities(ei, 50, 4, method="dense")
