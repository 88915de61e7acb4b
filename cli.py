"""graphnas command line: parse, validate, call the packages, print.

    graphnas search [--space tiny] [--dataset synthetic] [--trials 20] ...
    graphnas export RUN_DIR [--trial N | --best | --pareto K] -o arch.json
    graphnas train arch.json [--dataset NAME] [--seeds 5] [-o DIR] [--format pt2|onnx]
    graphnas report RUN_DIR [--json] | graphnas compare RUN_A RUN_B ... [-o compare.html]
    graphnas ops [--json]
    graphnas spaces [--json] | graphnas spaces validate FILE
"""
from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Optional

import typer
import typer.core
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from typer.core import TyperGroup

from graphnas.settings_help import about

# typer vendors its own click: its usage errors are not click's, and only BadParameter is public
_UsageError = typer.BadParameter.__bases__[0]


class _OneLineUsageError(_UsageError):
    """A usage error as one line, as every other error of graphnas (click prints the usage,
    a hint and the error on four)."""

    def show(self, file=None) -> None:
        err_console.print(f"[bold red]error:[/] {self.format_message()}", highlight=False, markup=True,
                          soft_wrap=True)


# typer words a range check as pydantic does ("Input should be greater than or equal to 1")
_RANGE_WORDS = (("Input should be greater than or equal to", "must be at least"),
                ("Input should be less than or equal to", "must be at most"),
                ("Input should be greater than", "must be more than"), ("Input should be less than", "must be less than"))


# search's options whose defaults are the settings models' own: (section, field). The help
# says them, read from the models when the command is resolved (so `graphnas --help` and
# the light commands never import the engine), never written out twice.
MODEL_DEFAULTS = {
    "dataset": ("search", "dataset"), "objectives": ("search", "objectives"), "trials": ("search", "trials"),
    "seed": ("search", "seed"), "backend": ("search", "backend"), "cpus_per_trial": ("search", "cpus_per_trial"),
    "gpus_per_trial": ("search", "gpus_per_trial"), "evaluator": ("search", "evaluator"),
    "pruner": ("search", "pruner"), "workers": ("search", "workers"), "protocol": ("search", "protocol"),
    "epochs": ("train", "epochs"), "patience": ("train", "patience"), "folds": ("train", "folds"),
    "sample_above_nodes": ("train", "sample_above_nodes"), "fanouts": ("train", "fanouts"),
    "node_batch_size": ("train", "node_batch_size"), "device": ("train", "device"),
    "cost_weights": ("darts", "cost_weights"), "darts_epochs": ("darts", "epochs"), "alpha_lr": ("darts", "alpha_lr"),
    "top_k": ("darts", "top_k"),
}


def _model_default(section: str, name: str) -> str:
    from graphnas.evaluators import TrainConfig
    from graphnas.nas import SearchConfig
    from graphnas.nas.darts import DartsConfig

    field = {"search": SearchConfig, "train": TrainConfig, "darts": DartsConfig}[section].model_fields[name]
    value = field.get_default(call_default_factory=True)
    if isinstance(value, (list, tuple)):
        return ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value)
    return f"{value:g}" if isinstance(value, float) else str(value)


class _Commands(TyperGroup):
    def resolve_command(self, ctx, args):
        name, command, rest = super().resolve_command(ctx, args)
        if name == "search" and command is not None and not getattr(command, "_defaults_said", False):
            for param in command.params:
                if param.name in MODEL_DEFAULTS:
                    param.help = f"{param.help.rstrip('.')} [default: {_model_default(*MODEL_DEFAULTS[param.name])}]."
            command._defaults_said = True
        return name, command, rest

    def invoke(self, ctx: typer.Context):
        try:
            return super().invoke(ctx)
        except typer.BadParameter as err:
            if not err.message:  # a missing argument: click's own sentence says which
                raise _OneLineUsageError(err.format_message(), err.ctx) from None
            message = err.message
            for theirs, ours in _RANGE_WORDS:
                message = message.replace(theirs, ours)
            name = err.param.opts[0] if err.param is not None and err.param.opts else (err.param_hint or "argument")
            raise _OneLineUsageError(f"{name} {message}" if message.startswith("must") else f"{name}: {message}",
                                     err.ctx) from None
        except _UsageError as err:
            if isinstance(err, _OneLineUsageError):
                raise
            raise _OneLineUsageError(f"{err.format_message()} (see {err.ctx.command_path if err.ctx else 'graphnas'} "
                                     "--help)", err.ctx) from None


# search --help in sections: 45 options in one list hid the few a new user needs
SEARCH_OPTION_GROUPS = {
    "Data": ("dataset", "dataset_arg", "task", "split", "folds", "data_root", "cache_dir", "allow_dataset_class"),
    "Space": ("space", "reference"),
    "Strategy": ("strategy", "objectives", "trials", "seed", "knowledge", "cost_weights", "darts_epochs", "alpha_lr",
                 "second_order", "top_k", "keep_none", "fix"),
    "Training": ("epochs", "patience", "metric", "pruner", "evaluator", "confirm", "confirm_folds",
                 "confirm_neighbours", "protocol", "sample_above_nodes", "fanouts", "node_batch_size"),
    "Resources": ("timeout", "trial_timeout", "device", "threads", "workers", "backend", "address", "cpus_per_trial",
                  "gpus_per_trial"),
    "Storage": ("run_dir", "storage", "resume", "config_file", "quiet"),
}
SEARCH_EXAMPLES = """Examples:

\b
  graphnas search                                         # the demo: embedded data, its task's space, 20 trials
  graphnas search --dataset graph.pt --metric roc_auc     # your graph: its task is inferred from the file
  graphnas search --dataset cora --strategy tpe --trials 50 --timeout 3600 --run-dir runs/cora"""


