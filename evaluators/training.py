"""Train and measure one architecture: the evaluator that strategies call.

Node classification full-batch, or on graphs above ``TrainConfig.sample_above_nodes``
in neighbour-sampled mini-batches (PyG's NeighborLoader); graph tasks in mini-batches of
graphs. AdamW and early stopping on the validation metric; the test metric is read at
the epoch of best validation and only reported.
"""
from __future__ import annotations

import contextlib
import copy
import math
import time
from dataclasses import dataclass, replace
from typing import Any, Callable, Optional

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from torch import Tensor, nn
from torch_geometric import seed_everything

from graphnas.evaluators.cost import measure_cost
from graphnas.evaluators.datasets import DatasetBundle
from graphnas.evaluators.splits import fold_splits
from graphnas.evaluators.memory import PeakMemory
from graphnas.evaluators.metrics import get_metric
from graphnas.evaluators.result import TrialResult
from graphnas.search_spaces import Architecture, DataInfo, build_model, model_inputs
from graphnas.search_spaces.adjacency import cached_normalisation, uses_sparse_adjacency
from graphnas.settings_help import about

Report = Callable[[int, float], bool]  # (epoch, validation value) -> stop this trial?


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""


class TrialPruned(RuntimeError):
    """``report`` asked to stop this trial early."""


class TrialTimeout(RuntimeError):
    """The trial ran past ``TrainConfig.trial_timeout``; the search records it as failed."""


class TrainConfig(BaseModel):
    """How candidates are trained. Passed explicitly; there is no global config."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    epochs: int = Field(default=200, ge=1, description=about("train.epochs"))
    patience: int = Field(default=50, ge=1, description=about("train.patience"))
    seed: int = 0
    device: str = Field(default="auto", description=about("train.device"))
    amp: bool = True  # bf16 autocast, used on CUDA only
    metric: Optional[str] = Field(default=None, description=about("train.metric"))  # None: the dataset's own
    latency_repeats: int = Field(default=5, ge=1)
    batch_size: int = Field(default=32, ge=1)  # graphs per mini-batch (graph tasks)
    # > 1: stratified k-fold cross-validation (graph tasks, TU convention)
    folds: int = Field(default=1, ge=1, description=about("train.folds"))
    # With folds > 1: train and score this fold only (its training part, its own validation
    # part, its test part); the searches inside each fold of Errica et al.'s protocol use it.
    fold: Optional[int] = Field(default=None, ge=0)
    # Which of a dataset's fixed splits to train on (the heterophily graphs have 10; others one)
    split: int = Field(default=0, ge=0, description=about("train.split"))
    # Seconds a trial may train (all its folds together); past it, it stops at the end of
    # the epoch it is in and fails with TrialTimeout. None: no limit.
    trial_timeout: Optional[float] = Field(default=None, gt=0, description=about("train.trial_timeout"))
    # Node tasks on graphs with more nodes than this train on NeighborLoader mini-batches
    # of `node_batch_size` seed nodes, sampling fanouts[i] in-neighbours at hop i (the last
    # fan-out repeats for deeper models); validation and test use the same sampling.
    sample_above_nodes: int = Field(default=100_000, ge=1, description=about("train.sample_above_nodes"))
    fanouts: tuple[int, ...] = Field(default=(10, 10), min_length=1, description=about("train.fanouts"))
    node_batch_size: int = Field(default=1024, ge=1, description=about("train.node_batch_size"))
    # Architectures with sparsity: soft masks are learned for min(mask_epochs, epochs // 2)
    # epochs (Adam at mask_lr, the penalty weighted by sparsity_penalty), then made hard;
    # the pruned model trains on, and only its epochs are selected from and reported.
    mask_epochs: int = Field(default=30, ge=0)
    mask_lr: float = Field(default=0.05, gt=0)
    sparsity_penalty: float = Field(default=1.0, ge=0)

    @field_validator("fanouts")
    @classmethod
    def _fanouts(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if any(f == 0 or f < -1 for f in value):
            raise ValueError(f"fanouts must be positive (or -1 for all neighbours), got {list(value)}")
        return value

    @model_validator(mode="after")
    def _fold(self) -> "TrainConfig":
        if self.fold is not None and self.fold >= self.folds:
            raise ValueError(f"fold must be below folds ({self.folds}), got {self.fold}")
        return self


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def check_device(device: str) -> None:
    """ValueError, one line, for a device this machine does not have: before any work, since
    every trial would otherwise fail on it."""
    try:
        dev = resolve_device(device)
    except RuntimeError:
        raise ValueError(f"--device {device!r}: expected auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            why = "this torch is built without CUDA" if torch.version.cuda is None else "no GPU is visible"
            raise ValueError(f"--device {device}: CUDA is not available on this machine ({why}); use --device auto "
                             "or cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA device(s)")


@dataclass
class TrainedModel:
    """A model holding the weights of its best validation epoch, and its measured figures."""

    model: nn.Module
    result: TrialResult


def evaluate(arch: Architecture, bundle: DatasetBundle, config: TrainConfig,
             report: Optional[Report] = None) -> TrialResult:
    """Train ``arch`` from scratch on ``bundle`` and measure it. Raises on failure
    (:class:`TrainingDiverged`, out of memory, ...): the caller records a failed trial.
    With ``config.folds > 1``, the mean over folds (see :func:`cross_validate`), or with
    ``config.fold`` set that one fold's figures."""
    if config.folds > 1 and config.fold is None:
        return cross_validate(arch, bundle, config, report)[0]
    fold_bundle, fold_config = one_fold(bundle, config)
    return train_model(arch, fold_bundle, fold_config, report).result


