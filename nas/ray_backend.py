"""The Ray Tune backend: the same search, its trials run as Ray Tune trials.

Ray Tune's ``Tuner`` runs the trials (on this machine or a cluster), a ``Searcher`` proposes
them from the run's own Optuna study and storage (so report, export and compare
read the same run directory as with the local backend), a ``ConcurrencyLimiter`` keeps
``workers`` trials in flight and ``ASHAScheduler`` stops hopeless ones early on the
validation metric the evaluator reports every epoch. The evaluator (the dataset and its
encodings, the training settings) is prepared once by the driver and shipped to the workers
through Ray's object store.

Install with ``pip install 'graphnas[ray]'``.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import optuna

from graphnas.evaluators import get_metric
from graphnas.evaluators.evaluator import TrainingEvaluator
from graphnas.evaluators.result import TrialResult
from graphnas.nas.outcome import completed, failed, pruned, tell
from graphnas.search_spaces import Architecture

try:
    from ray.tune.search import Searcher
except ImportError:  # without the extra, run_ray says how to install it
    Searcher = object

if TYPE_CHECKING:
    from graphnas.nas.search import Search


def _require_ray():
    try:
        import ray  # noqa: F401
        from ray import tune  # noqa: F401
    except ImportError:
        raise ImportError("--backend ray needs Ray Tune: pip install 'graphnas[ray]'") from None


def _trainable(config: dict, evaluator: TrainingEvaluator, pruning: bool, threads: int) -> None:
    """One Ray trial: train the proposed architecture, report every epoch's validation
    metric (for ASHA) and finally every measured figure. A candidate's exception is
    reported as a result with its message, so the searcher records it."""
    import ray
    import torch
    from ray import tune

    torch.set_num_threads(threads)
    node = ray.get_runtime_context().get_node_id()  # which machine of a cluster ran it (user attribute "node")
    metric = get_metric(evaluator.train.metric or evaluator.metric)
    arch = Architecture.from_json(config["arch_json"])

    # ASHA never stops a trial that reports NaN: a finite worst value instead
    worst = -1e9 if metric.direction == "maximize" else 1e9

    def report(epoch: int, value: float) -> bool:
        tune.report({"val_metric": value if math.isfinite(value) else worst, "epoch": epoch, "node": node})
        return False  # ASHA stops the trial itself

    try:
        result = evaluator.evaluate(arch, report if pruning else None)
    except Exception as err:  # any failure of a candidate fails only its trial
        tune.report({"error": f"{type(err).__name__}: {err}"[:2000], "val_metric": worst,
                     "arch_json": config["arch_json"], "final": True, "node": node})
        return
    tune.report({**result.to_attrs(), "final": True, "node": node})


class StudySearcher(Searcher):
    """A Ray Tune searcher that asks the run's Optuna study for each trial and tells it each
    outcome. Written on Ray's public ``Searcher`` API rather than as a subclass of
    ``OptunaSearch``, whose study and trials live in private attributes (``_ot_study``,
    ``_ot_trials``) that a Ray release may rename. What it adds to ask and tell: the
    trial's figures as the run store's user attributes, the node that ran it, and failures
    and ASHA stops told apart from completions."""

    def __init__(self, study: optuna.Study, space, objectives) -> None:
        super().__init__(metric=None, mode=None)
        self.study, self.space, self.objectives = study, space, objectives
        self._trials: dict[str, optuna.Trial] = {}  # Ray trial id -> its Optuna trial, until told
        self._nodes: dict[str, str] = {}  # Ray trial id -> the node its last result came from

    def suggest(self, trial_id: str) -> Optional[dict]:
        trial = self.study.ask()
        self._trials[trial_id] = trial
        return {"arch_json": self.space.suggest(trial).to_json()}

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if result.get("node"):
            self._nodes[trial_id] = result["node"]

    def on_trial_complete(self, trial_id: str, result: Optional[dict] = None, error: bool = False) -> None:
        trial = self._trials.pop(trial_id, None)
        if trial is None:
            return
        result = result or {}
        arch_json = (result.get("config") or {}).get("arch_json") or result.get("arch_json")
        node = result.get("node") or self._nodes.pop(trial_id, None)
        if node:
            trial.set_user_attr("node", node)
        if arch_json:
            trial.set_user_attr("arch_json", arch_json)
            trial.set_user_attr("arch_id", Architecture.from_json(arch_json).arch_id)
        if error or "error" in result:
            outcome = failed(result.get("error", "the Ray worker running this trial died"))
        elif not result.get("final"):
            outcome = pruned(f"stopped by ASHA at epoch {result.get('epoch')}")
        else:
            outcome = completed(TrialResult.from_attrs(result), self.objectives)
        tell(self.study, trial, outcome)

    def save_to_dir(self, checkpoint_dir: str, session_str: str = "default") -> None:
        """Nothing to checkpoint: the study in the run's storage is the searcher's state, and
        a resumed graphnas search reads it from there (not through Tune's restore)."""


def run_ray(search: "Search", study: optuna.Study, evaluator: TrainingEvaluator, objectives) -> None:
    """Run the remaining budget of ``search`` as Ray Tune trials on ``study``."""
    _require_ray()
    import ray
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search import ConcurrencyLimiter

    from graphnas.nas.search import count_finished

    cfg = search.config
    remaining = cfg.trials - count_finished(study)
    if remaining <= 0:
        return
    if not ray.is_initialized():
        if cfg.ray_address:
            ray.init(address=cfg.ray_address, log_to_driver=False)
        else:  # a local instance sized to the machine (or to what the tests allow)
            ray.init(num_cpus=cfg.ray_cpus or os.cpu_count(), include_dashboard=False, log_to_driver=False)
    metric, _ = search.objectives(evaluator)
    mode = "max" if metric.direction == "maximize" else "min"
    asking = optuna.load_study(study_name=study.study_name, storage=_storage_object(search.store.backend),
                               sampler=search.make_sampler(cfg.seed + len(study.trials), len(objectives)))
    searcher = StudySearcher(asking, search.space, objectives)
    pruning = cfg.pruner != "none"
    scheduler = (ASHAScheduler(metric="val_metric", mode=mode, max_t=cfg.train.epochs + 1, grace_period=10,
                               reduction_factor=3) if pruning else None)
    trainable = tune.with_parameters(_trainable, evaluator=evaluator, pruning=pruning,
                                     threads=max(1, int(cfg.cpus_per_trial)))
    resources = {"cpu": cfg.cpus_per_trial, "gpu": cfg.gpus_per_trial}
    tuner = tune.Tuner(
        tune.with_resources(trainable, resources),
        # reuse_actors: a trial runs in the actor process of a finished one instead of a new
        # process that imports torch, PyG and the engine again (seconds a trial; issue 18).
        # Every trial seeds its own training, so nothing carries over between them.
        tune_config=tune.TuneConfig(search_alg=ConcurrencyLimiter(searcher, max_concurrent=cfg.workers),
                                    scheduler=scheduler, num_samples=remaining, reuse_actors=True),
        run_config=tune.RunConfig(name="ray", storage_path=str(Path(search.run_dir).resolve()), verbose=0,
                                  failure_config=tune.FailureConfig(max_failures=0)))
    tuner.fit()


def _storage_object(backend: Any):
    """A storage object for ``load_study``, from the run store's backend (a URL or an object)."""
    if isinstance(backend, str):
        return optuna.storages.RDBStorage(backend)
    return backend
