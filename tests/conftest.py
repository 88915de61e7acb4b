"""Shared fixtures: the real datasets beside the checkout, a per-session cache, small graphs."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from torch_geometric.data import Batch, Data

REPO = Path(__file__).resolve().parents[1]
SHARED_DATASETS = Path(os.environ.get("GRAPHNAS_TEST_DATA", REPO.parent / "shared" / "datasets"))


@pytest.fixture(scope="session")
def shared_datasets() -> Path:
    if not (SHARED_DATASETS / "Planetoid" / "Cora" / "raw").is_dir():
        pytest.skip(f"real datasets expected at {SHARED_DATASETS} (set GRAPHNAS_TEST_DATA)")
    return SHARED_DATASETS


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("graphnas-cache")


@pytest.fixture(scope="session", autouse=True)
def default_cache(tmp_path_factory):
    """Tests that name no cache write to a session one, never to ~/.cache/graphnas, which
    another run on the same machine may be filling at the same time. Their searches use no
    knowledge store unless they name one: a search registered by one test would otherwise
    change what the next one proposes."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GRAPHNAS_CACHE", str(tmp_path_factory.mktemp("default-cache")))
        patch.setenv("GRAPHNAS_KNOWLEDGE", "none")
        yield


@pytest.fixture(autouse=True)
def seeded():
    """Every test starts from the same global RNG state, whatever ran before it."""
    torch.manual_seed(0)


def random_graph(num_nodes: int, num_edges: int, channels: int, edge_dim: int, seed: int) -> Data:
    gen = torch.Generator().manual_seed(seed)
    edge_index = torch.randint(0, num_nodes, (2, num_edges), generator=gen)
    edge_index = edge_index[:, edge_index[0] != edge_index[1]]
    return Data(x=torch.randn(num_nodes, channels, generator=gen), edge_index=edge_index,
                edge_attr=torch.randn(edge_index.size(1), edge_dim, generator=gen))


@pytest.fixture
def small_graph() -> Data:
    return random_graph(12, 40, 16, 4, seed=0)


@pytest.fixture
def graph_batch() -> Batch:
    return Batch.from_data_list([random_graph(n, 3 * n, 16, 4, seed=i) for i, n in enumerate((7, 12, 9))])