def one_fold(bundle: DatasetBundle, config: TrainConfig) -> tuple[DatasetBundle, TrainConfig]:
    """The bundle and config of a single training: with ``config.fold`` set, the bundle split
    as that fold of ``config.folds`` and a one-split config; otherwise both unchanged."""
    if config.fold is None or config.folds == 1:
        return bundle, config
    splits = fold_splits(bundle, config.folds)[config.fold]
    return replace(bundle, splits=splits), config.model_copy(update={"folds": 1, "fold": None})


def cross_validate(arch: Architecture, bundle: DatasetBundle, config: TrainConfig,
                   report: Optional[Report] = None) -> tuple[TrialResult, list[TrialResult]]:
    """Train once per fold; the result's validation and test metrics are the means over
    folds (costs are those of the first fold's model). Early stopping of the trial
    (``report``) watches the first fold."""
    single = config.model_copy(update={"folds": 1})
    deadline = _deadline(config)  # the limit is the trial's, across its folds
    results = [train_model(arch, replace(bundle, splits=splits), single, report if i == 0 else None,
                           deadline=deadline).result
               for i, splits in enumerate(fold_splits(bundle, config.folds))]
    mean = lambda key: float(np.mean([getattr(r, key) for r in results]))  # noqa: E731
    first = results[0]
    return replace(first, val_metric=mean("val_metric"), test_metric=mean("test_metric"),
                   train_time_s=sum(r.train_time_s for r in results), peak_memory_mib=max(r.peak_memory_mib for r in results)), results


class _NodeTask:
    """Full-batch training on one graph; splits index nodes."""

    def __init__(self, bundle: DatasetBundle, arch: Architecture, device: torch.device, config: TrainConfig) -> None:
        data = bundle.data.to(device)
        self.inputs, self.y = model_inputs(data, arch), data.y
        if device.type == "cpu" and uses_sparse_adjacency(arch, bundle.info):
            # one sparse product per layer instead of a gather and a scatter (search_spaces.adjacency);
            # CPU only: that is where it was measured, and bf16 autocast on CUDA would hand the
            # product a bf16 x against a float32 matrix
            adj_t = bundle.sparse_adjacency()  # built once per dataset, not per trial
            self.inputs["edge_index"] = data.edge_index if adj_t is None else adj_t
        self.penalty = config.sparsity_penalty
        self.splits = {name: getattr(bundle.splits, name).to(device) for name in ("train", "val", "test")}

    def train_epoch(self, model: nn.Module, opt: torch.optim.Optimizer, autocast) -> None:
        opt.zero_grad(set_to_none=True)
        with autocast:
            loss = F.cross_entropy(model(**self.inputs)[self.splits["train"]].float(), self.y[self.splits["train"]])
        _step(loss + self.penalty * model.mask_penalty(), opt)

    def predict(self, model: nn.Module, autocast, names: tuple[str, ...]) -> dict[str, tuple[Tensor, Tensor]]:
        """(prediction, target) of the splits in ``names``; one full-graph pass scores all
        nodes, so this task returns val and test whichever were asked."""
        with torch.no_grad(), autocast:
            out = model(**self.inputs)
        return {name: (out[idx], self.y[idx]) for name, idx in self.splits.items() if name != "train"}


