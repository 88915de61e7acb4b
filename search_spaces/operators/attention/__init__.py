"""Attention forms, one per file. Each maps node features ``[N, C] -> [N, C]`` and
never lets nodes of different graphs (different ``batch`` ids) attend to each other."""
from search_spaces.operators.attention import (agent, flow, full, gated, linear, masked, none, performer,  # noqa: F401
                                               kv_from_mpnn, pyg_global, softplus, topm)

from search_spaces.operators.base import ATTENTION  # noqa: E402


def quadratic_forms() -> list[str]:
    """Registered forms that score every pair of nodes of a graph (``quadratic = True`` on
    their class): O(N^2), so they cannot run on a large graph trained in sampled batches."""
    return _forms_with("quadratic")


def head_prunable_forms() -> list[str]:
    """Registered forms whose heads sparsity can remove (per-head projections)."""
    return _forms_with("prunable_heads")


def _forms_with(flag: str) -> list[str]:
    return [name for name in ATTENTION.names() if getattr(ATTENTION.get(name), flag, False)]