class _GroupedOptions(typer.core.TyperCommand):
    """click's plain help with the options in sections (SEARCH_OPTION_GROUPS) instead of one list."""

    def format_options(self, ctx, formatter) -> None:
        group_of = {name: title for title, names in SEARCH_OPTION_GROUPS.items() for name in names}
        sections: dict[str, list] = {}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is not None:
                sections.setdefault(group_of.get(param.name, "Other"), []).append(record)
        for title in [*SEARCH_OPTION_GROUPS, "Other"]:
            if sections.get(title):
                with formatter.section(f"{title} options"):
                    formatter.write_dl(sections[title])


app = typer.Typer(cls=_Commands, add_completion=False, no_args_is_help=True, rich_markup_mode=None,
                  help="Architecture search for graph neural networks and graph transformers.")
LIBRARY_LOGGERS = ("graphnas",)  # every module logs under it: graphnas.nas.search, graphnas.evaluators.datasets, ...


@app.callback()
def _global_options(verbose: int = typer.Option(0, "--verbose", "-v", count=True,
                                                help="Log what the engine does to stderr: -v info, -vv debug "
                                                     "(and the warnings known to be noise).")) -> None:
    _configure_logging(verbose)


def _configure_logging(verbose: int) -> None:
    """The library packages log through ``logging`` (``graphnas.nas.search``, ``graphnas.evaluators.datasets``, ...);
    warnings and errors are shown by default, more with ``-v``."""
    from rich.logging import RichHandler

    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    handler = RichHandler(console=err_console, show_path=verbose > 1, show_time=verbose > 1, markup=False)
    for name in LIBRARY_LOGGERS:
        logger = logging.getLogger(name)
        logger.setLevel(level)
        logger.handlers[:] = [handler]
        logger.propagate = False
spaces_app = typer.Typer(rich_markup_mode=None, help="List the preset search spaces, or validate a space file.")
app.add_typer(spaces_app, name="spaces")
console = Console()
err_console = Console(stderr=True)


def _fail(message: str) -> None:
    # escaped: a message naming an extra ('graphnas[bench]') or a list would lose its brackets as markup
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, markup=True, soft_wrap=True)
    raise typer.Exit(code=2)