class _SampledNodeTask:
    """Node task on a large graph: NeighborLoader mini-batches; each batch's first
    ``batch_size`` nodes are its seeds, the only ones scored. Quadratic attention forms are
    refused (:func:`check_sampled_attention`); linear forms attend within the sampled
    batch, as SGFormer and Polynormer do in their own mini-batch training."""

    def __init__(self, bundle: DatasetBundle, arch: Architecture, device: torch.device, config: TrainConfig) -> None:
        from graphnas.evaluators.sampling import neighbor_loader, neighbor_sampler

        num_nodes = bundle.data.num_nodes
        check_sampled_attention([layer.attention for layer in arch.layers], num_nodes, config)
        hops = max(arch.num_layers, 1)
        fanouts = (list(config.fanouts) + [config.fanouts[-1]] * hops)[:hops]
        self.arch, self.device, self.seed, self.penalty = arch, device, config.seed, config.sparsity_penalty
        data = bundle.data
        sampler = neighbor_sampler(data, fanouts)  # one CSC index for the three loaders
        self.loaders = {name: neighbor_loader(data, getattr(bundle.splits, name), fanouts, config.node_batch_size,
                                              shuffle=name == "train", seed=config.seed, sampler=sampler)
                        for name in ("train", "val", "test")}

    def _forward(self, model: nn.Module, batch) -> tuple[Tensor, Tensor]:
        batch = batch.to(self.device)
        return model(**model_inputs(batch, self.arch))[:batch.batch_size], batch.y[:batch.batch_size]

    def train_epoch(self, model: nn.Module, opt: torch.optim.Optimizer, autocast) -> None:
        for batch in self.loaders["train"]:
            opt.zero_grad(set_to_none=True)
            with autocast:
                out, y = self._forward(model, batch)
                loss = F.cross_entropy(out.float(), y)
            _step(loss + self.penalty * model.mask_penalty(), opt)

    def predict(self, model: nn.Module, autocast, names: tuple[str, ...]) -> dict[str, tuple[Tensor, Tensor]]:
        out = {}
        with torch.no_grad(), autocast:
            for name in names:
                loader = self.loaders[name]
                generator = getattr(loader.node_sampler, "generator", None)
                if generator is not None:  # the same sampled neighbourhoods every epoch
                    generator.manual_seed(self.seed)
                parts = [self._forward(model, batch) for batch in loader]
                out[name] = (torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts]))
        return out


def check_sampled_attention(attentions: list[str], num_nodes: int, config: TrainConfig,
                            where: str = "the architecture") -> None:
    """Refuse attention forms that score all node pairs on a graph trained in sampled
    batches (more than ``config.sample_above_nodes`` nodes): they would need the whole
    N x N graph at once, and within a sampled batch they would no longer be global."""
    from graphnas.search_spaces.operators.attention import forms_costing, quadratic_forms

    if num_nodes <= config.sample_above_nodes:
        return
    bad = sorted(set(attentions) & set(quadratic_forms()))
    if bad:
        raise ValueError(
            f"{where} uses attention {', '.join(bad)}, which scores all N^2 node pairs; this graph has "
            f"{num_nodes:,} nodes (> sample_above_nodes={config.sample_above_nodes:,}), so it trains on "
            f"NeighborLoader mini-batches where such attention is neither affordable nor global. Use a "
            f"local form ({', '.join(forms_costing('edges'))}), a linear one ({', '.join(forms_costing('linear'))}) "
            f"or none, or raise --sample-above-nodes")


