"""report.html and compare.html: self-contained plotly pages (the JS is inlined, so they
open offline)."""
from __future__ import annotations

import json

import html
import math
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import plotly.graph_objects as go

from graphnas.results import analysis
from graphnas.results.objectives import Objective
from graphnas.results.pareto import ParetoFront, front_objectives
from graphnas.results.report import COST_AXIS_LABELS, arch_label
from graphnas.results.store import RunStore, best_row, ranked_trials


class CompareError(ValueError):
    """Runs that cannot be compared; the message says what differs."""


@dataclass
class LoadedRun:
    run_dir: Path
    config: dict
    study: optuna.Study
    frame: pd.DataFrame
    objectives: list[Objective]

    @classmethod
    def open(cls, run_dir: str | Path) -> "LoadedRun":
        store, study = RunStore.open(run_dir)
        frame = analysis.elapsed_column(study, store.trials_frame(study))
        return cls(Path(run_dir), store.read_config(), study, frame, store.objectives_of(study))

    @property
    def maximize(self) -> bool:
        return analysis.objective_direction(self.objectives)

    @property
    def metric(self) -> str:
        return self.study.user_attrs.get("metric", "metric")

    @property
    def dataset(self) -> str:
        return self.study.user_attrs.get("dataset", self.config.get("dataset", "?"))

    @cached_property
    def front(self) -> ParetoFront:
        return ParetoFront.of(self.frame, front_objectives(self.objectives))

    def summary(self, ref: analysis.Reference) -> analysis.RunSummary:
        best = best_row(self.frame, self.objectives)
        ends = self.frame["elapsed_s"].dropna()
        return analysis.RunSummary(
            run=str(self.run_dir), strategy=self.config.get("strategy", "?"), space=self.config.get("space", "?"),
            dataset=self.dataset, metric=self.metric, trials=len(self.frame),
            wall_time_s=float(ends.max()) if len(ends) else 0.0,
            best_val=float(best["val_metric"]) if best is not None else float("nan"),
            test_of_best=float(best["test_metric"]) if best is not None else float("nan"),
            flops_of_best=float(best["flops"]) if best is not None else float("nan"),
            hypervolume=analysis.hypervolume(self.frame, ref, self.maximize),
            time_to_99pct_s=analysis.time_to_fraction(self.frame, self.maximize),
            **self._reference_fields())

    def _reference_fields(self) -> dict[str, Any]:
        row = analysis.best_reference(self.frame, self.maximize)
        if row is None:
            return {}
        return {"best_reference": row["reference"], "reference_val": float(row["val_metric"]),
                "reference_flops": float(row["flops"])}


def _pareto_traces(run: LoadedRun, name: str = "", grey: bool = True) -> list[go.Scatter]:
    done = analysis.completed(run.frame)
    cost = run.front.cost
    front = run.front.trials.sort_values(cost)
    hover = "trial %{customdata}<br>val %{y:.4f}<br>" + COST_LABELS[cost] + " %{x:.3s}"
    traces = []
    if grey:
        traces.append(go.Scatter(x=done[cost], y=done["val_metric"], mode="markers", name="dominated",
                                 marker={"color": "#bbbbbb"}, customdata=done["trial"], hovertemplate=hover))
    traces.append(go.Scatter(x=front[cost], y=front["val_metric"], mode="lines+markers", line_shape="hv",
                             name=f"Pareto front {name}".strip(), customdata=front["trial"], hovertemplate=hover))
    refs = analysis.references(done)
    if len(refs):  # the zoo designs run as trials: where the hand designs stand on the same axes
        traces.append(go.Scatter(x=refs[cost], y=refs["val_metric"], mode="markers+text", text=refs["reference"],
                                 textposition="bottom right", marker={"symbol": "star", "size": 12, "color": "black"},
                                 name=f"zoo references {name}".strip(), customdata=refs["trial"], hovertemplate=hover))
    return traces


def _figure(traces: list, title: str, x: str, y: str, log_x: bool = False) -> go.Figure:
    fig = go.Figure(traces)
    fig.update_layout(title=title, xaxis_title=x, yaxis_title=y, template="plotly_white", height=420)
    if log_x:
        fig.update_xaxes(type="log")
    return fig


def _page(title: str, intro: str, figures: list[go.Figure], tables: list[str]) -> str:
    parts = [fig.to_html(full_html=False, include_plotlyjs=(i == 0)) for i, fig in enumerate(figures)]
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            "<style>body{font-family:sans-serif;margin:2em;max-width:1100px}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}</style></head><body>"
            f"<h1>{html.escape(title)}</h1><p>{intro}</p>" + "".join(tables) + "".join(parts) + "</body></html>")


