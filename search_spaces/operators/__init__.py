"""The operator vocabulary: one registry per kind, filled by the imports below.

Every MPNN and attention primitive is an ``nn.Module`` built from an
:class:`OpContext` with the forward signature
``forward(x, edge_index, edge_attr=None, batch=None) -> Tensor`` mapping
``[N, channels] -> [N, channels]``.
"""
from graphnas.search_spaces.operators.base import ACTIVATION, ATTENTION, ENCODING, MPNN, NORM, POOLING, OpContext
from graphnas.search_spaces.operators import mpnn as _mpnn  # noqa: F401  (fills MPNN)
from graphnas.search_spaces.operators import attention as _attention  # noqa: F401  (fills ATTENTION)
from graphnas.search_spaces.operators import encoding as _encoding  # noqa: F401  (fills ENCODING)
from graphnas.search_spaces.operators import norm as _norm  # noqa: F401  (fills NORM, POOLING)
from graphnas.search_spaces.operators import activation as _activation  # noqa: F401  (fills ACTIVATION)

REGISTRIES = {"mpnn": MPNN, "attention": ATTENTION, "encoding": ENCODING, "norm": NORM, "pooling": POOLING,
              "activation": ACTIVATION}

__all__ = ["ACTIVATION", "ATTENTION", "ENCODING", "MPNN", "NORM", "POOLING", "REGISTRIES", "OpContext"]