class _GraphTask:
    """Mini-batch training over graphs; splits index graphs."""

    def __init__(self, bundle: DatasetBundle, arch: Architecture, device: torch.device, config: TrainConfig) -> None:
        from torch_geometric.loader import DataLoader

        self.arch, self.device, self.task, self.penalty = arch, device, bundle.info.task, config.sparsity_penalty
        pick = lambda idx: [bundle.graphs[i] for i in idx.tolist()]  # noqa: E731
        # Every loader has its own generator: iterating a DataLoader draws its base seed from
        # its generator, the global one when it has none, so evaluation would otherwise move
        # the random numbers of training (dropout, shuffling) and the test split would have
        # to be scored every epoch to keep a seeded run in step.
        seeded = lambda: torch.Generator().manual_seed(config.seed)  # noqa: E731
        self.train = DataLoader(pick(bundle.splits.train), batch_size=config.batch_size, shuffle=True,
                                generator=seeded())
        self.evals = {name: DataLoader(pick(getattr(bundle.splits, name)), batch_size=config.batch_size,
                                       generator=seeded()) for name in ("val", "test")}

    def train_epoch(self, model: nn.Module, opt: torch.optim.Optimizer, autocast) -> None:
        for batch in self.train:
            batch = batch.to(self.device)
            opt.zero_grad(set_to_none=True)
            with autocast:
                loss = task_loss(model(**model_inputs(batch, self.arch)).float(), batch.y, self.task)
            _step(loss + self.penalty * model.mask_penalty(), opt)

    def predict(self, model: nn.Module, autocast, names: tuple[str, ...]) -> dict[str, tuple[Tensor, Tensor]]:
        """The splits asked for (the test split only on epochs whose validation improved)."""
        out = {}
        with torch.no_grad(), autocast:
            for name in names:
                parts = [(model(**model_inputs(b.to(self.device), self.arch)), b.y) for b in self.evals[name]]
                out[name] = (torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts]))
        return out


OPTIMIZERS = {"adamw": torch.optim.AdamW,  # decoupled weight decay (Loshchilov & Hutter 2019)
              "adam": torch.optim.Adam}  # L2 decay in the gradient: the GCN and GAT papers' protocol


@dataclass(frozen=True)
class LRSchedule:
    """A learning-rate schedule: what an export says of it, and PyTorch's scheduler for an
    optimiser over ``epochs`` (None: the lr stays), stepped once per epoch."""

    text: str
    build: Callable[[torch.optim.Optimizer, int], Optional[torch.optim.lr_scheduler.LRScheduler]]

    def __call__(self, opt: torch.optim.Optimizer, epochs: int) -> Optional[torch.optim.lr_scheduler.LRScheduler]:
        return self.build(opt, epochs)


# The values of search_spaces.architecture.LRSchedule.
LR_SCHEDULES: dict[str, LRSchedule] = {
    "constant": LRSchedule("constant", lambda opt, epochs: None),
    # Xu et al. 2019 (GIN): halved every 50 epochs
    "step": LRSchedule("StepLR: halved every 50 epochs",
                       lambda opt, epochs: torch.optim.lr_scheduler.StepLR(opt, step_size=50, gamma=0.5)),
    # to 0 over the run's epochs (the GraphGPS recipes, without their warm-up)
    "cosine": LRSchedule("CosineAnnealingLR to 0 over the epochs",
                         lambda opt, epochs: torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(epochs, 1))),
}


def training_recipe(arch: Architecture, config: TrainConfig, info: DataInfo) -> dict[str, Any]:
    """How :func:`train_model` trains ``arch``, in the terms of a training script: what an
    export states beside the model so that its figures can be reproduced."""
    task_loss_name = ("binary cross-entropy with logits over the labels present" if info.task == "graph_multilabel"
                      else "L1 (mean absolute error)" if info.task == "graph_regression" else "cross-entropy")
    recipe: dict[str, Any] = {
        "optimizer": f"{OPTIMIZERS[arch.optimizer].__module__}.{OPTIMIZERS[arch.optimizer].__name__}",
        "weight_decay_kind": "decoupled (AdamW)" if arch.optimizer == "adamw" else "L2 in the gradient (Adam)",
        "lr": arch.lr, "lr_schedule": LR_SCHEDULES[arch.lr_schedule].text, "weight_decay": arch.weight_decay,
        "dropout": arch.dropout, "input_dropout": arch.dropout if arch.input_dropout is None else arch.input_dropout,
        "attention_dropout": arch.attention_dropout,
        "feature_norm": ("row-normalised features (PyG's NormalizeFeatures)" if arch.feature_norm == "row"
                         else "auto: row-normalised features (PyG's NormalizeFeatures) where they are non-negative "
                              "integers (bag-of-words counts), else the features as loaded"
                         if arch.feature_norm == "auto" else "the features as loaded"),
        "loss": task_loss_name, "epochs": config.epochs, "patience": config.patience,
        "selection": (f"the epoch with the best validation {config.metric or 'metric (the dataset default)'}, stopping after "
                      f"{config.patience} epochs without improvement"),
        "seed": config.seed,
    }
    if info.graph_level:
        recipe["batch_size"] = config.batch_size
        recipe["folds"] = config.folds
    else:
        recipe["batches"] = (f"full graph, unless it has more than {config.sample_above_nodes} nodes: then "
                             f"NeighborLoader batches of {config.node_batch_size} seeds, fan-outs {list(config.fanouts)}")
    if not arch.sparsity_targets.dense:
        recipe["sparsity"] = (f"soft masks learned for min({config.mask_epochs}, epochs // 2) epochs at lr "
                              f"{config.mask_lr} (penalty weight {config.sparsity_penalty}), then made hard")
    return recipe


