"""The Python API: ``graphnas.search`` and ``graphnas.train`` over the engine the CLI drives.

Settings are the engine's own pydantic models (``SearchConfig``, ``TrainConfig``): a keyword that
is a ``SearchConfig`` field sets it, one that is a ``TrainConfig`` field (``epochs``,
``patience``, ``device``, ...) sets ``train``'s; anything else is refused, naming the fields.

Data may be a registered dataset name, a ``.pt`` file or a dataset class's dotted path (as on
the command line), or a PyG ``Data``, a list of them or a PyG ``Dataset`` in memory. In-memory
data is saved into the run directory as ``data.pt`` (``torch.save``; it is read back with
``weights_only``): worker processes, Ray trials and a resumed run read it from there, as they
read any ``.pt`` file.
"""
from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Union

from graphnas.settings_help import settings_section

if TYPE_CHECKING:
    import optuna
    import pandas as pd
    from torch import nn
    from torch_geometric.data import Data, Dataset

    from graphnas.results.retrain import RetrainReport
    from graphnas.search_spaces import Architecture

DataLike = Union[str, Path, "Data", list, "Dataset"]
DATA_FILE = "data.pt"  # in-memory data of a search, saved in its run directory
SPACE_FILE = "space.yaml"  # a SearchSpace object of a search, saved in its run directory


# --- settings -----------------------------------------------------------------------------
def search_config(**settings: Any):
    """A ``SearchConfig`` from keyword settings: its own fields, and ``TrainConfig``'s at the top
    level (``epochs=50``) or as ``train={...}``."""
    from graphnas.evaluators.training import TrainConfig
    from graphnas.nas import SearchConfig

    own, train = {}, dict(settings.pop("train", None) or {})
    for key, value in settings.items():
        if key in SearchConfig.model_fields:
            own[key] = value
        elif key in TrainConfig.model_fields:
            train[key] = value
        else:
            raise TypeError(f"unknown setting {key!r}: settings are the fields of SearchConfig "
                            f"({', '.join(sorted(SearchConfig.model_fields))}) and of TrainConfig "
                            f"({', '.join(sorted(TrainConfig.model_fields))})")
    return SearchConfig.model_validate({**own, "train": train})


def _is_in_memory(data: Any) -> bool:
    return not isinstance(data, (str, Path))


def _graphs(data: Any):
    """What ``torch.save`` writes for in-memory data: one ``Data``, or a list (a dataset's graphs)."""
    from torch_geometric.data import Data

    if isinstance(data, Data):
        return data
    try:
        graphs = list(data)
    except TypeError:
        graphs = []
    if not graphs or not all(isinstance(g, Data) for g in graphs):
        raise TypeError("data: expected a registered dataset name, a .pt path, a dataset class's dotted path, "
                        f"a PyG Data, a list of Data or a PyG Dataset; got {type(data).__name__}")
    return graphs


def _save_graphs(data: Any, path: Path) -> Path:
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(_graphs(data), path)
    return path


def _space_setting(space: Any, run_dir: Path) -> Optional[str]:
    """``SearchConfig.space`` for ``space``: None for "auto" (the task's default), a preset name or
    path as given, a ``SearchSpace`` object by its file or preset, else written to RUN/space.yaml."""
    from graphnas.search_spaces import SearchSpace

    if space is None or space == "auto":
        return None
    if isinstance(space, (str, Path)):
        return str(space)
    if isinstance(space, dict):
        space = SearchSpace.from_dict(space)
    if not isinstance(space, SearchSpace):
        raise TypeError(f"space: expected 'auto', a preset name, a YAML path or a SearchSpace; got "
                        f"{type(space).__name__}")
    if space.source.startswith("preset:"):
        return space.source.partition(":")[2]
    if Path(space.source).is_file():
        return str(space.source)
    path = run_dir / SPACE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(space.to_yaml())
    return str(path)


