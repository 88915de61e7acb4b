"""What a search optimises: named objectives read from a trial's measured figures.

``metric`` is the dataset's validation metric (its direction comes from the metric);
cost objectives are minimised. Kept in ``results`` because both the strategies (which
optimise them) and the reports (which plot them) read them.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Objective:
    name: str        # as given on the command line
    column: str      # column of trials.csv / field of TrialResult
    direction: str   # "maximize" | "minimize"


COST_COLUMNS = {"flops": "flops", "params": "params", "latency": "latency_ms"}


def parse_objectives(text: str, metric_direction: str) -> list[Objective]:
    """``"metric,flops"`` -> objectives; unknown names are an error listing the valid ones."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise ValueError("--objectives: give at least one of: metric, " + ", ".join(COST_COLUMNS))
    if len(set(names)) != len(names):
        raise ValueError(f"--objectives: {text!r} names an objective twice")
    out = []
    for name in names:
        if name == "metric":
            out.append(Objective("metric", "val_metric", metric_direction))
        elif name in COST_COLUMNS:
            out.append(Objective(name, COST_COLUMNS[name], "minimize"))
        else:
            raise ValueError(f"--objectives: unknown objective {name!r}; valid: metric, "
                             + ", ".join(COST_COLUMNS))
    return out