def with_feature_norm(bundle: DatasetBundle, arch: Architecture) -> DatasetBundle:
    """``bundle`` with the features ``arch.feature_norm`` reads. A search precomputes them
    once for its space (``load_dataset(feature_norms=...)``); a bundle loaded without them
    gets them here, in memory."""
    from graphnas.evaluators.datasets import add_feature_norms
    from graphnas.search_spaces.builder import FEATURE_NORM_ATTRS

    attr = FEATURE_NORM_ATTRS.get(arch.feature_norm)
    if attr is None or getattr(bundle.data, attr, None) is not None:
        return bundle
    return add_feature_norms(bundle, {arch.feature_norm}, cache_dir=None)


def _optimizer(model: nn.Module, arch: Architecture, config: TrainConfig) -> torch.optim.Optimizer:
    """The architecture's optimiser (Adam or AdamW) at its lr and weight decay; mask logits (gates, soft weight
    masks) in their own group at ``config.mask_lr`` without decay, which would pull them
    to 0.5 rather than let the penalty and the loss rank them."""
    masks = [p for name, p in model.named_parameters() if name.endswith(("logits", "scores"))]
    ids = {id(p) for p in masks}
    groups = [{"params": [p for p in model.parameters() if id(p) not in ids]}]
    if masks:
        groups.append({"params": masks, "lr": config.mask_lr, "weight_decay": 0.0})
    return OPTIMIZERS[arch.optimizer](groups, lr=arch.lr, weight_decay=arch.weight_decay)


def _optimizer_and_schedule(model: nn.Module, arch: Architecture, config: TrainConfig,
                            epochs: int) -> tuple[torch.optim.Optimizer, Optional[torch.optim.lr_scheduler.LRScheduler]]:
    """:func:`_optimizer` and the architecture's lr schedule over the ``epochs`` left."""
    opt = _optimizer(model, arch, config)
    return opt, LR_SCHEDULES[arch.lr_schedule](opt, epochs)


def trains_sampled(bundle: DatasetBundle, config: TrainConfig) -> bool:
    """Whether this node task's graph is above ``sample_above_nodes``: NeighborLoader batches."""
    return not bundle.info.graph_level and bundle.data.num_nodes > config.sample_above_nodes


def _task_class(bundle: DatasetBundle, config: TrainConfig) -> type:
    if bundle.info.graph_level:
        return _GraphTask
    return _SampledNodeTask if trains_sampled(bundle, config) else _NodeTask


def task_loss(out: Tensor, y: Tensor, task: str = "") -> Tensor:
    """Cross-entropy for class labels (integers); for ``graph_multilabel``, binary
    cross-entropy per label over the labels present (NaN = missing, the OGB convention);
    L1 for regression targets (other floats)."""
    if task == "graph_multilabel":
        y = y.view(out.shape)
        present = ~torch.isnan(y)
        return F.binary_cross_entropy_with_logits(out[present], y[present])
    if y.is_floating_point():
        return F.l1_loss(out.view(len(y), -1), y.view(len(y), -1))
    return F.cross_entropy(out, y)


def _step(loss: Tensor, opt: torch.optim.Optimizer) -> None:
    if not torch.isfinite(loss):
        raise TrainingDiverged(f"loss is {loss.item()}")
    loss.backward()
    opt.step()