MIN_TRIALS_FOR_IMPORTANCE = 10
COST_LABELS = {"flops": "FLOPs", "latency_ms": "latency (ms)", "params": "parameters"}  # in titles and hovers


def _integer_trial_ticks(fig: go.Figure, trials: int) -> None:
    """Trial numbers are integers: no tick at 0.5 on a short run."""
    fig.update_xaxes(tick0=0, dtick=max(1, math.ceil(trials / 10)))


def _labelled(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(architecture=[arch_label(row) for _, row in frame.iterrows()])


def _table(frame: pd.DataFrame) -> str:
    return frame.to_html(index=False, float_format=lambda v: f"{v:.4g}", border=0)


def write_report(run: LoadedRun, path: Path) -> dict[str, Any]:
    """Write report.html for one run; return its figures as a dict (the ``--json`` view)."""
    maximize, metric = run.maximize, run.metric
    cost = run.front.cost
    label = COST_LABELS[cost]
    ref = analysis.Reference.of([run.frame], maximize, cost) if len(analysis.completed(run.frame)) else None
    curve = analysis.best_so_far(run.frame, maximize)
    hv = analysis.hypervolume_history(run.frame, ref, maximize) if ref else pd.DataFrame(columns=["trial", "hypervolume"])
    done = analysis.completed(run.frame)
    # fANOVA on a handful of trials is noise presented as a ranking
    importance = analysis.importances(run.study) if len(done) >= MIN_TRIALS_FOR_IMPORTANCE else {}
    freq = analysis.operator_frequency(run.frame, maximize)
    figures = [
        _figure(_pareto_traces(run), f"Validation {metric} versus {label}", COST_AXIS_LABELS[cost], f"validation {metric}",
                True),
        _figure([go.Scatter(x=curve["trial"], y=curve["value"], mode="markers", name="trial"),
                 go.Scatter(x=curve["trial"], y=curve["best"], mode="lines", line_shape="hv", name="best so far")],
                "Best so far over trials", "trial", f"validation {metric}"),
        _figure([go.Scatter(x=curve["elapsed_s"], y=curve["best"], mode="lines+markers", line_shape="hv",
                            name="best so far")], "Best so far over wall-clock", "seconds since start",
                f"validation {metric}"),
        _figure([go.Scatter(x=hv["trial"], y=hv["hypervolume"], mode="lines+markers", line_shape="hv")],
                f"Hypervolume (reference: {metric} {ref.metric:.4g}, {ref.flops:.4g} {label})" if ref else "Hypervolume",
                "trial", "hypervolume"),
    ]
    _integer_trial_ticks(figures[1], len(run.frame))
    _integer_trial_ticks(figures[3], len(run.frame))
    figures[3].update_yaxes(rangemode="nonnegative")  # a hypervolume is never below 0
    if importance:
        names = list(importance)[::-1]
        figures.append(_figure([go.Bar(x=[importance[n] for n in names], y=names, orientation="h")],
                               f"Choice importance ({analysis.importance_method(len(done))}, validation metric)",
                               "importance", "choice"))
    if not freq.empty:
        operators = _figure([go.Bar(x=freq.index, y=freq[op], name=op) for op in freq.columns],
                            "MPNN operator per layer among the top 25% of trials", "layer", "trials")
        operators.update_layout(showlegend=True, legend_title_text="MPNN operator", barmode="group")
        figures.append(operators)
    alphas_path = run.run_dir / "alphas.csv"  # written by differentiable (DARTS) strategies
    if alphas_path.is_file():
        alphas = pd.read_csv(alphas_path)  # columns: epoch, layer, choice, candidate, weight[, cost_weight]
        alphas = alphas.assign(cost_weight=alphas.get("cost_weight", 0.0))
        traces = [go.Scatter(x=g["epoch"], y=g["weight"], mode="lines",
                             name=f"layer{layer} {choice}: {cand}" + (f" λ={lam:g}" if alphas["cost_weight"].nunique() > 1 else ""))
                  for (lam, layer, choice, cand), g in alphas.groupby(["cost_weight", "layer", "choice", "candidate"])]
        figures.append(_figure(traces, "Architecture weights (softmax of alpha) per epoch", "epoch", "weight"))
    states = run.frame["state"].value_counts().to_dict()
    counts = ", ".join(f"{n} {state.lower()}" for state, n in states.items())
    caveat = ("" if importance or not len(done) else
              f"; choice importances are shown from {MIN_TRIALS_FOR_IMPORTANCE} completed trials on")
    knowledge = run.study.user_attrs.get("knowledge") or []  # the earlier searches it started from
    started = ("; started from the knowledge of " + ", ".join(f"{k['name']} ({k['dataset']}, distance "
                                                              f"{k['distance']:.2f})" for k in knowledge)
               if knowledge else "")
    intro = html.escape(f"space {run.config.get('space')}, dataset {run.dataset}, strategy "
                        f"{run.config.get('strategy')}, objectives {run.config.get('objectives')}; "
                        f"{len(run.frame)} trials: {counts}{started}{caveat}")
    # best first in the order best_arch.json selects in (ties: fewer FLOPs, then the earlier trial)
    top = ranked_trials(done, run.objectives).head(10)
    cols = ["trial", "val_metric", "test_metric", "flops", "params", "latency_ms", "architecture", "arch_id"]
    cols += ["reference"] if "reference" in run.frame else []
    tables = ["<h2>Top trials (selected on validation; test only reported)</h2>", _table(_labelled(top)[cols]),
              "<h2>Pareto front</h2>", _table(_labelled(run.front.trials)[cols])]
    path.write_text(_page(f"graphnas report: {run.run_dir.name}", intro, figures, tables))
    return {"run": str(run.run_dir), "metric": metric, "states": states, "knowledge": knowledge,
            "reference": asdict(ref) if ref else None,
            "hypervolume": float(hv["hypervolume"].iloc[-1]) if len(hv) else 0.0,
            "best_so_far": curve[["trial", "elapsed_s", "best"]].to_dict("records"),
            "importances": importance, "pareto": run.front.to_records()}


def compare_runs(run_dirs: list[str | Path], allow_mixed: bool = False) -> tuple[list[LoadedRun], analysis.Reference]:
    runs = [LoadedRun.open(d) for d in run_dirs]
    if len(runs) < 2:
        raise CompareError("compare needs at least two run directories")
    for attr in ("dataset", "metric"):
        values = {getattr(r, attr) for r in runs}
        if len(values) > 1 and not allow_mixed:
            raise CompareError(f"runs are on different {attr}s ({', '.join(sorted(values))}): their "
                               "figures are not comparable; pass --allow-mixed to compare anyway")
    if len({r.maximize for r in runs}) > 1:
        raise CompareError("runs optimise their metric in different directions")
    if not all(len(analysis.completed(r.frame)) for r in runs):
        raise CompareError("every run needs at least one completed trial")
    return runs, analysis.Reference.of([r.frame for r in runs], runs[0].maximize)


# settings that change what a trial measures: runs that differ in one are compared with a warning
COMPARED_SETTINGS = ("train.epochs", "train.patience", "train.folds", "train.batch_size", "train.metric",
                     "train.split", "pruner", "objectives", "evaluator", "protocol")


def settings_differences(runs: list[LoadedRun]) -> list[str]:
    """One line per setting the runs do not share (``train.epochs: a 100, b 30``)."""
    def value(config: dict, path: str):
        for key in path.split("."):
            config = config.get(key) if isinstance(config, dict) else None
        return config

    out = []
    for path in COMPARED_SETTINGS:
        values = [value(r.config, path) for r in runs]
        if len({json.dumps(v, sort_keys=True) for v in values}) > 1:
            out.append(f"{path}: " + ", ".join(f"{r.run_dir.name} {v}" for r, v in zip(runs, values)))
    return out


def write_compare(runs: list[LoadedRun], ref: analysis.Reference, path: Path) -> list[analysis.RunSummary]:
    summaries = [r.summary(ref) for r in runs]
    metric = runs[0].metric
    fronts, curves = [], []
    for r in runs:
        fronts += _pareto_traces(r, r.run_dir.name, grey=False)
        c = analysis.best_so_far(r.frame, r.maximize)
        curves.append(go.Scatter(x=c["trial"], y=c["best"], mode="lines", line_shape="hv", name=r.run_dir.name))
    figures = [_figure(fronts, f"Pareto fronts: validation {metric} versus FLOPs", "forward FLOPs",
                       f"validation {metric}", True),
               _figure(curves, "Best so far over trials", "trial", f"validation {metric}")]
    intro = html.escape(f"hypervolume reference point: {metric} {ref.metric:.4g}, {ref.flops:.4g} FLOPs "
                        "(FLOPs scaled by the reference)")
    table = _table(pd.DataFrame([asdict(s) for s in summaries]))
    path.write_text(_page("graphnas compare", intro, figures, [table]))
    return summaries


__all__ = ["CompareError", "LoadedRun", "compare_runs", "settings_differences", "write_compare", "write_report"]
