"""Issue 42: the default search against the hand designs on heterophilous graphs.

For each of chameleon_filtered, squirrel_filtered and actor (Platonov et al.'s files, read from
``heterophily/NAME.npz`` under ``--data-root``):

1. the default search on split 0 (no ``--space``, the default budget, epochs and strategy;
   ``--knowledge none`` so that no earlier search on this machine steers it, ``--threads 1``),
   then ``graphnas export RUN --best``;
2. the search's best retrained over the 10 fixed splits, one seed each, under the hand designs'
   protocol (``graphnas train EXPORT --splits 10 --seeds 1 --epochs 200 --patience 200``);
3. each hand design under the same protocol: ``graphnas train zoo:NAME --splits 10 --seeds 1``
   for zoo:gcn, zoo:gat, zoo:luo_gcn, zoo:luo_sage, zoo:luo_gat (their own per-dataset settings
   where the entry has them), then zoo:platonov_gat_sep and zoo:platonov_gt_sep.

Datasets run one after the other, every design of one before the next (``--order phased`` runs the
searches and the cheap designs of all three first); runs of different datasets may go side by side
(``--datasets actor`` in one shell, ``--datasets squirrel_filtered`` in another): each result is
merged into the file as it is written.

The Platonov entries' protocol (1000 epochs of a 10-layer width-512 model) is far too slow for
a shared 2-core CPU. For each of them a short probe (one split, ``--probe-epochs`` epochs)
measures the seconds per epoch, and the first of (splits, epochs) in ``PLATONOV_PLANS`` whose
estimate fits ``--platonov-budget-min`` minutes is run (the last one if none fits); the
result records the splits and epochs actually run.

Figures are test accuracy (at the epoch of best validation) mean ± std (sample std, as
``graphnas train`` prints) over the splits, and the validation mean. Every result is written
to the results JSON as soon as it is known, and a rerun skips what is already there
(an interrupted search is continued with ``--resume``). Commands run as
``nice python cli.py ...`` from the repository root with ``OMP_NUM_THREADS=1``.

    python benchmarks/heterophily.py                     # run what is missing, print the table
    python benchmarks/heterophily.py --table-only        # print the table of what is done
    python benchmarks/heterophily.py --markdown          # the table as markdown
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATASETS = ["chameleon_filtered", "squirrel_filtered", "actor"]
CHEAP = ["gcn", "gat", "luo_gcn", "luo_sage", "luo_gat"]
PLATONOV = ["platonov_gat_sep", "platonov_gt_sep"]
DESIGNS = ["search"] + CHEAP + PLATONOV
LABELS = {"search": "default search (best, retrained)", "gcn": "zoo GCN", "gat": "zoo GAT",
          "luo_gcn": "GCN tuned (Luo)", "luo_sage": "SAGE tuned (Luo)", "luo_gat": "GAT tuned (Luo)",
          "platonov_gat_sep": "GAT-sep (Platonov)", "platonov_gt_sep": "GT-sep (Platonov)"}
# The search's best is retrained under the protocol of the hand designs it is compared with (zoo:gcn,
# zoo:gat and Luo's entries: 200 epochs, the epoch of best validation, no early stopping), not the
# search's own selection budget (its export's recipe: patience 50), which would cut a deep design
# that still improves after epoch 150 (Luo's GCN on chameleon picks epochs 130-198).
COMMON_PROTOCOL = (200, 200)  # epochs, patience
# (splits, epochs), best first; the first whose estimate fits the budget is run, else the last.
PLATONOV_PLANS = [(10, 1000), (5, 1000), (3, 1000), (10, 300), (5, 300), (3, 300), (2, 300),
                  (1, 300), (1, 100)]


def log(msg: str) -> None:
    print(f"[{datetime.now().strftime('%H:%M:%S')}] {msg}", flush=True)


def load(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


def save(path: Path, results: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(results, indent=1, sort_keys=True))
    tmp.replace(path)


def git_head() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True, check=True).stdout.strip()
    except Exception:  # noqa: BLE001
        return "unknown"


class CommandFailed(RuntimeError):
    pass


def cli(args: list[str], logfile: Path) -> float:
    """``nice python cli.py ARGS`` from the repository root, output appended to LOGFILE.
    Returns the wall seconds; raises CommandFailed with the last lines of output."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    cmd = ["nice", sys.executable, "cli.py", *args]
    log("$ " + " ".join(cmd[1:]))
    logfile.parent.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    with logfile.open("a") as fh:
        fh.write(f"\n### {datetime.now().isoformat()} $ {' '.join(cmd)}\n")
        fh.flush()
        proc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT)
    wall = time.monotonic() - start
    if proc.returncode != 0:
        tail = logfile.read_text().splitlines()[-25:]
        raise CommandFailed(f"exit {proc.returncode}: {' '.join(cmd[1:])}\n" + "\n".join(tail))
    return wall


