"""The black-box search loop: Optuna proposes, the evaluator trains, the store records.

Uses Optuna's ask-and-tell interface so that one loop handles failures (recorded as FAIL
with their error, the search goes on), repeated proposals (an architecture already
trained in this run is not trained again) and progress reporting.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Callable, Optional

import optuna
from optuna.trial import TrialState
from pydantic import BaseModel, ConfigDict, Field

from evaluators import TrainConfig, TrialResult, evaluate, get_metric, load_dataset
from evaluators.datasets import DatasetBundle
from nas.samplers import STRATEGIES
from results.objectives import Objective, parse_objectives
from results.store import RunStore
from search_spaces import Architecture, SearchSpace

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


class SearchConfig(BaseModel):
    """Everything a search run is, written to ``config.yaml``."""

    model_config = ConfigDict(extra="forbid")

    space: str = "tiny"
    dataset: str = "synthetic"
    strategy: str = "tpe"
    objectives: str = "metric,flops"
    trials: int = Field(default=20, ge=1)
    timeout: Optional[float] = Field(default=None, gt=0)
    seed: int = 0
    run_dir: Optional[str] = None
    storage: Optional[str] = None
    study_name: str = "graphnas"
    data_root: Optional[str] = None
    cache_dir: Optional[str] = None
    train: TrainConfig = Field(default_factory=TrainConfig)

    def resolved_run_dir(self) -> Path:
        if self.run_dir:
            return Path(self.run_dir)
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        return Path("runs") / f"{Path(self.space).stem}-{self.dataset}-{stamp}"


@dataclass
class Progress:
    """What the loop tells its observer after every trial."""

    done: int
    total: int
    best_value: Optional[float]
    pareto_size: int
    last_state: str


Observer = Callable[[Progress], None]

# Settings that make two runs different searches: resuming with another value is refused.
IDENTITY_KEYS = ("space", "dataset", "objectives", "study_name")


class Search:
    """One search run over ``config``; ``run()`` executes or resumes it."""

    def __init__(self, config: SearchConfig, resume: bool = False) -> None:
        self.config = config
        self.run_dir = config.resolved_run_dir()
        self.store = RunStore(self.run_dir, config.storage)
        if resume:
            self._check_resume()
        self.space = SearchSpace.load(config.space)
        if config.strategy not in STRATEGIES:
            STRATEGIES.get(config.strategy)  # raises, listing the strategies
        self.resume = resume

    def _check_resume(self) -> None:
        old = self.store.read_config()
        new = self.config.model_dump(mode="json")
        diffs = [f"{k}: run has {old.get(k)!r}, now {new.get(k)!r}" for k in IDENTITY_KEYS if old.get(k) != new.get(k)]
        if diffs:
            raise ValueError(f"cannot resume {self.run_dir} with different settings: " + "; ".join(diffs))

    def prepare(self) -> DatasetBundle:
        return load_dataset(self.config.dataset, self.config.data_root,
                            Path(self.config.cache_dir) if self.config.cache_dir else None,
                            encodings=self.space.encodings())

    def run(self, observer: Optional[Observer] = None) -> optuna.Study:
        cfg = self.config
        bundle = self.prepare()
        metric = get_metric(cfg.train.metric or bundle.metric)
        objectives = parse_objectives(cfg.objectives, metric.direction)
        sampler = STRATEGIES.get(cfg.strategy)(cfg.seed, len(objectives))
        if self.resume:
            study = self.store.load_study(cfg.study_name, sampler)
        else:
            self.store.write_config({**cfg.model_dump(mode="json"), "run_dir": str(self.run_dir),
                                     "storage": self.store.storage, "space_source": self.space.source})
            study = self.store.create_study(cfg.study_name, objectives, sampler, metric.name)
        deadline = time.monotonic() + cfg.timeout if cfg.timeout else math.inf
        done = len(study.get_trials(deepcopy=False, states=FINISHED))
        try:
            while done < cfg.trials and time.monotonic() < deadline:
                state = self._one_trial(study, bundle, objectives)
                done += 1
                if observer:
                    outputs = self.store.write_outputs(study, plots=False)
                    best = outputs.best["val_metric"] if outputs.best is not None else None
                    observer(Progress(done, cfg.trials, best, len(outputs.front), state))
        finally:
            self.store.write_outputs(study)
        return study

    def _one_trial(self, study: optuna.Study, bundle: DatasetBundle, objectives: list[Objective]) -> str:
        trial = study.ask()
        try:
            arch = self.space.suggest(trial)
            trial.set_user_attr("arch_id", arch.arch_id)
            trial.set_user_attr("arch_json", arch.to_json())
            result = self._evaluate(study, arch, bundle)
            values = [float(getattr(result, o.column)) for o in objectives]
            self.store.record(trial, result)
            if not all(math.isfinite(v) for v in values):  # Optuna would store inf as COMPLETE
                raise ValueError(f"non-finite objective values {values}")
        except Exception as err:  # any failure of a candidate fails only its trial
            trial.set_user_attr("error", f"{type(err).__name__}: {err}"[:2000])
            study.tell(trial, state=TrialState.FAIL)
            return "FAIL"
        study.tell(trial, values)
        return "COMPLETE"

    def _evaluate(self, study: optuna.Study, arch: Architecture, bundle: DatasetBundle) -> TrialResult:
        for old in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            if old.user_attrs.get("arch_id") == arch.arch_id:  # same seed, same result: reuse it
                return TrialResult.from_attrs(old.user_attrs)
        return evaluate(arch, bundle, self.config.train)
