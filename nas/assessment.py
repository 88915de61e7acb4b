"""Errica et al.'s fair protocol for graph classification (ICLR 2020): model selection inside
each fold.

With ``--folds 10`` alone every trial is a 10-fold cross-validation (Xu et al.'s protocol) and
the search picks the architecture of best mean validation: its mean test accuracy then
measures that one architecture, chosen by a search that saw every fold's graphs through
the other folds' validation parts. Errica et al. measure the whole procedure instead: for
each outer fold, a separate search that sees only the fold's training part (selecting on a
stratified 10% of it), its best architecture retrained ``final_runs`` times on that part,
and the mean of those runs' test accuracy on the outer fold, the one part nothing chose
with. The figure is the mean and std of those ten numbers.

Each fold's search is an ordinary run in ``RUN_DIR/fold_K`` (its own study, trials.csv,
Pareto front and report); ``RUN_DIR/assessment.json`` holds every finished fold, written
after each one, so an interrupted assessment resumes at the fold it was in.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from graphnas.nas.search import Observer, Search, SearchConfig
from graphnas.search_spaces import Architecture

ASSESSMENT_FILE = "assessment.json"
PROTOCOLS = ("xu", "errica")  # xu: every trial is a k-fold CV; errica: a search inside every fold


@dataclass
class FoldAssessment:
    """One outer fold: the architecture its search selected and its final runs' test figures."""

    fold: int
    trial: int  # in the fold's own search
    arch_id: str
    val_metric: float  # the selected trial's, on the fold's validation part
    flops: int
    test_metrics: list[float] = field(default_factory=list)  # one per final run, on the outer fold
    reference: Optional[str] = None  # the zoo design, where the search selected one

    @property
    def test_mean(self) -> float:
        return float(np.mean(self.test_metrics))


@dataclass
class Assessment:
    """Every outer fold's outcome; the protocol's figure is the mean and std over folds."""

    folds: list[FoldAssessment]

    def stat(self) -> tuple[float, float]:
        tests = [f.test_mean for f in self.folds]
        return float(np.mean(tests)), float(np.std(tests))

    def to_json(self, config: SearchConfig) -> str:
        mean, std = self.stat() if self.folds else (None, None)
        return json.dumps({"protocol": "errica", "config": config.model_dump(mode="json"),
                           "test_mean": mean, "test_std": std, "folds": [asdict(f) for f in self.folds]}, indent=2)

    @staticmethod
    def read_config(path: Path) -> dict:
        return json.loads(path.read_text())["config"]

    @classmethod
    def read(cls, path: Path) -> "Assessment":
        if not path.is_file():
            return cls([])
        return cls([FoldAssessment(**f) for f in json.loads(path.read_text())["folds"]])


def fold_config(config: SearchConfig, run_dir: Path, fold: int) -> SearchConfig:
    """The search of outer fold ``fold``: its own run directory and study, training and
    scoring that fold only (``TrainConfig.fold``)."""
    return config.model_copy(update={
        "run_dir": str(run_dir / f"fold_{fold}"), "study_name": f"{run_dir.resolve().name}-fold{fold}",
        "protocol": "xu", "train": config.train.model_copy(update={"fold": fold})})


def assess(config: SearchConfig, resume: bool = False, final_runs: int = 3,
           observer_for: Optional[Callable[[int], Optional[Observer]]] = None) -> Assessment:
    """Run Errica et al.'s protocol over ``config.train.folds`` outer folds (see the module
    docstring). ``observer_for(fold)`` gives the progress observer of each fold's search."""
    if config.train.folds < 2:
        raise ValueError("--protocol errica assesses over outer folds: give --folds K (K >= 2, 10 in Errica et al.)")
    run_dir = config.resolved_run_dir()
    path = run_dir / ASSESSMENT_FILE
    if path.is_file() and not resume:
        raise ValueError(f"{run_dir} already holds an assessment; continue it with --resume or choose another --run-dir")
    run_dir.mkdir(parents=True, exist_ok=True)
    done = Assessment.read(path)
    path.write_text(done.to_json(config))  # from now on --resume finds the run's settings here
    finished = {f.fold for f in done.folds}
    for fold in range(config.train.folds):
        if fold in finished:
            continue
        sub = fold_config(config, run_dir, fold)
        search = Search(sub, resume=(Path(sub.run_dir) / "config.yaml").is_file())
        study = search.run(observer_for(fold) if observer_for else None)
        done.folds.append(_final_runs(search, study, fold, final_runs))
        path.write_text(done.to_json(config))
    return done


def _final_runs(search: Search, study, fold: int, final_runs: int) -> FoldAssessment:
    """Retrain the fold search's best-validation architecture ``final_runs`` times (seeds
    seed .. seed + final_runs - 1) on the fold and score each on its test part."""
    best = search.store.outputs(study).best
    if best is None:
        raise ValueError(f"fold {fold}: its search finished no trial, so nothing can be assessed")
    arch = Architecture.from_json(best["arch_json"])
    evaluator, seed = search.prepare(), search.config.train.seed
    tests = [float(evaluator.evaluate(arch, seed=seed + i).test_metric) for i in range(final_runs)]
    reference = best.get("reference")
    return FoldAssessment(fold=fold, trial=int(best["trial"]), arch_id=arch.arch_id,
                          val_metric=float(best["val_metric"]), flops=int(best["flops"]), test_metrics=tests,
                          reference=reference if isinstance(reference, str) else None)
