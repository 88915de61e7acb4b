"""Shared fixtures: the real datasets beside the checkout, a per-session cache, small graphs."""
from __future__ import annotations

import importlib.abc
import os
import sys
from pathlib import Path

import pytest
import torch
from torch_geometric.data import Batch, Data

REPO = Path(__file__).resolve().parents[1]


class _FormerNames(importlib.abc.MetaPathFinder):
    """The packages import as graphnas.nas, graphnas.results, ... only. pytest puts the
    repository's root on sys.path (tests/ is a package), where the folders would also import
    under their bare names, as second copies of every module; an installed graphnas has no
    such names, so the tests refuse them too."""

    FORMER = ("nas", "search_spaces", "evaluators", "results", "cli")

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in self.FORMER:
            raise ModuleNotFoundError(f"No module named {name!r} (graphnas.{name} is the import name)", name=name)
        return None


sys.meta_path.insert(0, _FormerNames())
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
