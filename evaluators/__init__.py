"""Train and measure architectures: datasets, training, metrics, cost.

Takes an :class:`~search_spaces.Architecture` and an optional ``report(epoch, value)``
callback; knows no search strategy.
"""
from graphnas.evaluators.cost import Cost, flops_of, measure_cost, params_of
from graphnas.evaluators.datasets import DATASETS, DatasetBundle, DatasetError, load_dataset
from graphnas.evaluators.splits import Splits
from graphnas.evaluators import external as _external  # noqa: F401  (registers the .pt-file and dataset-class sources)
from graphnas.evaluators import molecules as _molecules  # noqa: F401  (registers the molecular datasets)
from graphnas.evaluators import heterophily as _heterophily  # noqa: F401  (registers the heterophily graphs)
from graphnas.evaluators.evaluator import EVALUATORS, Evaluator, TrainingEvaluator
from graphnas.evaluators import nas_bench_graph as _nas_bench_graph  # noqa: F401  (registers nas-bench-graph)
from graphnas.evaluators.metrics import METRICS, Metric, get_metric
from graphnas.evaluators.result import TrialResult
from graphnas.evaluators.training import (TrainConfig, TrainedModel, TrainingDiverged, TrialPruned, TrialTimeout, evaluate,
                                 resolve_device, train_model)

__all__ = ["Cost", "DATASETS", "DatasetBundle", "DatasetError", "EVALUATORS", "Evaluator", "METRICS", "Metric", "Splits",
           "TrainConfig", "TrainedModel", "TrainingDiverged", "TrainingEvaluator", "TrialPruned", "TrialTimeout", "TrialResult", "evaluate",
           "flops_of",
           "get_metric", "load_dataset", "measure_cost", "params_of", "resolve_device", "train_model"]
