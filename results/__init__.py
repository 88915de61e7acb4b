"""Run store, Pareto fronts, export and reports. Reads what strategies wrote; imports no strategy."""
from graphnas.results.export import ExportError, export_record, load_model, read_export, write_export
from graphnas.results.objectives import Objective, parse_objectives
from graphnas.results.pareto import ParetoFront, front_objectives
from graphnas.results.store import RunStore

__all__ = ["ExportError", "Objective", "ParetoFront", "RunStore", "export_record", "front_objectives",
           "load_model", "parse_objectives", "read_export", "write_export"]