def split_figures(out: Path, splits: int, first: int = 0) -> dict:
    """Mean ± std over the splits of ``graphnas train -o OUT --split FIRST --splits N --seeds 1``
    (OUT/splitK/figures.json for K = FIRST..FIRST+N-1; with one split, OUT/figures.json)."""
    per = []
    for k in range(first, first + splits):
        f = out / f"split{k}" / "figures.json"
        if not f.exists() and splits == 1:
            f = out / "figures.json"
        d = json.loads(f.read_text())
        per.append({"split": k, "val": d["val_metric"]["mean"], "test": d["test_metric"]["mean"],
                    "params": d["params"]["mean"], "flops": d["flops"]["mean"],
                    "train_time_s": d["train_time_s"]["mean"],
                    "best_epoch": d["per_seed"][0].get("best_epoch"), "epochs": d["per_seed"][0].get("epochs")})
    return summarise(per)


def summarise(per: list[dict]) -> dict:
    tests = [p["test"] * 100 for p in per]
    vals = [p["val"] * 100 for p in per]
    sd = (lambda xs: statistics.stdev(xs) if len(xs) > 1 else 0.0)
    return {"test_mean": statistics.mean(tests), "test_std": sd(tests), "val_mean": statistics.mean(vals),
            "val_std": sd(vals), "splits_run": len(per), "per_split": per}


def train(arch: str, dataset: str, out: Path, splits: int, data_root: str, logfile: Path,
          epochs: int | None = None, patience: int | None = None, first: int = 0) -> tuple[dict, float, list[str]]:
    args = ["train", arch, "--dataset", dataset, "--data-root", data_root, "--splits", str(splits),
            "--seeds", "1", "-o", str(out), "--overwrite"]
    if first:
        args += ["--split", str(first)]
    if epochs is not None:
        args += ["--epochs", str(epochs)]
    if patience is not None:
        args += ["--patience", str(patience)]
    wall = cli(args, logfile)
    return split_figures(out, splits, first), wall, args


def salvaged(out: Path, have: set[int]) -> list[dict]:
    """The finished splits (not in ``have``) that interrupted runs of this design left in their
    staging folders (``graphnas train -o`` writes into ``.OUT*.partial-PID`` and renames it
    into place only at the end): every split's run is seeded and independent of the others, so
    a finished split's figures are those a complete run gives."""
    found: dict[int, dict] = {}
    for staging in sorted(out.parent.glob(f".{out.name}*.partial-*")):
        for figures in staging.glob("split*/figures.json"):
            k = int(figures.parent.name[len("split"):])
            if k not in have and k not in found:
                found[k] = split_figures(figures.parent.parent, 1, k)["per_split"][0] | {"salvaged_from": staging.name}
    return [found[k] for k in sorted(found)]