@app.command(cls=_GroupedOptions, epilog=SEARCH_EXAMPLES)
def search(
    space: Optional[str] = typer.Option(None, help=about("space")),
    dataset: Optional[str] = typer.Option(None, help=about("dataset")),
    dataset_arg: Optional[list[str]] = typer.Option(None, help="KEY=VALUE keyword argument of a dataset class "
                                                    "(repeatable), e.g. --dataset-arg name=MUTAG."),
    task: Optional[str] = typer.Option(None, help=about("task")),
    strategy: Optional[str] = typer.Option(None, help=about("strategy")),
    objectives: Optional[str] = typer.Option(None, help=about("objectives")),
    trials: Optional[int] = typer.Option(None, min=1, help=about("trials")),
    timeout: Optional[float] = typer.Option(None, help=about("timeout")),
    trial_timeout: Optional[float] = typer.Option(None, help=about("train.trial_timeout")),
    epochs: Optional[int] = typer.Option(None, min=1, help=about("train.epochs")),
    patience: Optional[int] = typer.Option(None, min=1, help=about("train.patience")),
    folds: Optional[int] = typer.Option(None, min=1, help=about("train.folds")),
    split: Optional[int] = typer.Option(None, min=0, help=about("train.split")),
    sample_above_nodes: Optional[int] = typer.Option(None, min=1, help=about("train.sample_above_nodes")),
    fanouts: Optional[str] = typer.Option(None, help=about("train.fanouts")),
    node_batch_size: Optional[int] = typer.Option(None, min=1, help=about("train.node_batch_size")),
    seed: Optional[int] = typer.Option(None, help=about("seed")),
    metric: Optional[str] = typer.Option(None, help=about("train.metric")),
    device: Optional[str] = typer.Option(None, help=about("train.device")),
    run_dir: Optional[Path] = typer.Option(None, help=about("run_dir")),
    storage: Optional[str] = typer.Option(None, help=about("storage")),
    resume: bool = typer.Option(False, help="Continue the run in --run-dir from its storage."),
    backend: Optional[str] = typer.Option(None, help=about("backend")),
    address: Optional[str] = typer.Option(None, help=about("ray_address")),
    cpus_per_trial: Optional[float] = typer.Option(None, help=about("cpus_per_trial")),
    gpus_per_trial: Optional[float] = typer.Option(None, help=about("gpus_per_trial")),
    evaluator: Optional[str] = typer.Option(None, help=about("evaluator")),
    pruner: Optional[str] = typer.Option(None, help=about("pruner")),
    workers: Optional[int] = typer.Option(None, min=1, help=about("workers")),
    threads: Optional[int] = typer.Option(None, min=1, help=about("threads")),
    data_root: Optional[Path] = typer.Option(None, help=about("data_root")),
    cache_dir: Optional[Path] = typer.Option(None, help=about("cache_dir")),
    cost_weights: Optional[str] = typer.Option(None, help=about("darts.cost_weights")),
    darts_epochs: Optional[int] = typer.Option(None, min=1, help=about("darts.epochs")),
    alpha_lr: Optional[float] = typer.Option(None, help=about("darts.alpha_lr")),
    second_order: Optional[bool] = typer.Option(None, "--second-order/--first-order",
                                                help=about("darts.second_order")),
    top_k: Optional[int] = typer.Option(None, help=about("darts.top_k")),
    keep_none: Optional[bool] = typer.Option(None, "--keep-none/--skip-none",
                                             help=about("darts.keep_none")),
    fix: Optional[list[str]] = typer.Option(None, help="darts/gdas: fix a choice DARTS does not search, "
                                            "FIELD=VALUE or layerI.FIELD=VALUE (repeatable) "
                                            "[default: first category, middle of a range]."),
    reference: Optional[str] = typer.Option(None, help=about("references")),
    confirm: Optional[int] = typer.Option(None, min=0, help=about("confirm")),
    confirm_folds: Optional[int] = typer.Option(None, min=0, help=about("confirm_folds")),
    confirm_neighbours: Optional[int] = typer.Option(None, min=0, help=about("confirm_neighbours")),
    protocol: Optional[str] = typer.Option(None, help=about("protocol")),
    knowledge: Optional[str] = typer.Option(None, help=about("knowledge")),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar and no table."),
    allow_dataset_class: bool = typer.Option(False, "--allow-dataset-class", help="Trust a dataset class by dotted "
                                             "path named in --config or in a resumed run's config.yaml (it imports "
                                             "and runs code) [default: refused; --dataset on the command line is "
                                             "always allowed]."),
    config_file: Optional[Path] = typer.Option(None, "--config", help="A run's settings as YAML, the schema of a "
                                               "run directory's config.yaml (so a run can be replayed); options "
                                               "given here override it."),
) -> None:
    """Search a space on a dataset; write trials, the Pareto front and the best architecture."""
    from pydantic import ValidationError

    from graphnas.evaluators import DatasetError
    from graphnas.evaluators.external import check_dataset_origin
    from graphnas.nas import Search, SearchConfig
    from graphnas.nas.assessment import ASSESSMENT_FILE, Assessment
    from graphnas.nas.search import RUN_FACTS
    from graphnas.results.report import results_table
    from graphnas.results.store import RunStore, RunDirectoryError
    from graphnas.search_spaces import SpaceError
    from graphnas.search_spaces.registry import UnknownNameError

    given = {k: v for k, v in dict(space=space, dataset=dataset, strategy=strategy, objectives=objectives,
                                     trials=trials, timeout=timeout, seed=seed, storage=storage, workers=workers,
                                     threads=threads,
                                     pruner=pruner, evaluator=evaluator, backend=backend, ray_address=address,
                                     cpus_per_trial=cpus_per_trial, gpus_per_trial=gpus_per_trial,
                                     dataset_args=dataset_arg, task=task, protocol=protocol, confirm=confirm, confirm_folds=confirm_folds,
                                     confirm_neighbours=confirm_neighbours, knowledge=knowledge,
                                     data_root=str(data_root) if data_root else None,
                                     cache_dir=str(cache_dir) if cache_dir else None).items() if v is not None}
    train = {k: v for k, v in dict(epochs=epochs, patience=patience, seed=seed, metric=metric,
                                     trial_timeout=trial_timeout, device=device, folds=folds, sample_above_nodes=sample_above_nodes,
                                     node_batch_size=node_batch_size, split=split).items() if v is not None}
    try:
        if fanouts is not None:
            train["fanouts"] = _int_list(fanouts, "--fanouts")
        darts = _darts_options(cost_weights, darts_epochs, alpha_lr, second_order, top_k, keep_none, fix)
        if reference is not None:
            given["references"] = [] if reference == "none" else [r.strip() for r in reference.split(",") if r.strip()]
        if "dataset_args" in given:
            given["dataset_args"] = _key_values(given["dataset_args"], "--dataset-arg")
        if resume and config_file is not None:
            _fail("--config and --resume: a resumed run reads its own config.yaml")
        if resume:
            if run_dir is None:
                _fail("--resume needs --run-dir DIR")
            assessment = run_dir / ASSESSMENT_FILE
            stored = Assessment.read_config(assessment) if assessment.is_file() else RunStore(run_dir, storage).read_config()
        else:
            stored = _run_settings(config_file) if config_file is not None else {}
            if stored.get("evaluator", evaluator or "train") != "train" and "objectives" not in {**stored, **given}:
                given["objectives"] = "metric,latency"  # tables have latency and params, no FLOPs
        for key in RUN_FACTS:
            stored.pop(key, None)
        stored["train"] = {**stored.get("train", {}), **train}
        stored["darts"] = {**stored.get("darts", {}), **darts}
        chosen_dir = str(run_dir) if run_dir else stored.get("run_dir")
        config = SearchConfig.model_validate({**stored, **given, "run_dir": chosen_dir})
        # a dotted path read from a file is that file's code: run only on opt-in (issue 43)
        origin = None if "dataset" in given else (f"--config {config_file}" if config_file is not None
                                                  else f"{run_dir / 'config.yaml'}" if resume else None)
        check_dataset_origin(config.dataset, origin, allow_dataset_class)
        if config.protocol == "errica":
            _assess(config, resume, quiet)
            return
        runner = Search(config, resume=resume)
    except ValidationError as err:
        _fail(_settings_error(err, config_file))
        return
    except (SpaceError, DatasetError, UnknownNameError, FileNotFoundError, ValueError) as err:
        _fail(str(err))
        return

    try:
        features = getattr(getattr(runner.prepare(), "info", None), "node_features", None)
    except (DatasetError, FileNotFoundError, ValueError) as err:  # before the banner: one line
        runner.abandon()
        _fail(str(err))
        return
    if not quiet:
        if features:
            console.print(f"node features: {features}", highlight=False)
        if runner.task is not None and not runner.task.how.startswith("declared"):  # a file's or class's task
            console.print(f"task: {runner.task.task} ({runner.task.how})", highlight=False)
        if not resume and not runner.differentiable:
            console.print(_trial_sources_line(runner), highlight=False)
        from graphnas.nas.search import available_cores

        if config.threads is None and config.workers * runner.config.threads < available_cores():
            console.print(f"{runner.config.threads} torch thread per trial, {config.workers} worker(s) on "
                          f"{available_cores()} cores: --workers {available_cores()} runs trials side by side",
                          highlight=False)
        bundle = getattr(runner.prepare(), "bundle", None)
        if bundle is not None and "auto" in runner.space.spec.global_.feature_norm.values():
            from graphnas.evaluators.datasets import auto_feature_norm

            chosen = auto_feature_norm(bundle)
            console.print(f"feature_norm auto: {chosen} for these features ("
                          + ("non-negative integers: bag-of-words counts" if chosen == "row" else
                             "signed or real values: row normalisation would distort them") + ")", highlight=False)
        console.print(f"[bold]graphnas search[/]: space [cyan]{runner.space.name}[/] "
                      f"({runner.space.size():,} architectures), dataset [cyan]{config.dataset}[/], "
                      f"strategy {config.strategy}, objectives {config.objectives}, run dir {runner.run_dir}")
    try:
        from graphnas.nas.noise import known_noise_silenced

        with known_noise_silenced():
            study = _run_with_progress(runner, config.budget, quiet)
    except (SpaceError, DatasetError, UnknownNameError, ValueError) as err:
        runner.abandon()
        _fail(str(err))
        return
    except RunDirectoryError as err:  # the engine could not write its run directory: it stopped
        err_console.print(f"[bold red]error:[/] {escape(str(err))}", highlight=False, markup=True, soft_wrap=True)
        raise typer.Exit(code=1)
    except KeyboardInterrupt:  # Ctrl-C: the workers stopped with this process; one line, the shell's 130
        err_console.print(f"interrupted; continue with: graphnas search --resume --run-dir {runner.run_dir}",
                          highlight=False, markup=False, soft_wrap=True)
        raise typer.Exit(code=130)
    outputs = runner.store.outputs(study)  # the run has written its files already
    if outputs.best is None:
        _fail_no_trial(outputs.frame, runner.run_dir)
    if not quiet:
        metric_name = study.user_attrs.get("metric", "metric")
        console.print(results_table(outputs.frame, outputs.front, metric_name))
        console.print(f"Pareto front: {len(outputs.front)} trials. Files in [bold]{runner.run_dir}[/]: "
                      "trials.csv, pareto.json, pareto.png, best_arch.json, summary.md")


