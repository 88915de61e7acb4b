"""What a person reads: the Pareto plot, summary.md and the terminal table."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Optional

import pandas as pd
from rich.table import Table

from graphnas.results import analysis
from graphnas.results.pareto import ParetoFront
from graphnas.search_spaces.param_key import layer_key



COST_AXIS_LABELS = {"flops": "forward FLOPs", "latency_ms": "latency (ms)", "params": "parameters"}

def plot_pareto(frame: pd.DataFrame, front: ParetoFront, path: Path, metric: str) -> None:
    """Validation metric versus the front's first cost (FLOPs unless the run optimised
    latency or parameters instead; log scale); the front highlighted, the rest grey."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    cost = front.cost
    done = frame[frame["state"] == "COMPLETE"]
    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    ax.scatter(done[cost], done["val_metric"], c="#bbbbbb", s=18, label="dominated trials")
    if len(front):
        pts = front.trials.sort_values(cost)
        ax.step(pts[cost], pts["val_metric"], where="post", c="#d62728", lw=1)
        ax.scatter(pts[cost], pts["val_metric"], c="#d62728", s=28, label="Pareto front", zorder=3)
    refs = analysis.references(done)
    if len(refs):  # the hand designs on the same axes
        ax.scatter(refs[cost], refs["val_metric"], marker="*", c="black", s=90, label="zoo reference", zorder=4)
        for _, row in refs.iterrows():
            ax.annotate(row["reference"], (row[cost], row["val_metric"]), textcoords="offset points",
                        xytext=(5, -10), fontsize=7)
    if len(done) and (done[cost] > 0).all():
        ax.set_xscale("log")
    ax.set_xlabel(COST_AXIS_LABELS[cost])
    ax.set_ylabel(f"validation {metric}")
    distinct = len(front.trials[[cost, "val_metric"]].drop_duplicates()) if len(front) else 0
    same = f" at {distinct} distinct points (trials of equal figures overlap)" if distinct < len(front) else ""
    ax.set_title(f"{len(done)} completed trials, {len(front)} on the front{same}", fontsize=9)
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_alphas(alphas: pd.DataFrame, path: Path) -> None:
    """Softmax weight of every candidate per epoch: one panel per (layer, choice), one line
    style per cost weight, so it shows what the differentiable search preferred and when."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    alphas = alphas.assign(cost_weight=alphas.get("cost_weight", 0.0))
    panels = list(alphas.groupby(["layer", "choice"], sort=False))
    cols = min(3, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3 * rows), dpi=110, squeeze=False)
    styles = ["-", "--", ":", "-."]
    for ax, ((layer, choice), group) in zip(axes.flat, panels):
        for (lam, cand), g in group.groupby(["cost_weight", "candidate"], sort=False):
            lams = sorted(group["cost_weight"].unique())
            ax.plot(g["epoch"], g["weight"], styles[lams.index(lam) % 4], label=f"{cand} (λ={lam:g})"
                    if len(lams) > 1 else cand)
        ax.set_title(f"layer {layer}: {choice}", fontsize=9)
        ax.set_xlabel("epoch")
        ax.set_ylabel("softmax(alpha)")
        ax.legend(fontsize=6)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _fmt_flops(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    value = float(value)
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if value >= scale:
            return f"{value / scale:.2f}{unit}"
    return f"{value:.0f}"


def arch_label(row: pd.Series) -> str:
    """``64d gcn > gat+full, lappe 8``: width, operators per layer, and the encoding if any."""
    if pd.isna(row.get("num_layers", math.nan)):
        return "(no architecture: the trial failed before it was built)"
    ops = []
    for i in range(int(row["num_layers"])):
        att = row.get(layer_key(i, "attention"), "none")
        ops.append(str(row.get(layer_key(i, "mpnn"))) + ("" if att == "none" else f"+{att}"))
    encoding = row.get("encoding", "none")
    enc = "" if not isinstance(encoding, str) or encoding == "none" else f", {encoding} {int(row['encoding_dim'])}"
    ref = row.get("reference")
    tag = f" ({ref})" if isinstance(ref, str) and ref else ""
    return f"{int(row['hidden_dim'])}d " + " > ".join(ops) + enc + tag


def _trials_table(title: str, rows: pd.DataFrame, starred: set) -> Table:
    table = Table(title=title)
    for col in ("trial", "val", "test", "FLOPs", "params", "architecture"):
        table.add_column(col, justify="left" if col == "architecture" else "right")
    for _, row in rows.iterrows():
        table.add_row(f"{row['trial']}{'*' if row['trial'] in starred else ''}", f"{row['val_metric']:.4f}",
                      f"{row['test_metric']:.4f}", _fmt_flops(row["flops"]), f"{int(row['params']):,}",
                      arch_label(row))
    return table


def results_table(frame: pd.DataFrame, front: ParetoFront, metric: str, top: int = 10) -> Table:
    """The best ``top`` completed trials by validation metric, front members starred."""
    maximize = next((o.direction == "maximize" for o in front.objectives if o.name == "metric"), True)
    done = frame[frame["state"] == "COMPLETE"].sort_values(["val_metric", "flops"], ascending=[not maximize, True])
    on_front = set(front.trials["trial"]) if len(front) else set()
    return _trials_table(f"Top trials by validation {metric} (* = on the Pareto front)", done.head(top), on_front)


def pareto_table(front: ParetoFront, metric: str) -> Table:
    """The Pareto front, fewest FLOPs first."""
    return _trials_table(f"Pareto front: validation {metric} versus FLOPs", front.trials, set())


def write_summary(path: Path, frame: pd.DataFrame, front: ParetoFront, best: Optional[pd.Series],
                  metric: str, config: dict, knowledge: Optional[list[dict]] = None) -> None:
    states = frame["state"].value_counts().to_dict() if len(frame) else {}
    lines = [f"# graphnas run: space `{config.get('space', '?')}` on `{config.get('dataset', '?')}`", "",
             f"- strategy: {config.get('strategy', '?')}, objectives: {config.get('objectives', '?')}, "
             f"seed: {config.get('seed', '?')}",
             "- trials: " + ", ".join(f"{k} {v}" for k, v in sorted(states.items()))]
    if knowledge:  # the earlier searches whose best architectures were its first proposals
        lines.append("- started from the knowledge of: " + ", ".join(
            f"{k['name']} ({k['dataset']}, distance {k['distance']:.2f})" for k in knowledge))
    lines.append("")
    if best is not None:
        lines += ["## Best architecture (selected on validation; test only reported)", "",
                  f"trial {int(best['trial'])}: validation {metric} {best['val_metric']:.4f}, "
                  f"test {metric} {best['test_metric']:.4f}, {_fmt_flops(best['flops'])} FLOPs, "
                  f"{int(best['params']):,} parameters: {arch_label(best)}", ""]
        if best.get("confirm_folds", 0) > 0:
            lines[-1:] = [f"Selected among the top trials{' and the neighbours of the best' if 'neighbour_of' in best else ''}"
                          f" cross-validated on {int(best['confirm_folds'])} folds of the training and validation "
                          f"graphs: mean validation {best['confirmed_val']:.4f}; each fold's model on the test "
                          f"split: mean test {best['confirmed_test']:.4f}.", ""]
        elif best.get("confirm_seeds", 0) > 0:
            lines[-1:] = [f"Selected among the top trials retrained with more seeds: mean over "
                          f"{int(best['confirm_seeds'])} seeds, validation {best['confirmed_val']:.4f}, "
                          f"test {best['confirmed_test']:.4f}.", ""]
    lines += ["## Pareto front (validation metric versus FLOPs)", "",
              f"| trial | val {metric} | test {metric} | FLOPs | params | architecture |",
              "|---:|---:|---:|---:|---:|---|"]
    for _, row in front.trials.iterrows():
        lines.append(f"| {int(row['trial'])} | {row['val_metric']:.4f} | {row['test_metric']:.4f} | "
                     f"{_fmt_flops(row['flops'])} | {int(row['params']):,} | {arch_label(row)} |")
    failed = frame[frame["state"] == "FAIL"] if len(frame) else frame
    if len(failed):
        lines += ["", "## Failed trials", ""]
        lines += [f"- trial {int(r['trial'])}: {r.get('error') or 'interrupted: its process ended mid-trial'}" for _, r in failed.iterrows()]
    path.write_text("\n".join(lines) + "\n")