def extend(entry: dict, arch: str, dataset: str, out: Path, splits: int, data_root: str, logfile: Path,
           epochs: int | None = None, patience: int | None = None) -> dict:
    """ENTRY (a result over some splits) carried on to splits 0..SPLITS-1: splits an interrupted
    run finished are taken from its staging folder (:func:`salvaged`), the others are trained,
    each contiguous range into OUT-fromK. Each split's run is seeded and independent of the
    others, so the figures are those a single ``--splits SPLITS`` run gives (checked: zoo:gcn on
    chameleon_filtered's split 2 alone gives split 2 of the 10-split run to the last digit)."""
    per = list(entry["per_split"])
    per += salvaged(out, {p["split"] for p in per})
    wall, commands = entry.get("wall_s", 0.0), list(entry.get("commands") or [entry["command"]])
    missing = [k for k in range(splits) if k not in {p["split"] for p in per}]
    while missing:
        first = missing[0]
        count = next((i for i, k in enumerate(missing) if k != first + i), len(missing))
        figs, took, args = train(arch, dataset, out.with_name(f"{out.name}-from{first}"), count, data_root,
                                 logfile, epochs, patience, first=first)
        per += figs["per_split"]
        wall, missing = wall + took, missing[count:]
        commands.append("graphnas " + " ".join(args))
    return {**entry, **summarise(sorted(per, key=lambda p: p["split"])), "wall_s": wall, "commands": commands}


def same_model(export: str, design_out: Path) -> bool:
    """True when the search's export is the model a hand design's run trained (the same arch id once
    the space it came from is set aside): the search picked that design's reference trial."""
    from graphnas.search_spaces.architecture import Architecture  # noqa: PLC0415
    arch_file = design_out / "split0" / "arch.json"
    if not arch_file.exists():
        return False
    ours, theirs = Architecture.load(export), Architecture.load(arch_file)
    return ours.model_copy(update={"space": theirs.space, "space_version": theirs.space_version}).arch_id == theirs.arch_id


def protocol(name: str) -> tuple[int, int]:
    from graphnas.search_spaces.zoo import zoo_entry  # noqa: PLC0415
    p = zoo_entry(name).protocol
    return p.epochs, p.patience


def published() -> dict:
    from graphnas.search_spaces.zoo import zoo_entry  # noqa: PLC0415
    pub = {}
    for name in CHEAP + PLATONOV:
        try:
            pub[name] = dict(zoo_entry(name).published or {})
        except Exception:  # noqa: BLE001
            pub[name] = {}
    return pub


def run_search(ds: str, runs: Path, data_root: str, logfile: Path) -> dict:
    run_dir = runs / f"{ds}-search"
    export = runs / f"{ds}-best.json"
    args = ["search", "--dataset", ds, "--split", "0", "--data-root", data_root, "--run-dir", str(run_dir),
            "--quiet", "--threads", "1", "--knowledge", "none"]
    if (run_dir / "study.db").exists():
        args.append("--resume")  # an interrupted search continues
    wall = cli(args, logfile)
    cli(["export", str(run_dir), "--best", "-o", str(export)], logfile)
    exp = json.loads(export.read_text())
    return {"search_wall_s": wall, "search_command": "graphnas " + " ".join(args), "export": str(export),
            "arch_id": exp.get("arch_id") or (exp.get("architecture") or {}).get("arch_id"),
            "search_figures": exp.get("figures") or exp.get("metrics"),
            "architecture": exp.get("architecture")}


def platonov_plan(name: str, ds: str, runs: Path, data_root: str, logfile: Path, probe_epochs: int,
                  budget_s: float, max_splits: int) -> dict:
    figs, wall, _ = train(f"zoo:{name}", ds, runs / f"{ds}-{name}-probe", 1, data_root, logfile, probe_epochs)
    per_epoch = figs["per_split"][0]["train_time_s"] / probe_epochs
    overhead = max(wall - figs["per_split"][0]["train_time_s"], 0.0)  # start-up, loading, latency
    plans = [(min(splits, max_splits), epochs) for splits, epochs in PLATONOV_PLANS]
    for splits, epochs in plans:
        estimate = splits * epochs * per_epoch + overhead
        if estimate <= budget_s:
            break
    return {"per_epoch_s": per_epoch, "probe_epochs": probe_epochs, "probe_wall_s": wall,
            "splits": splits, "epochs": epochs, "estimate_s": estimate, "budget_s": budget_s,
            "fits": estimate <= budget_s}


