"""PyG, imported when an operator is first built rather than when the vocabulary is read.

``import torch_geometric`` costs about 1.6 s beyond ``import torch`` on the 2-core machine
(it imports ``torch._dynamo`` and every dataset module). Listing the registries, checking a
space file or reading an export need the names and capabilities only, so the operator
modules reach PyG through these handles, which import it on their first attribute lookup.
``importlib.util.LazyLoader`` cannot do this for a subpackage: finding ``torch_geometric.nn``
imports ``torch_geometric`` itself.
"""
from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any


class DeferredModule:
    """Stands for the module ``name`` and imports it when an attribute is first read.

    >>> utils = DeferredModule("torch_geometric.utils")   # nothing imported yet
    >>> utils.degree                                       # imports torch_geometric now
    """

    def __init__(self, name: str) -> None:
        self._name = name

    def module(self) -> ModuleType:
        return importlib.import_module(self._name)  # after the first call, a sys.modules lookup

    def __getattr__(self, attr: str) -> Any:
        return getattr(self.module(), attr)

    def __repr__(self) -> str:
        return f"<deferred module {self._name!r}>"


gnn = DeferredModule("torch_geometric.nn")
utils = DeferredModule("torch_geometric.utils")
data = DeferredModule("torch_geometric.data")
transforms = DeferredModule("torch_geometric.transforms")
attention = DeferredModule("torch_geometric.nn.attention")
performer = DeferredModule("torch_geometric.nn.attention.performer")
explain_utils = DeferredModule("torch_geometric.explain.algorithm.utils")
