"""Run store, Pareto fronts and reports. Reads what strategies wrote; imports no strategy."""
from results.objectives import Objective, parse_objectives
from results.pareto import ParetoFront, front_objectives
from results.store import RunStore

__all__ = ["Objective", "ParetoFront", "RunStore", "front_objectives", "parse_objectives"]