def run_all(opts) -> dict:
    path = Path(opts.results)
    results = load(path)
    runs = Path(opts.runs)
    logfile = runs / "commands.log"
    datasets = opts.datasets.split(",")
    pub = published()

    def store(ds: str, name: str, entry: dict) -> None:
        """Re-read the file and set one entry: runs of other datasets may write it meanwhile."""
        results.setdefault(ds, {})[name] = entry
        merged = load(path)
        merged.setdefault(ds, {})[name] = entry
        save(path, merged)

    def record(ds: str, name: str, entry: dict) -> None:
        entry.update(finished=datetime.now(timezone.utc).isoformat(timespec="seconds"), git=git_head())
        store(ds, name, entry)
        log(f"{ds} {name}: " + (f"test {entry['test_mean']:.2f} ± {entry['test_std']:.2f}, val {entry['val_mean']:.2f}"
                                 if "test_mean" in entry else f"FAILED: {entry.get('error', '')[:300]}"))

    def done(ds: str, name: str) -> bool:
        e = results.get(ds, {}).get(name)
        if not e:
            return False
        if "test_mean" not in e:
            return bool(e.get("error")) and not opts.retry_failed
        return name in PLATONOV or e["splits_run"] >= opts.splits  # fewer splits: carried on below

    def twin(ds: str, export: str) -> str | None:
        """The hand design whose finished run trained the search's best, under the same protocol."""
        for name in CHEAP:
            e = results.get(ds, {}).get(name)
            if (e and done(ds, name) and "test_mean" in e and protocol(name) == COMMON_PROTOCOL
                    and same_model(export, runs / f"{ds}-{name}")):
                return name
        return None

    def run_design(ds: str, name: str) -> dict:
        earlier = results.get(ds, {}).get(name)
        if name == "search":
            s = results.get(ds, {}).get("_search") or run_search(ds, runs, opts.data_root, logfile)
            store(ds, "_search", s)
            same = twin(ds, s["export"])
            if same:  # retraining it would repeat that run split for split (seeded): its figures are these
                e = results[ds][same]
                return {**summarise(e["per_split"]), "wall_s": 0.0, "same_model_as": f"zoo:{same}",
                        "command": f"the search's best is zoo:{same}'s model (same arch id, same protocol): "
                                   f"its run's figures ({e['command']})",
                        "epochs": "200, patience 200 (the zoo protocol)", "published": None}
            if earlier and "test_mean" in earlier:
                return extend(earlier, s["export"], ds, runs / f"{ds}-best-train", opts.splits, opts.data_root,
                              logfile, *COMMON_PROTOCOL)
            figs, wall, args = train(s["export"], ds, runs / f"{ds}-best-train", opts.splits,
                                     opts.data_root, logfile, *COMMON_PROTOCOL)
            return {**figs, "wall_s": wall, "command": "graphnas " + " ".join(args),
                    "epochs": "200, patience 200 (the zoo protocol)", "published": None}
        if name in PLATONOV:
            plan = platonov_plan(name, ds, runs, opts.data_root, logfile, opts.probe_epochs,
                                 opts.platonov_budget_min * 60, opts.splits)
            log(f"{ds} {name}: {plan['per_epoch_s']:.2f} s/epoch -> {plan['splits']} splits x "
                f"{plan['epochs']} epochs (estimate {plan['estimate_s'] / 60:.0f} min)")
            figs, wall, args = train(f"zoo:{name}", ds, runs / f"{ds}-{name}", plan["splits"],
                                     opts.data_root, logfile, plan["epochs"])
            return {**figs, "wall_s": wall, "command": "graphnas " + " ".join(args), "plan": plan,
                    "epochs": plan["epochs"], "published": pub.get(name, {}).get(ds)}
        if earlier and "test_mean" in earlier:
            return extend(earlier, f"zoo:{name}", ds, runs / f"{ds}-{name}", opts.splits, opts.data_root, logfile)
        figs, wall, args = train(f"zoo:{name}", ds, runs / f"{ds}-{name}", opts.splits, opts.data_root, logfile)
        return {**figs, "wall_s": wall, "command": "graphnas " + " ".join(args),
                "epochs": "zoo protocol", "published": pub.get(name, {}).get(ds)}

    # The search's retraining runs after the hand designs, so that a search whose best is one of
    # them (its reference trial) is recognised and not trained twice.
    run_order = CHEAP + ["search"]
    if opts.order == "dataset":  # every design of a dataset before the next dataset
        phases = [(ds, run_order + PLATONOV) for ds in datasets]
    else:  # the search and the cheap designs of every dataset first, then the slow Platonov designs
        phases = [(ds, run_order) for ds in datasets] + [(ds, PLATONOV) for ds in datasets]
    for ds, names in phases:
        for name in names:
            if opts.only and name not in opts.only.split(","):
                continue
            if done(ds, name):
                continue
            try:
                entry = run_design(ds, name)
            except CommandFailed as e:
                earlier = results.get(ds, {}).get(name)
                # a failed carry-on keeps the splits already measured
                entry = ({**earlier, "extend_error": str(e)} if earlier and "test_mean" in earlier
                         else {"error": str(e)})
            record(ds, name, entry)
    return results


