"""graphnas: architecture search for graph neural networks and graph transformers.

    import graphnas
    result = graphnas.search(data, trials=20)   # a PyG Data, a list of them, a Dataset, a name or a path
    result.best, result.trials, result.pareto   # the Architecture, a DataFrame, the front
    model = result.model()                      # the best design trained, an nn.Module

One import name. The repository's packages install under it (setuptools' ``package-dir`` in
pyproject.toml): ``graphnas.nas`` (the engine), ``graphnas.search_spaces``,
``graphnas.evaluators``, ``graphnas.results`` and ``graphnas.cli``.
"""
from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

# The API imports torch and PyG only when first used (the CLI's start-up time, issue 15).
_API = {"search": "graphnas.api", "train": "graphnas.api", "load_model": "graphnas.api",
        "SearchResult": "graphnas.api", "search_config": "graphnas.api",
        "Space": "graphnas.search_spaces", "Architecture": "graphnas.search_spaces",
        "SearchConfig": "graphnas.nas", "TrainConfig": "graphnas.evaluators.training",
        "zoo": "graphnas.search_spaces.zoo"}
__all__ = sorted(_API)


def __getattr__(name: str) -> Any:
    if name not in _API:
        raise AttributeError(f"module 'graphnas' has no attribute {name!r}")
    import importlib

    module = importlib.import_module(_API[name])
    value = module if name == "zoo" else getattr(module, "SearchSpace" if name == "Space" else name)
    globals()[name] = value
    return value
