"""Search strategies: they propose architectures and record every evaluation in the run store."""
from graphnas.nas.strategies import STRATEGIES
from graphnas.nas.search import Progress, Search, SearchConfig

__all__ = ["STRATEGIES", "Progress", "Search", "SearchConfig"]
