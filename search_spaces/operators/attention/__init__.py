"""Attention forms, one per file. Each maps node features ``[N, C] -> [N, C]`` and
never lets nodes of different graphs (different ``batch`` ids) attend to each other."""
from search_spaces.operators.attention import (agent, flow, full, gated, linear, masked, none, performer,  # noqa: F401
                                               kv_from_mpnn, pyg_global, softplus, topm)
