"""Attention forms, one per file. Each maps node features ``[N, C] -> [N, C]`` and
never lets nodes of different graphs (different ``batch`` ids) attend to each other."""
from graphnas.search_spaces.operators.attention import (agent, flow, full, gated, linear, masked, none, performer,  # noqa: F401
                                               kv_from_mpnn, pyg_global, softplus, topm)

from graphnas.search_spaces.operators.base import ATTENTION  # noqa: E402


COSTS = ("quadratic", "linear", "edges", "none")  # every form declares one at registration (cost=...)


def quadratic_forms() -> list[str]:
    """Registered forms that score every pair of nodes of a graph (``cost="quadratic"``):
    O(N^2), so they cannot run on a large graph trained in sampled batches."""
    return forms_costing("quadratic")


def forms_costing(cost: str) -> list[str]:
    """Registered forms of one cost class (``quadratic``, ``linear``, ``edges``, ``none``)."""
    return [e.name for e in ATTENTION if e.capabilities.get("cost") == cost]


def head_prunable_forms() -> list[str]:
    """Registered forms whose heads sparsity can remove (per-head projections)."""
    return ATTENTION.with_capability("prunable_heads")


def takes_kv(name: str) -> bool:
    """Whether the form takes its keys and values from the MPNN (``kv_source: mpnn``)."""
    return ATTENTION.entry(name).can("takes_kv")
