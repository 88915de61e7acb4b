"""Contract tests for every kind of primitive, generated from the registries (issue 44), as the
strategy and operator contracts are: a new entry in any registry is tested by registering it.

* metrics: a declared direction; perfect predictions score at least as well as wrong ones, in
  the metric's range;
* pruners: each builds an Optuna pruner that a study accepts, and answers ``should_prune``;
* encodings: every entry computes ``[N, k]`` from a graph, and its module maps that to
  ``[N, channels]`` with gradients;
* activations and norms: shape-preserving modules;
* datasets: every dataset that needs no download loads, and its task is the one declared;
* evaluators: prepare -> evaluate -> a TrialResult, the report hook called once per epoch;
* backends: each declares its capabilities and checks a configuration before any work.
"""
from __future__ import annotations

import math

import numpy as np
import optuna
import pytest
import torch
from torch_geometric.data import Data

from graphnas.evaluators.datasets import DATASETS, load_dataset
from graphnas.evaluators.evaluator import EVALUATORS, EvaluatorSettings
from graphnas.evaluators.metrics import METRICS
from graphnas.evaluators.result import TrialResult
from graphnas.evaluators.training import TrainConfig
from graphnas.nas.backends import BACKENDS
from graphnas.nas.pruners import PRUNERS
from graphnas.search_spaces import SearchSpace
from graphnas.search_spaces.operators import ACTIVATION, ENCODING, NORM

# Datasets made in-process (nothing read from disk or downloaded)
EMBEDDED = [name for name in DATASETS.names() if name in ("synthetic", "triangles")]


def _graph(n: int = 30) -> Data:
    gen = torch.Generator().manual_seed(0)
    src = torch.arange(n)
    edge_index = torch.cat([torch.stack([src, (src + 1) % n]), torch.stack([(src + 1) % n, src]),
                            torch.randint(0, n, (2, n), generator=gen)], 1)
    edge_index = edge_index[:, edge_index[0] != edge_index[1]]
    return Data(x=torch.randn(n, 4, generator=gen), edge_index=edge_index, num_nodes=n)


@pytest.mark.parametrize("name", METRICS.names())
def test_metric_contract(name):
    metric = METRICS.get(name)
    assert metric.direction in ("maximize", "minimize")
    gen = torch.Generator().manual_seed(0)
    if metric.direction == "maximize":  # classification scores: logits against class labels
        y = torch.arange(40) % 2
        perfect = torch.nn.functional.one_hot(y, 2).float() * 4 - 2
        wrong = -perfect
    else:  # regression errors: predictions against targets
        y = torch.randn(40, 1, generator=gen)
        perfect, wrong = y.clone(), y + 1.0
    best, worse = metric(perfect, y), metric(wrong, y)
    assert math.isfinite(best) and math.isfinite(worse)
    assert metric.better(best, worse) and not metric.better(worse, best)
    assert metric.better(best, metric.worst)


@pytest.mark.parametrize("name", PRUNERS.names())
def test_pruner_contract(name):
    pruner = PRUNERS.get(name)()
    assert isinstance(pruner, optuna.pruners.BasePruner)
    study = optuna.create_study(direction="maximize", pruner=pruner)
    for value in (0.9, 0.8, 0.7, 0.6, 0.5, 0.4):  # finished trials with curves, then a weak one
        trial = study.ask()
        for step in range(40):
            trial.report(value, step)
            trial.should_prune()  # as a search's report hook does: successive halving records its rungs here
        study.tell(trial, value)
    weak = study.ask()
    answers = []
    for step in range(40):
        weak.report(0.01, step)
        answers.append(bool(weak.should_prune()))
    if name == "none":
        assert not any(answers)
    else:  # every other pruner stops a trial far below all others before its last epoch
        assert any(answers)


@pytest.mark.parametrize("name", ENCODING.names())
def test_encoding_contract(name):
    data, k, channels = _graph(), 4, 8
    factory = ENCODING.get(name)
    module = factory(k, channels)
    if name == "none":
        assert factory.attr == ""
        return
    pe = factory.compute(data, k)
    assert pe.shape == (data.num_nodes, k) and torch.isfinite(pe).all()
    out = module(pe.requires_grad_(True))
    assert out.shape == (data.num_nodes, channels)
    out.sum().backward()
    assert any(p.grad is not None for p in module.parameters())