def _trial_sources_line(runner) -> str:
    """Where the run's trials will come from, named: the user sees what steers the search."""
    counts = runner.trial_sources(runner.prepare())
    parts = [f"{counts['references']} reference design(s) ({', '.join(e.ref for e in runner.references[:counts['references']])})"
             if counts["references"] else "no reference design"]
    if counts["knowledge"]:
        sources = ", ".join(f"{r['name']} ({r['dataset']}, distance {r['distance']:.2f})" for r in runner.transfer.record)
        parts.append(f"{counts['knowledge']} from the knowledge store {runner.knowledge.url}, from earlier searches "
                     f"{sources} (--knowledge none turns this off)")
    parts.append(f"{counts['strategy']} proposed by strategy {runner.config.strategy}")
    return "trials: " + "; ".join(parts)


def _figure(field: str, value: float) -> str:
    """A figure as a person reads it: counts whole (501,439,080 FLOPs), metrics to 4 places,
    times to 2."""
    if field in ("flops", "params"):
        return f"{value:,.0f}"
    return f"{value:,.2f}" if field.endswith(("_ms", "_s")) else f"{value:.4f}"


def _fail_no_trial(frame, run_dir: Path) -> None:
    """Every trial failed (or none ran): say why, grouped by error, and exit 1."""
    errors = frame["error"].fillna("").replace("", "interrupted: its process ended mid-trial") if len(frame) else []
    err_console.print(f"[bold red]error:[/] no trial completed in {run_dir}; nothing to select "
                      f"(no best_arch.json). {len(frame)} trial(s):", highlight=False)
    for message, count in (errors.value_counts().items() if len(frame) else []):
        err_console.print(f"  {count} x {message}", highlight=False, markup=False, soft_wrap=True)
    raise typer.Exit(code=1)