# --- search -------------------------------------------------------------------------------
def search(data: DataLike, space: Any = "auto", *, trials: int = 20, strategy: str = "auto",
           objectives: str = "metric,flops", run_dir: Optional[str | Path] = None, seed: int = 0,
           progress: bool = True, **settings: Any) -> "SearchResult":
    """Search architectures for ``data``; returns the run's :class:`SearchResult`.

    ``space``: "auto" (the default space of the data's task: node, graph, ...), a preset name, a
    YAML path, a dict or a ``SearchSpace``. ``settings``: any other ``SearchConfig`` or
    ``TrainConfig`` field (``epochs``, ``timeout``, ``workers``, ``pruner``, ``task``, ...).
    ``progress``: a progress bar (rich: a terminal or a Jupyter notebook).

        >>> result = graphnas.search(data, trials=20, epochs=100)
        >>> result.best, result.trials.head(), result.model()
    """
    graphs = _graphs(data) if _is_in_memory(data) else None  # checked before any work
    config = search_config(trials=trials, strategy=strategy, objectives=objectives, seed=seed,
                           run_dir=None if run_dir is None else str(run_dir),
                           dataset="memory" if _is_in_memory(data) else str(data), **settings)
    if run_dir is None:  # the engine's default name, fixed now: in-memory data is saved into it
        config = config.model_copy(update={"run_dir": str(config.resolved_run_dir())})
    where = Path(config.run_dir)
    update: dict[str, Any] = {"space": _space_setting(space, where)}
    if graphs is not None:
        update["dataset"] = str(_save_graphs(graphs, where / DATA_FILE))
    return run_search(config.model_copy(update=update), progress=progress)


# the settings' texts are the CLI's (graphnas.settings_help): --help and these docstrings share one source
search.__doc__ += "\n    Settings:\n\n" + settings_section(("", "train.", "darts."))


def run_search(config, resume: bool = False, progress: bool = True) -> "SearchResult":
    """Run (or resume) the search of a ``SearchConfig``."""
    from graphnas.nas import Search
    from graphnas.nas.noise import known_noise_silenced

    runner = Search(config, resume=resume)
    with known_noise_silenced():
        run_with_progress(runner, runner.config.budget, quiet=not progress)
    return SearchResult(runner.run_dir)


def run_with_progress(runner, total: int, quiet: bool, console=None):
    """``runner.run()`` with a rich progress bar of the trials (in a terminal or a notebook), a
    plain line per finished trial where output is neither, or nothing when ``quiet``."""
    import optuna
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if quiet:
        return runner.run()
    console = console or Console()
    if not (console.is_terminal or console.is_jupyter):  # a logged run: no bar redrawn in place
        return runner.run(plain_progress(total, console))
    columns = [TextColumn("[bold]trials"), BarColumn(), MofNCompleteColumn(),
               TextColumn("best {task.fields[best]}  Pareto {task.fields[pareto]}  {task.fields[note]}"),
               TimeElapsedColumn()]
    with Progress(*columns, console=console) as bar:
        task = bar.add_task("search", total=total, best="-", pareto=0, note="")

        def observe(p) -> None:
            best = f"{p.best_value:.4f}" if p.best_value is not None else "-"
            bar.update(task, completed=p.done, best=best, pareto=p.pareto_size, note=p.note)

        return runner.run(observe)


def plain_progress(total: int, console):
    """An observer that prints one line per finished trial (and per confirmation step)."""
    import time

    start, seen = time.monotonic(), [-1]

    def observe(p) -> None:
        if p.done == seen[0] and not p.note:
            return
        seen[0] = p.done
        best = f"{p.best_value:.4f}" if p.best_value is not None else "-"
        console.print(f"[{time.monotonic() - start:7.0f} s] trials {p.done}/{total} {p.last_state.lower()}, best {best}, "
                      f"Pareto {p.pareto_size}{'; ' + p.note if p.note else ''}", highlight=False, markup=False,
                      soft_wrap=True)
    return observe