def _deadline(config: TrainConfig) -> Optional[float]:
    return time.monotonic() + config.trial_timeout if config.trial_timeout else None


def train_model(arch: Architecture, bundle: DatasetBundle, config: TrainConfig,
                report: Optional[Report] = None, deadline: Optional[float] = None) -> TrainedModel:
    """As :func:`evaluate`, and keep the model, restored to its best validation epoch (the
    epoch whose figures are reported).

    Node tasks train full-batch, or on NeighborLoader mini-batches above
    ``config.sample_above_nodes`` nodes (their FLOPs and latency are still those of one
    forward pass over the whole graph); graph tasks in mini-batches of ``config.batch_size``. For
    graph tasks FLOPs are per graph (the mean over the bundle's sample batch of training
    graphs) and latency is that of the sample batch."""
    deadline = deadline if deadline is not None else _deadline(config)
    seed_everything(config.seed)
    device = resolve_device(config.device)
    metric = get_metric(config.metric or bundle.metric)
    bundle = with_feature_norm(bundle, arch)
    model = build_model(arch, bundle.info).to(device)
    task = _task_class(bundle, config)(bundle, arch, device, config)
    autocast = torch.autocast(device_type=device.type, dtype=torch.bfloat16,
                              enabled=config.amp and device.type == "cuda")
    opt, schedule = _optimizer_and_schedule(model, arch, config, config.epochs)
    harden_at = min(config.mask_epochs, config.epochs // 2) if model.has_soft_masks else -1

    best_val, test_at_best, best_epoch, stale = metric.worst, math.nan, -1, 0
    best_state = copy.deepcopy(model.state_dict())
    start = time.perf_counter()
    epoch = 0
    # Full batch: every forward sees the one graph, so its GCN normalisation is computed once;
    # not with edge masks, whose hardening removes edges mid-training
    fixed_graph = isinstance(task, _NodeTask) and (arch.sparsity is None or arch.sparsity.edges == 0)
    normalised_once = cached_normalisation(model) if fixed_graph else contextlib.nullcontext()
    with PeakMemory(device) as peak, normalised_once:
        for epoch in range(config.epochs):
            if epoch == harden_at:  # masks made hard, pruned parts removed: select from here on
                model.harden()
                opt, schedule = _optimizer_and_schedule(model, arch, config, config.epochs - epoch)
                best_val, test_at_best, best_epoch, stale = metric.worst, math.nan, -1, 0
                best_state = copy.deepcopy(model.state_dict())
            model.train()
            try:
                task.train_epoch(model, opt, autocast)
            except TrainingDiverged as err:
                raise TrainingDiverged(f"{err} at epoch {epoch}") from None
            if schedule is not None:
                schedule.step()
            model.eval()
            outputs = task.predict(model, autocast, ("val",))
            val_value = metric(*outputs["val"])
            if metric.better(val_value, best_val):  # test is scored only here, and only reported
                test = outputs["test"] if "test" in outputs else task.predict(model, autocast, ("test",))["test"]
                best_val, test_at_best, best_epoch, stale = val_value, metric(*test), epoch, 0
                best_state = copy.deepcopy(model.state_dict())
            elif epoch > harden_at:  # no early stop while masks are still soft
                stale += 1
            if report is not None and report(epoch, val_value):
                raise TrialPruned(f"stopped at epoch {epoch} with validation {metric.name} {val_value:.4f}")
            if stale >= config.patience:
                break
            if deadline is not None and time.monotonic() > deadline:
                raise TrialTimeout(f"stopped at epoch {epoch} after running past --trial-timeout "
                                   f"{config.trial_timeout:g} s")
    train_time = time.perf_counter() - start
    model.load_state_dict(best_state)

    sample = bundle.data.to(device)
    cost = measure_cost(model, config.latency_repeats, **model_inputs(sample, arch))
    flops = cost.flops // sample.num_graphs if bundle.info.graph_level else cost.flops
    result = TrialResult(arch_id=arch.arch_id, arch_json=arch.to_json(), metric=metric.name,
                         val_metric=best_val, test_metric=test_at_best, flops=flops,
                         params=cost.params, latency_ms=cost.latency_ms, train_time_s=train_time,
                         epochs=epoch + 1, best_epoch=best_epoch, device=str(device), peak_memory_mib=peak.mib)
    return TrainedModel(model.eval(), result)