def fmt_pub(name: str, ds: str, pub: dict) -> str:
    if name == "search":
        return "-"
    v = pub.get(name, {}).get(ds)
    if v is not None:
        return f"{v:.2f}"
    if name in PLATONOV:
        return "not found"
    if name.startswith("luo_") and ds == "actor":
        return "none (not in Luo)"
    return "none in zoo entry"


def table(results: dict, markdown: bool) -> str:
    pub = published()
    rows = []
    for ds in DATASETS:
        for name in DESIGNS:
            e = results.get(ds, {}).get(name)
            if e is None:
                acc, val, prot = "pending", "", ""
            elif "test_mean" not in e:
                acc, val, prot = "failed", "", e.get("error", "").splitlines()[0][:80]
            else:
                acc = f"{e['test_mean']:.2f} ± {e['test_std']:.2f}"
                val = f"{e['val_mean']:.2f}"
                prot = f"{e['splits_run']} splits"
                if name in PLATONOV:
                    prot += f", {e['epochs']} epochs"
                    if (e["splits_run"], e["epochs"]) != (10, 1000):
                        prot += " (reduced)"
            rows.append((ds, LABELS[name], acc, val, fmt_pub(name, ds, pub), prot))
    head = ("dataset", "design", "test acc (mean ± std)", "val mean", "published", "run")
    if markdown:
        out = ["| " + " | ".join(head) + " |", "|" + "---|" * 2 + "---:|" * 3 + "---|"]
        out += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(out)
    w = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    return "\n".join("  ".join(str(c).ljust(w[i]) for i, c in enumerate(r)) for r in [head, *rows])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", default="/work/shared/datasets")
    p.add_argument("--runs", default=str(ROOT / "runs" / "heterophily42"))
    p.add_argument("--results", default=str(ROOT / "benchmarks" / "results" / "heterophily.json"))
    p.add_argument("--datasets", default=",".join(DATASETS))
    p.add_argument("--only", default="", help="comma list of designs to run (search, gcn, ..., platonov_gt_sep)")
    p.add_argument("--splits", type=int, default=10)
    p.add_argument("--probe-epochs", type=int, default=5)
    p.add_argument("--platonov-budget-min", type=float, default=25.0)
    p.add_argument("--order", choices=["dataset", "phased"], default="dataset",
                   help="dataset: all designs of chameleon_filtered, then squirrel_filtered, then actor; "
                        "phased: searches and cheap designs of all datasets before the Platonov designs")
    p.add_argument("--retry-failed", action="store_true")
    p.add_argument("--table-only", action="store_true")
    p.add_argument("--markdown", action="store_true")
    opts = p.parse_args()
    results = load(Path(opts.results)) if opts.table_only else run_all(opts)
    print(table(results, opts.markdown))


if __name__ == "__main__":
    main()