@dataclass
class SearchResult:
    """A search's run directory, read: what ``graphnas report`` and ``graphnas export`` read."""

    run_dir: Path

    def __post_init__(self) -> None:
        self.run_dir = Path(self.run_dir)

    @classmethod
    def open(cls, run_dir: str | Path) -> "SearchResult":
        """The result of an earlier search (its run directory)."""
        result = cls(Path(run_dir))
        result.study  # noqa: B018 (fails now, naming the directory, if it holds no run)
        return result

    @cached_property
    def _store_and_study(self):
        from graphnas.results import RunStore

        return RunStore.open(self.run_dir)

    @property
    def study(self) -> "optuna.Study":
        """The Optuna study (optuna-dashboard and ``optuna.visualization`` read it)."""
        return self._store_and_study[1]

    @property
    def trials(self) -> "pd.DataFrame":
        """One row per trial: the columns of trials.csv."""
        store, study = self._store_and_study
        return store.trials_frame(study)

    @property
    def best(self) -> "Architecture":
        """The best architecture by validation metric (that of ``graphnas export --best``)."""
        from graphnas.results import export_record
        from graphnas.search_spaces import Architecture

        return Architecture.model_validate(export_record(self.run_dir)["architecture"])

    @property
    def pareto(self) -> list["Architecture"]:
        """The Pareto front's architectures, fewest FLOPs (or the first cost objective) first."""
        from graphnas.results import ParetoFront, front_objectives
        from graphnas.search_spaces import Architecture

        store, study = self._store_and_study
        front = ParetoFront.of(store.trials_frame(study), front_objectives(store.objectives_of(study))).trials
        return [Architecture.from_json(text) for text in front["arch_json"]]

    def export(self, path: str | Path, trial: Optional[int] = None) -> Path:
        """Write the export file of the best trial (or of ``trial``), as ``graphnas export``."""
        from graphnas.results import export_record, write_export

        return write_export(export_record(self.run_dir, trial=trial), path)

    def model(self, seed: int = 0, **train_settings: Any) -> "nn.Module":
        """The best architecture trained from scratch on the search's data with ``seed`` (its
        run's training settings unless ``train_settings`` say otherwise), at its best validation
        epoch, in eval mode."""
        store, _ = self._store_and_study
        config = search_config(**{k: v for k, v in store.read_config().items() if k in _config_fields()})
        arch = self.best
        bundle = _bundle(config.dataset, arch, config)
        return _train_one(arch, bundle, config.train.model_copy(update={"seed": seed, **train_settings}))


def _config_fields() -> set[str]:
    from graphnas.nas import SearchConfig

    return set(SearchConfig.model_fields)


def _bundle(dataset: str, arch: "Architecture", config):
    from graphnas.evaluators.datasets import choose_split, load_dataset

    bundle = load_dataset(dataset, config.data_root, Path(config.cache_dir) if config.cache_dir else None,
                          encodings={arch.encoding: arch.encoding_dim}, feature_norms={arch.feature_norm},
                          dataset_args=config.dataset_args, task=config.task)
    return choose_split(bundle, config.train.split)


def _train_one(arch: "Architecture", bundle, train_config) -> "nn.Module":
    from graphnas.evaluators.training import train_model
    from graphnas.nas.noise import known_noise_silenced

    with known_noise_silenced():
        return train_model(arch, bundle, train_config).model.eval()


# --- train and load -----------------------------------------------------------------------