def _assess(config, resume: bool, quiet: bool) -> None:
    """Errica et al.'s protocol: a search per outer fold, then the table of folds."""
    from graphnas.nas.assessment import assess

    config = config.model_copy(update={"run_dir": str(config.resolved_run_dir())})  # one time stamp
    total = config.train.folds
    if not quiet:
        console.print(f"[bold]graphnas search[/] --protocol errica: {total} outer folds, a {config.trials}-trial "
                      f"search inside each, its best retrained 3 times; dataset [cyan]{config.dataset}[/]")

    def observer_for(fold: int):
        if quiet:
            return None
        return lambda p: console.print(f"fold {fold + 1}/{total}: trial {p.done}/{p.total} {p.last_state}, "
                                       f"best validation {p.best_value if p.best_value is not None else '-'}",
                                       highlight=False)

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    from graphnas.nas.noise import known_noise_silenced

    with known_noise_silenced():
        result = assess(config, resume=resume, observer_for=observer_for)
    table = Table(title=f"Errica et al.'s protocol on {config.dataset}: test of each fold's selected architecture")
    for col in ("fold", "trial", "architecture", "val", "test (mean of 3)", "FLOPs"):
        table.add_column(col, justify="left" if col == "architecture" else "right")
    for f in result.folds:
        table.add_row(str(f.fold), str(f.trial), f.reference or f.arch_id, f"{f.val_metric:.4f}",
                      f"{f.test_mean:.4f}", f"{f.flops:,}")
    mean, std = result.stat()
    console.print(table)
    console.print(f"test over {len(result.folds)} folds: {mean:.4f} ± {std:.4f}. Each fold's search is in "
                  f"{config.resolved_run_dir()}/fold_K; the figures in assessment.json")


def _settings_error(err, config_file: Optional[Path]) -> str:
    """A pydantic error of the run's settings in one line: each field and what was wrong."""
    from graphnas.search_spaces.schema import format_loc

    where = f"--config {config_file}: " if config_file else ""
    problems = []
    for e in err.errors():
        field = format_loc(e["loc"]) or "settings"
        msg = "unknown setting" if e["type"] == "extra_forbidden" else e["msg"].removeprefix("Value error, ")
        problems.append(f"{field}: {msg}")
    return where + "; ".join(problems)


def _run_settings(path: Path) -> dict:
    """The settings in a ``--config`` file. A run directory's config.yaml also names that run
    (``run_dir``, ``study_name``) and records what it found (the space's content, the node
    features): a replay is a new run, so those are left out."""
    import yaml

    from graphnas.nas.search import RUN_FACTS

    try:
        settings = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        _fail(f"--config {path}: no such file")
    except yaml.YAMLError as err:
        _fail(f"--config {path}: not valid YAML ({str(err).splitlines()[0]})")
    if not isinstance(settings, dict):
        _fail(f"--config {path}: expected a mapping of settings (as in a run directory's config.yaml), "
              f"got {type(settings).__name__}")
    if any(key in settings for key in RUN_FACTS):
        for key in ("run_dir", "study_name"):
            settings.pop(key, None)
    return settings


def _darts_options(cost_weights, epochs, alpha_lr, second_order, top_k, keep_none, fix) -> dict:
    """The differentiable-search options given on the command line, as DartsConfig fields."""
    out = {k: v for k, v in dict(epochs=epochs, alpha_lr=alpha_lr, second_order=second_order, top_k=top_k,
                                 keep_none=keep_none).items() if v is not None}
    if cost_weights is not None:
        try:
            out["cost_weights"] = tuple(float(w) for w in cost_weights.split(","))
        except ValueError:
            raise ValueError(f"--cost-weights: expected comma-separated numbers, got {cost_weights!r}") from None
    if fix:
        out["fix"] = _key_values(fix, "--fix")
    return out


