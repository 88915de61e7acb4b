"""Search strategies: they propose architectures and record every evaluation in the run store."""
from nas.strategies import STRATEGIES
from nas import differentiable as _differentiable  # noqa: F401  (registers darts, gdas, darts+tpe)
from nas.search import Progress, Search, SearchConfig

__all__ = ["STRATEGIES", "Progress", "Search", "SearchConfig"]
