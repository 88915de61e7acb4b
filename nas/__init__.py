"""Search strategies: they propose architectures and record every evaluation in the run store."""
from nas.strategies import STRATEGIES
from nas.search import Progress, Search, SearchConfig

__all__ = ["STRATEGIES", "Progress", "Search", "SearchConfig"]