def _int_list(text: str, option: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise ValueError(f"{option}: expected comma-separated integers, got {text!r}") from None


def _key_values(items: list[str], option: str) -> dict:
    """``["a=1", "b=x"]`` -> ``{"a": 1, "b": "x"}`` (values read as YAML scalars)."""
    import yaml

    pairs = [item.partition("=") for item in items]
    bad = [item for item, (k, eq, v) in zip(items, pairs) if not (k and eq and v)]
    if bad:
        raise ValueError(f"{option}: expected KEY=VALUE, got {bad[0]!r}")
    return {k.strip(): yaml.safe_load(v) for k, _, v in pairs}


def _run_with_progress(runner, total: int, quiet: bool):
    from graphnas.api import run_with_progress  # the Python API's, one source for both

    return run_with_progress(runner, total, quiet, console)


@app.command()
def export(
    run_dir: Path = typer.Argument(..., help="A run directory written by graphnas search."),
    trial: Optional[int] = typer.Option(None, help="Export this trial number."),
    best: bool = typer.Option(False, "--best", help="Export the best trial by validation metric (the default)."),
    pareto: Optional[int] = typer.Option(None, help="Export the K-th trial of the Pareto front (0 = fewest FLOPs)."),
    output: Path = typer.Option(Path("arch.json"), "-o", "--output", help="Where to write the export file."),
) -> None:
    """Write one trial's architecture with what rebuilding the exact model needs."""
    from graphnas.results.export import ExportError, export_record, write_export
    from graphnas.results.store import RunDirectoryError

    if sum([trial is not None, pareto is not None, best]) > 1:
        _fail("give at most one of --trial, --best, --pareto")
    try:
        record = export_record(run_dir, trial=trial, pareto=pareto)
    except (ExportError, FileNotFoundError, KeyError, RunDirectoryError, ValueError) as err:
        _fail(str(err))
        return
    write_export(record, output)
    figures = record["figures"]
    console.print(f"trial {record['run']['trial']} -> {output}: validation {figures.get('metric')} "
                  f"{figures.get('val_metric', float('nan')):.4f}, {figures.get('flops', 0):,} FLOPs")


@app.command()
def train(
    arch_file: Path = typer.Argument(..., help="An export file (graphnas export), architecture JSON, or zoo:NAME."),
    dataset: Optional[str] = typer.Option(None, help="Dataset name [default: the one the architecture was found on]."),
    seeds: int = typer.Option(5, min=1, help="Retrain with this many seeds."),
    epochs: Optional[int] = typer.Option(None, min=1, help="Maximum epochs [default: the zoo entry's protocol, else 200]."),
    patience: Optional[int] = typer.Option(None, min=1, help="Early-stopping patience [default: the zoo protocol's, else 50]."),
    folds: Optional[int] = typer.Option(None, min=1, help="Stratified K-fold CV of a graph dataset: mean ± std over "
                                        "folds [default: the zoo protocol's, else 1]."),
    split: int = typer.Option(0, min=0, help="The dataset's fixed split to train on (the heterophily graphs have 10)."),
    splits: int = typer.Option(1, min=1, help="Train on N fixed splits from --split on: mean ± std over splits and "
                                          "seeds (--splits 10 for the heterophily graphs)."),
    seed: int = typer.Option(0, help="First seed."),
    device: str = typer.Option("auto", help="auto | cpu | cuda | cuda:N."),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="Directory for weights and figures, "
                                          "written whole: into a new directory beside it, renamed into place at "
                                          "the end."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace what -o DIR holds [default: refuse a "
                                   "DIR that holds files]."),
    fmt: Optional[str] = typer.Option(None, "--format", help="Also export the first seed's model: pt2 | onnx."),
    data_root: Optional[Path] = typer.Option(None, help="Dataset root [default: $GRAPHNAS_DATA or the cache]."),
    cache_dir: Optional[Path] = typer.Option(None, help="Cache for processed data and encodings."),
) -> None:
    """Retrain an architecture from scratch over several seeds; report mean and std."""
    from graphnas.api import train as train_design
    from graphnas.evaluators import DatasetError
    from graphnas.results.export import ExportError

    given = {k: v for k, v in {"epochs": epochs, "patience": patience, "folds": folds}.items() if v is not None}
    try:
        report = train_design(str(arch_file), dataset, seeds, splits=splits, output=output, overwrite=overwrite,
                              fmt=fmt, data_root=data_root, cache_dir=cache_dir, seed=seed, device=device, split=split,
                              **given)
    except (ExportError, DatasetError, ValueError) as err:
        _fail(str(err))
        return
    over = f"{seeds} seeds" + (f" x {report.folds} folds" if report.folds > 1 else "") + \
        (f" x {splits} splits" if splits > 1 else "")
    table = Table(title=f"{report.design} on {report.dataset}, {over} (mean ± std)")
    for col in ("figure", "mean", "std"):
        table.add_column(col, justify="left" if col == "figure" else "right")
    for field in ("val_metric", "test_metric", "flops", "params", "latency_ms", "train_time_s"):
        mean, std = report.stat(field)
        table.add_row(field, *(_figure(field, v) for v in (mean, std)))
    console.print(table)
    if output is not None:
        console.print(f"weights seed*.pt, figures.json and arch.json in {output}"
                      + (f"; model.{fmt}: {report.note}" if fmt else ""))


@app.command()
def report(
    run_dir: Path = typer.Argument(..., help="A run directory (finished or still going)."),
    as_json: bool = typer.Option(False, "--json", help="Print the figures as JSON instead of a table."),
) -> None:
    """Top trials and Pareto front in the terminal; writes RUN_DIR/report.html."""
    from graphnas.results.html import LoadedRun, write_report
    from graphnas.results.report import pareto_table, results_table
    from graphnas.results.store import RunDirectoryError

    try:
        run = LoadedRun.open(run_dir)
    except (FileNotFoundError, KeyError, RunDirectoryError, ValueError) as err:  # ValueError: a damaged run file
        _fail(str(err))
        return
    try:
        figures = write_report(run, run_dir / "report.html")
    except OSError as err:
        _fail(f"{run_dir / 'report.html'}: cannot write the report ({err.strerror or err}); copy the run directory "
              "somewhere writable and report on the copy")
        return
    if as_json:
        typer.echo(json.dumps(figures, indent=2, default=str))
        return
    console.print(results_table(run.frame, run.front, run.metric))
    console.print(pareto_table(run.front, run.metric))
    if figures.get("knowledge"):
        console.print("started from the knowledge of: " + _sources_line(figures["knowledge"]), highlight=False)
    console.print(f"hypervolume {figures['hypervolume']:.4f}; report: {run_dir / 'report.html'}")


def _sources_line(record: list[dict]) -> str:
    return ", ".join(f"{r['name']} ({r['dataset']}, distance {r['distance']:.2f})" for r in record)


@app.command()
def compare(
    run_dirs: list[Path] = typer.Argument(..., help="Two or more run directories."),
    output: Path = typer.Option(Path("compare.html"), "-o", "--output", help="Where to write the page."),
    as_json: bool = typer.Option(False, "--json", help="Print the rows as JSON."),
    allow_mixed: bool = typer.Option(False, "--allow-mixed", help="Compare runs on different datasets or metrics."),
) -> None:
    """One row per run (best, FLOPs, hypervolume at a common reference, time to 99%), and
    overlaid Pareto fronts and best-so-far curves in an HTML page."""
    from dataclasses import asdict

    from graphnas.results.html import CompareError, compare_runs, settings_differences, write_compare
    from graphnas.results.store import RunDirectoryError

    try:
        runs, ref = compare_runs(run_dirs, allow_mixed)
    except (CompareError, FileNotFoundError, KeyError, RunDirectoryError, ValueError) as err:
        _fail(str(err))
        return
    summaries = write_compare(runs, ref, output)
    differences = settings_differences(runs)
    if as_json:
        typer.echo(json.dumps({"reference": asdict(ref), "runs": [asdict(s) for s in summaries],
                               "settings_differ": differences}, indent=2))
        return
    for line in differences:  # figures measured under other settings: said, not refused
        err_console.print(f"warning: the runs differ in {line}: their figures were not measured alike",
                          highlight=False, markup=False)
    title = (f"Runs on {runs[0].dataset} (hypervolume reference: {runs[0].metric} {ref.metric:.4g}, "
             f"{ref.flops:.4g} FLOPs)")
    columns = ("run", "strategy", "space", "trials", "wall s", "best val", "test", "FLOPs", "hypervolume", "to 99% s",
               "best reference (val, FLOPs)")
    rows = [(Path(s.run).name, s.strategy, s.space, str(s.trials), f"{s.wall_time_s:.0f}", f"{s.best_val:.4f}",
             f"{s.test_of_best:.4f}", f"{s.flops_of_best:.3g}", f"{s.hypervolume:.4f}",
             "-" if s.time_to_99pct_s is None else f"{s.time_to_99pct_s:.0f}",
             "-" if s.best_reference is None else f"{s.best_reference} ({s.reference_val:.4f}, {s.reference_flops:.3g})")
            for s in summaries]
    table = Table(title=title)
    if console.width >= 140:  # a row per run
        for col in columns:
            table.add_column(col, justify="left" if col in ("run", "strategy", "space") else "right")
        for row in rows:
            table.add_row(*row)
    else:  # a column per run: eleven columns truncated at 80 characters said nothing
        table.add_column("figure")
        for row in rows:
            table.add_column(row[0], justify="right", overflow="fold")
        for i, col in enumerate(columns[1:], start=1):
            table.add_row(col, *(row[i] for row in rows))
    console.print(table)
    console.print(f"page: {output}")


@app.command()
def ops(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List every registered operator by kind, with a one-line description."""
    from graphnas.search_spaces import REGISTRIES

    listing = {kind: {e.name: e.description for e in reg} for kind, reg in REGISTRIES.items()}
    if as_json:
        typer.echo(json.dumps(listing, indent=2))
        return
    for kind, entries in listing.items():
        table = Table(title=f"{kind} ({len(entries)})", title_justify="left")
        table.add_column("name", style="cyan")
        table.add_column("description")
        for name, desc in entries.items():
            table.add_row(name, desc)
        console.print(table)


@app.command()
def zoo(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List the zoo of reference designs: architecture, protocol, source, published figures."""
    from graphnas.search_spaces.zoo import zoo_entries

    listing = [e.summary() for e in zoo_entries()]
    if as_json:
        typer.echo(json.dumps(listing, indent=2))
        return
    table = Table(title="Zoo of reference designs (use as zoo:NAME)")
    for col in ("name", "title", "task", "layers", "protocol", "published"):
        table.add_column(col)
    for row in listing:
        p = row["protocol"]
        protocol = (f"{p['optimizer']} lr {p['lr']:g} wd {p['weight_decay']:g} dropout {p['dropout']:g}, "
                    f"{p['epochs']} epochs" + (f", {p['folds']}-fold" if p["folds"] > 1 else "")
                    + (f", {p['feature_norm']}-normalised features" if p["feature_norm"] != "none" else "")
                    + (f", {p['lr_schedule']} lr schedule" if p["lr_schedule"] != "constant" else ""))
        published = ", ".join(f"{k} {v:g}" for k, v in row["published"].items()) or "-"
        table.add_row(row["name"], row["title"], row["task"], " > ".join(row["layers"]), protocol, published)
    console.print(table)


knowledge_app = typer.Typer(rich_markup_mode=None, help="The knowledge store of earlier searches that new searches start from.")
app.add_typer(knowledge_app, name="knowledge")
KNOWLEDGE_URL = typer.Option(None, "--knowledge", help="Store URL [default: $GRAPHNAS_KNOWLEDGE or "
                             "sqlite:///~/.cache/graphnas/knowledge.db].")


def _knowledge_store(url: Optional[str]):
    import optuna

    from graphnas.nas.knowledge import KnowledgeStore, default_url

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # not a line per study it creates
    try:
        return KnowledgeStore(url or default_url())
    except Exception as err:  # a storage that cannot be opened: one line
        _fail(f"--knowledge {url or default_url()}: cannot open the knowledge store ({type(err).__name__}: {err})")


@knowledge_app.command("list")
def knowledge_list(url: Optional[str] = KNOWLEDGE_URL,
                   as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """One row per earlier search: dataset, space, trials, best validation, fingerprint."""
    store = _knowledge_store(url)
    rows = [e.summary() for e in store.entries()]
    if as_json:
        typer.echo(json.dumps(rows, indent=2, default=str))
        return
    table = Table(title=f"Knowledge store {store.url}")
    for col in ("name", "dataset", "space", "trials", "best", "nodes", "mean degree", "features", "classes",
                "homophily", "clustering"):
        table.add_column(col)
    for r in rows:
        fmt = lambda v: "-" if v is None else f"{v:.3g}"  # noqa: E731
        table.add_row(r["name"], r["dataset"], r["space"], str(r["trials"]), fmt(r["best"]), fmt(r["nodes"]),
                      fmt(r["edges"] / max(r["nodes"], 1)), str(r["features"]), str(r["classes"]),
                      fmt(r["homophily"]), fmt(r["clustering"]))
    console.print(table)
    console.print("Shipped with graphnas, outside the store: NAS-Bench-Graph's tables as knowledge of the "
                  "nas_bench_graph presets (a benchmark search on one of its 9 datasets starts from the other 8).",
                  highlight=False)


@knowledge_app.command("show")
def knowledge_show(name: str = typer.Argument(..., help="An entry's name or its dataset."),
                   url: Optional[str] = KNOWLEDGE_URL, top: int = typer.Option(10, min=1, help="Trials to show."),
                   as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """An entry's fingerprint and its best trials (by name, or every entry of a dataset)."""
    store = _knowledge_store(url)
    entries = [e for e in store.entries() if name in (e.name, e.dataset)]
    if not entries:
        _fail(f"the knowledge store {store.url} has no entry or dataset {name!r}; it has: "
              f"{', '.join(store.names()) or 'none'}")
    shown = [{**e.summary(), "top": [{"score": t.score, "params": t.params} for t in e.trials[:top]]} for e in entries]
    if as_json:
        typer.echo(json.dumps(shown, indent=2, default=str))
        return
    for entry in shown:
        facts = {k: v for k, v in entry.items() if k != "top"}
        console.print(f"[bold]{entry['name']}[/]: " + ", ".join(f"{k} {v}" for k, v in facts.items() if k != "name"),
                      highlight=False)
        for t in entry["top"]:
            console.print(f"  {t['score']:.4f}  " + " ".join(f"{k}={v}" for k, v in t["params"].items()),
                          highlight=False)


@knowledge_app.command("add")
def knowledge_add(run_dir: Path = typer.Argument(..., help="A finished run directory."),
                  url: Optional[str] = KNOWLEDGE_URL) -> None:
    """Register a run (again, replacing its earlier entry)."""
    from graphnas.nas.knowledge import register_run

    store = _knowledge_store(url)
    try:
        name = register_run(store, run_dir)
    except (FileNotFoundError, KeyError, ValueError) as err:
        _fail(str(err))
        return
    console.print(f"added {run_dir} as {name!r} to {store.url}", highlight=False)


@knowledge_app.command("remove")
def knowledge_remove(name: str = typer.Argument(..., help="An entry's name."),
                     url: Optional[str] = KNOWLEDGE_URL) -> None:
    """Remove an entry."""
    store = _knowledge_store(url)
    try:
        store.remove(name)
    except KeyError as err:
        _fail(err.args[0])
        return
    console.print(f"removed {name!r} from {store.url}", highlight=False)


@spaces_app.callback(invoke_without_command=True)
def spaces(ctx: typer.Context, as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List the preset spaces with their sizes."""
    if ctx.invoked_subcommand is not None:
        return
    from graphnas.evaluators.datasets import DEFAULT_SPACES, FALLBACK_SPACE
    from graphnas.search_spaces import SearchSpace, preset_names

    listing = []
    for name in preset_names():
        sp = SearchSpace.preset(name)
        default_for = [task for task, space in DEFAULT_SPACES.items() if space == name]
        description = sp.spec.description
        try:
            size = sp.size()
        except ModuleNotFoundError as err:  # a canonical form of an extra (nas_bench_graph): say which
            size, description = None, f"{description} [size: needs {_extra_needed(err)}]"
        listing.append({"name": name, "size": size, "description": description,
                        "default_for": ", ".join(default_for) or ("every other task" if name == FALLBACK_SPACE else "")})
    if as_json:
        typer.echo(json.dumps(listing, indent=2))
        return
    table = Table(title="Preset search spaces (size: distinct discrete architectures)")
    for col in ("name", "size", "default for", "description"):
        table.add_column(col, justify="right" if col == "size" else "left")
    for row in listing:
        table.add_row(row["name"], f"{row['size']:,}" if row["size"] is not None else "-", row["default_for"],
                      row["description"])
    console.print(table)


@spaces_app.command("validate")
def spaces_validate(file: Path = typer.Argument(..., help="Space YAML file.")) -> None:
    """Check a space file; print its size or every problem with its field path."""
    from graphnas.search_spaces import SearchSpace, SpaceError

    try:
        sp = SearchSpace.from_yaml(file)
    except SpaceError as err:
        _fail(str(err))
        return
    console.print(f"{file}: valid space [cyan]{sp.name}[/] with {sp.size():,} architectures")


# the optional extras of pyproject.toml, by the top-level module each brings
EXTRAS = {"nas_bench_graph": "bench", "ray": "ray", "onnx": "export", "onnxscript": "export", "onnxruntime": "export",
          "rdkit": "chem", "psycopg": "postgres"}


def _extra_needed(err: ModuleNotFoundError) -> str:
    module = (err.name or "").split(".")[0]
    return f"pip install 'graphnas[{EXTRAS[module]}]'" if module in EXTRAS else f"the module {err.name}"


def main() -> None:
    """The console script: a command that needs an optional extra the install lacks ends in one
    line naming the extra (exit 2), not in a traceback."""
    try:
        app()
    except ModuleNotFoundError as err:
        if (err.name or "").split(".")[0] not in EXTRAS:
            raise
        err_console.print(f"error: {' '.join(sys.argv[1:3])}: this needs {_extra_needed(err)} "
                          f"(No module named {err.name!r})", highlight=False, markup=False)
        raise SystemExit(2) from None


if __name__ == "__main__":
    sys.exit(main())
