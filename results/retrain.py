"""Retrain an exported architecture from scratch over several seeds; save weights and figures."""
from __future__ import annotations

import json
import os
import shutil
import statistics
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

import torch

from graphnas.evaluators import TrainConfig, TrialResult, train_model
from graphnas.evaluators.training import cross_validate, one_fold
from graphnas.evaluators.datasets import DatasetBundle
from graphnas.results.export import ExportError, export_program
from graphnas.search_spaces import Architecture, DataInfo, model_inputs


@dataclass
class RetrainReport:
    """Per-seed results and their mean and (sample) standard deviation; what was trained
    (``design``: a zoo name or the architecture's id), on what (``dataset``, ``splits`` fixed
    splits, ``folds`` folds) and, with an exported model, the exporter's ``note``."""

    results: list[TrialResult]
    design: str = ""
    dataset: str = ""
    splits: int = 1
    folds: int = 1
    note: Optional[str] = None

    def stat(self, field: str) -> tuple[float, float]:
        values = [getattr(r, field) for r in self.results]
        return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)

    def to_dict(self) -> dict:
        out = {"seeds": len(self.results), "metric": self.results[0].metric,
               "per_seed": [{k: v for k, v in r.to_attrs().items() if k != "arch_json"} for r in self.results]}
        for field in ("val_metric", "test_metric", "flops", "params", "latency_ms", "train_time_s"):
            mean, std = self.stat(field)
            out[field] = {"mean": mean, "std": std}
        return out


def check_compatible(arch: Architecture, exported: Optional[DataInfo], bundle: DatasetBundle) -> None:
    """Refuse a dataset whose shape differs from the one the architecture was exported for."""
    if exported is None:
        return
    for field in ("task", "num_features", "num_outputs", "edge_dim"):
        want, have = getattr(exported, field), getattr(bundle.info, field)
        if want != have:
            raise ExportError(f"the architecture was exported for {field}={want!r}, dataset "
                              f"{bundle.name!r} has {field}={have!r}")


def retrain(arch: Architecture, bundle: DatasetBundle, config: TrainConfig, seeds: int,
            out_dir: Optional[Path] = None, fmt: Optional[str] = None) -> tuple[RetrainReport, Optional[str]]:
    """Train ``arch`` with seeds ``config.seed .. config.seed + seeds - 1``. With ``out_dir``,
    write ``seed{N}.pt`` (state_dict), ``figures.json``, ``arch.json`` and, with ``fmt``,
    ``model.pt2``/``model.onnx`` of the first seed. With ``config.folds > 1`` every seed is a
    stratified k-fold cross-validation and the report holds one result per fold (no
    weights are saved); with ``config.fold`` also set, every seed trains that one fold. Returns the report and the export note."""
    results, note = [], None
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "arch.json").write_text(arch.to_json(indent=2))
    for i in range(seeds):
        seed = config.seed + i
        if config.folds > 1 and config.fold is None:  # k-fold: every fold's figures; mean and std over folds (and seeds)
            results += cross_validate(arch, bundle, config.model_copy(update={"seed": seed}))[1]
            continue
        trained = train_model(arch, *one_fold(bundle, config.model_copy(update={"seed": seed})))
        results.append(trained.result)
        if out_dir is None:
            continue
        model = trained.model.cpu()
        torch.save(model.state_dict(), out_dir / f"seed{seed}.pt")
        if fmt and i == 0:
            inputs = model_inputs(bundle.data.cpu(), arch)
            note = export_program(model, inputs, out_dir / f"model.{fmt}", fmt)
    report = RetrainReport(results)
    if out_dir is not None:
        (out_dir / "figures.json").write_text(json.dumps({**report.to_dict(), "export": note}, indent=2))
    return report, note


def check_output_dir(out_dir: Path, overwrite: bool = False) -> None:
    """Refuse, before any training, an output that is a file, or a directory that holds files
    (an earlier output: the new one would be mixed with it) unless ``overwrite``."""
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"-o {out_dir}: a file, not a directory; give a directory for the weights and figures")
    held = sorted(p.name for p in out_dir.iterdir()) if out_dir.is_dir() else []
    if held and not overwrite:
        raise ValueError(f"-o {out_dir} already holds {', '.join(held[:4])}{' ...' if len(held) > 4 else ''}; "
                         "give --overwrite to replace it, or another directory")


@contextmanager
def staged_output(out_dir: Optional[Path], overwrite: bool = False) -> Iterator[Optional[Path]]:
    """A fresh directory beside ``out_dir`` to write the whole output into, renamed into place
    when the block ends without error (and removed when it fails): a run killed mid-way leaves
    ``out_dir`` as it was, never new files beside an earlier output's. ``None`` yields None."""
    if out_dir is None:
        yield None
        return
    check_output_dir(out_dir, overwrite)
    target = out_dir.resolve()  # a symbolic link: the directory it names is replaced
    # beside the target, so the final rename stays on one filesystem; hidden, named by process
    staging = target.with_name(f".{target.name}.partial-{os.getpid()}")
    try:
        shutil.rmtree(staging, ignore_errors=True)  # left by a killed process of the same id
        staging.mkdir(parents=True)
    except OSError as err:
        raise ValueError(f"-o {out_dir}: cannot write beside it ({err.strerror or err})") from None
    try:
        yield staging
        _publish(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # gone once published; else what a failure left


def _publish(staging: Path, target: Path) -> None:
    if not target.exists() or not any(target.iterdir()):
        os.replace(staging, target)  # atomic, also over an empty directory (POSIX rename)
        return
    # --overwrite: a directory cannot be renamed over a non-empty one, so the earlier output is
    # moved aside first; a kill between the two renames leaves it whole as .NAME.old-PID
    old = target.with_name(f".{target.name}.old-{os.getpid()}")
    shutil.rmtree(old, ignore_errors=True)
    os.replace(target, old)
    os.replace(staging, target)
    shutil.rmtree(old, ignore_errors=True)