@pytest.mark.parametrize("name", ACTIVATION.names())
def test_activation_contract(name):
    x = torch.randn(5, 6, requires_grad=True)
    out = ACTIVATION.get(name)()(x)
    assert out.shape == x.shape
    out.sum().backward()
    assert x.grad is not None


@pytest.mark.parametrize("name", NORM.names())
def test_norm_contract(name):
    module = NORM.get(name)(6)
    x = torch.randn(12, 6)
    out = module(x) if not getattr(module, "takes_batch", False) else module(x, torch.zeros(12, dtype=torch.long))
    assert out.shape == x.shape and torch.isfinite(out).all()


@pytest.mark.parametrize("name", EMBEDDED)
def test_embedded_dataset_contract(name, cache_dir):
    bundle = load_dataset(name, cache_dir=cache_dir)
    declared = DATASETS.entry(name).capabilities.get("task")
    assert declared is None or bundle.info.task == declared
    splits = bundle.splits
    assert len(splits.train) and len(splits.val) and len(splits.test)
    assert METRICS.get(bundle.metric).direction in ("maximize", "minimize")


def test_every_dataset_declares_its_task():
    from graphnas.evaluators.datasets import dataset_task

    missing = [e.name for e in DATASETS if not dataset_task(e.name)]
    assert not missing, missing


@pytest.mark.parametrize("name", EVALUATORS.names())
def test_evaluator_contract(name, cache_dir):
    if name == "train":
        space, settings = SearchSpace.preset("tiny"), EvaluatorSettings(
            dataset="synthetic", cache_dir=str(cache_dir), train=TrainConfig(epochs=3, patience=3, device="cpu"))
    else:
        pytest.importorskip("nas_bench_graph")
        space, settings = SearchSpace.preset("nas_bench_graph"), EvaluatorSettings(dataset="cora")
    evaluator = EVALUATORS.get(name).prepare(settings, space)
    assert evaluator.name and METRICS.get(evaluator.metric)
    arch = space.sample(np.random.default_rng(1))
    epochs = []
    result = evaluator.evaluate(arch, report=lambda epoch, value: epochs.append(epoch) or False)
    assert isinstance(result, TrialResult) and result.arch_id == arch.arch_id
    assert 0 <= result.val_metric <= 1 and 0 <= result.test_metric <= 1
    trains = EVALUATORS.entry(name).can("trains")
    assert epochs == (list(range(3)) if trains else [])
    assert (result.device == "table") == (not trains)


@pytest.mark.parametrize("name", BACKENDS.names())
def test_backend_contract(name):
    entry = BACKENDS.entry(name)
    assert set(entry.capabilities) <= set(BACKENDS.capabilities)
    assert callable(getattr(entry.factory, "check", None))


# MoleculeNet and peptides-func turn SMILES into graphs with rdkit (HIV alone takes minutes):
# their loaders have their own tests (tests/evaluators/test_molecules.py)
SLOW_TO_PROCESS = {"hiv", "bbbp", "bace", "tox21", "clintox", "sider", "esol", "freesolv", "lipo", "peptides-func"}


@pytest.mark.slow  # processes every dataset of ../shared/datasets once
@pytest.mark.parametrize("name", [n for n in DATASETS.names() if n not in EMBEDDED and n not in SLOW_TO_PROCESS])
def test_shared_dataset_contract(name, shared_datasets, cache_dir):
    from graphnas.evaluators.datasets import DatasetError

    try:
        bundle = load_dataset(name, shared_datasets, cache_dir=cache_dir)
    except DatasetError as err:  # a dataset the shared folder does not hold (nothing is downloaded)
        if "not found" not in str(err):
            raise
        pytest.skip(str(err).split(";")[0])
    assert bundle.info.task == DATASETS.entry(name).capabilities["task"]
    assert len(bundle.splits.train) and len(bundle.splits.val) and len(bundle.splits.test)