def train(arch: Any, data: Optional[DataLike] = None, seeds: int = 5, *, splits: int = 1,
          output: Optional[str | Path] = None, overwrite: bool = False, fmt: Optional[str] = None,
          cache_dir: Optional[str | Path] = None, data_root: Optional[str | Path] = None, task: Optional[str] = None,
          **train_settings: Any) -> "RetrainReport":
    """Train ``arch`` from scratch with ``seeds`` seeds on ``data``: per-seed results and their
    mean and standard deviation (``report.stat("test_metric")``). ``graphnas train`` is this.

    ``arch``: an ``Architecture``, an export or architecture file, or "zoo:NAME" (the design as
    published for the dataset where the entry says). ``data``: as :func:`search` takes it;
    ``None``: the dataset the export was found on. ``splits``: train on that many fixed splits
    from ``split`` on (the heterophily graphs have 10). ``output``: a directory for the weights
    and figures, written whole (refused if it holds files, unless ``overwrite``); ``fmt``: also
    export the first seed's model there (pt2 | onnx). ``train_settings``: ``TrainConfig``
    fields (``epochs``, ``patience``, ``device``, ``seed``: the first seed, ...), over the
    export's own recipe and a zoo entry's protocol."""
    from graphnas.evaluators.datasets import default_cache_dir, load_dataset, over_splits
    from graphnas.evaluators.training import TrainConfig, check_device
    from graphnas.nas.noise import known_noise_silenced
    from graphnas.results.export import export_recipe, read_export
    from graphnas.results.retrain import RetrainReport, check_compatible, check_output_dir, retrain, staged_output
    from graphnas.search_spaces import Architecture
    from graphnas.search_spaces.zoo import zoo_entry

    if fmt not in (None, "pt2", "onnx"):
        raise ValueError(f"--format must be pt2 or onnx, got {fmt!r}")
    if fmt and output is None:
        raise ValueError("--format needs -o DIR to write the exported model into")
    output = None if output is None else Path(output)
    if output is not None:  # before any work: an earlier output is not mixed with the new one
        check_output_dir(output, overwrite)
    check_device(train_settings.get("device", "auto"))
    info, record, source = None, {}, arch
    if not isinstance(arch, Architecture):
        arch, info, record = read_export(arch)
    if data is None and not record.get("dataset"):
        raise ValueError(f"{source if isinstance(source, (str, Path)) else 'the architecture'} does not say which "
                         "dataset it was found on: pass --dataset")
    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    name = record["dataset"] if data is None else str(_memory_file(data, cache)) if _is_in_memory(data) else str(data)
    if record.get("zoo"):  # the design as its source publishes it for this dataset
        arch = zoo_entry(record["zoo"]).architecture_for(name)
    bundle = load_dataset(name, data_root, cache, encodings={arch.encoding: arch.encoding_dim},
                          feature_norms={arch.feature_norm}, task=task)
    check_compatible(arch, info, bundle)
    config = TrainConfig(**{**export_recipe(record), **record.get("protocol", {}), **train_settings})
    if splits > 1 and config.folds > 1:
        raise ValueError(f"--splits {splits} and folds {config.folds}: figures over fixed splits or over folds, not both")
    bundles = over_splits(bundle, splits, config.split)
    # one retrain per split, its files in split<K>/ when several; all of them in place at once
    with known_noise_silenced(), staged_output(output, overwrite) as out:
        runs = [retrain(arch, b, config, seeds, out / f"split{config.split + k}" if out and splits > 1 else out, fmt)
                for k, b in enumerate(bundles)]
    return RetrainReport([r for done, _ in runs for r in done.results], design=record.get("zoo") or arch.arch_id,
                         dataset=name, splits=splits, folds=config.folds, note=runs[0][1])


train.__doc__ += "\n\n    Settings:\n\n" + settings_section(("train.",))


def _memory_file(data: Any, cache: Path) -> Path:
    """In-memory data saved once in the cache under the hash of its bytes (a later call with the
    same data reuses the file and its processed cache)."""
    import torch

    buffer = io.BytesIO()
    torch.save(_graphs(data), buffer)
    digest = hashlib.sha256(buffer.getvalue()).hexdigest()[:16]
    path = cache / "memory" / f"{digest}.pt"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(buffer.getvalue())
        tmp.replace(path)
    return path


def load_model(path: str | Path, weights: Optional[str | Path] = None) -> "nn.Module":
    """The model of an export file (``graphnas export``), with ``weights`` (a ``seed*.pt`` of
    ``graphnas train -o``) loaded when given."""
    from graphnas.results import load_model as _load

    return _load(path, weights)
