"""The vocabulary and the grammar of graph architectures.

Operator registries, the space schema, :class:`SearchSpace`, :class:`Architecture`
(the export format) and :func:`build_model`. Knows nothing of search, training or storage.
"""
from graphnas.search_spaces.architecture import Architecture, LayerArch
from graphnas.search_spaces.builder import DataInfo, GraphModel, build_model, model_inputs
from graphnas.search_spaces.operators import REGISTRIES, OpContext
from graphnas.search_spaces.schema import SpaceError, SpaceSpec
from graphnas.search_spaces.space import SearchSpace, preset_names

__all__ = ["Architecture", "DataInfo", "GraphModel", "LayerArch", "OpContext", "REGISTRIES",
           "SearchSpace", "SpaceError", "SpaceSpec", "build_model", "model_inputs", "preset_names"]
