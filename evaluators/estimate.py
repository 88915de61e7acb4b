"""What a candidate will cost before it trains: FLOPs, the memory of its attention scores,
and a lower bound on its training time on this device.

A search must not learn that a candidate is unaffordable by training it: quadratic
attention at width 128 over a 10,000-node graph ran 22 minutes before anyone could tell.
Measuring FLOPs needs a forward pass, which for such a candidate is itself the problem, so
the estimate is analytic:

* per-node work: ``2 * N * P`` FLOPs for a model of ``P`` parameters applied to ``N`` nodes
  (every weight of a GNN is a per-node linear map: its multiply-adds run once per node);
* message passing: ``2 * E * d`` per layer (the sparse-dense product ``A X``, as
  :mod:`evaluators.cost` counts it);
* attention that scores every pair of nodes of a graph (``cost="quadratic"`` at
  registration): ``4 * n^2 * d`` FLOPs per layer and graph (scores and values), and
  ``2 * heads * n^2`` floats of scores and probabilities held for the backward pass.

A training epoch is counted as three forward passes over the training graphs (forward and
backward) plus one over the graphs it evaluates. Time is each kind of work at the speed that
its own kernel reaches on this device, measured once per process on a small problem (a dense
matrix product, a scatter-sum, masked scaled-dot-product attention): the work of one
candidate is then a lower bound on its time (overheads left out), and a candidate refused on
it would surely have run past its budget.
"""
from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from typing import Optional

import psutil
import torch

from graphnas.evaluators.datasets import DatasetBundle
from graphnas.search_spaces import Architecture, build_model
from graphnas.search_spaces.operators.attention import quadratic_forms

FLOAT_BYTES = 4
TRAINING_PASSES = 3  # forward + backward, in forward passes
EVALUATION_PASSES = 1


@dataclass(frozen=True)
class CostEstimate:
    """``flops``: one forward pass over the data a trial trains on (the whole graph of a
    node task, the training graphs of a graph task); ``attention_bytes``: the scores that
    quadratic attention holds at once (one batch); ``seconds_per_epoch``: a lower bound."""

    flops: int
    attention_bytes: int
    seconds_per_epoch: float

    def seconds(self, epochs: int) -> float:
        return self.seconds_per_epoch * epochs


@dataclass(frozen=True)
class GraphSizes:
    """What the estimate needs of a dataset: nodes and edges of one epoch's forward pass, and
    the graphs that attention scores in one batch (their node counts)."""

    nodes: int
    edges: int
    batch_graph_nodes: tuple[int, ...]  # per graph of the largest batch: attention is per graph

    @classmethod
    def of(cls, bundle: DatasetBundle, batch_size: int) -> "GraphSizes":
        if bundle.graphs is None:  # a node task: one graph, full batch
            n = bundle.data.num_nodes
            return cls(n, bundle.data.num_edges, (n,))
        train = [bundle.graphs[i] for i in bundle.splits.train.tolist()] or bundle.graphs
        largest = sorted((g.num_nodes for g in train), reverse=True)[:batch_size]
        return cls(sum(g.num_nodes for g in train), sum(g.num_edges for g in train), tuple(largest))


def estimate_cost(arch: Architecture, bundle: DatasetBundle, batch_size: int = 32,
                  device: Optional[torch.device] = None, sizes: Optional[GraphSizes] = None) -> CostEstimate:
    """``sizes``: the dataset's, measured once per run by the caller (they depend on the data
    alone); measured here when not given."""
    sizes = sizes or GraphSizes.of(bundle, batch_size)
    params = sum(p.numel() for p in build_model(arch, bundle.info).parameters())  # no forward pass
    quadratic = set(quadratic_forms())
    layers = arch.layers
    per_node = 2 * sizes.nodes * params
    messages = sum(2 * sizes.edges * arch.hidden_dim for _ in layers)
    square = sum(n * n for n in sizes.batch_graph_nodes)
    attending = [layer for layer in layers if layer.attention in quadratic]
    batches = max(1, sizes.nodes // max(1, sum(sizes.batch_graph_nodes)))  # graph tasks: batches per epoch
    attention_flops = sum(4 * square * arch.hidden_dim for _ in attending) * batches
    attention_bytes = sum(2 * layer.heads * square * FLOAT_BYTES for layer in attending)
    flops = per_node + messages + attention_flops
    rates = kernel_rates(device or torch.device("cpu"), torch.get_num_threads())
    forward_seconds = per_node / rates.matmul + messages / rates.scatter + attention_flops / rates.attention
    return CostEstimate(flops, attention_bytes, (TRAINING_PASSES + EVALUATION_PASSES) * forward_seconds)


@dataclass(frozen=True)
class KernelRates:
    """FLOP/s that each kind of work reaches on a device."""

    matmul: float
    scatter: float
    attention: float


def _best_time(fn, device: torch.device, repeats: int = 3) -> float:
    """Seconds of one call of ``fn``: torch's own timer (it warms up, and synchronises CUDA)."""
    from torch.utils import benchmark

    return max(benchmark.Timer(stmt="fn()", globals={"fn": fn}).timeit(repeats).median, 1e-9)


@functools.lru_cache(maxsize=None)
def kernel_rates(device: torch.device, threads: int) -> KernelRates:
    """Measured once per process, device and thread count (tens of milliseconds): cached
    because it depends only on the machine, never on a trial."""
    from torch_geometric.utils import scatter

    gen = torch.Generator(device=device).manual_seed(0)
    a, b = (torch.randn(512, 512, device=device, generator=gen) for _ in range(2))
    nodes, edges, width = 4096, 65536, 32
    src = torch.randn(edges, width, device=device, generator=gen)
    index = torch.randint(0, nodes, (edges,), device=device, generator=gen)
    n, heads = 512, 4
    q = torch.randn(1, heads, n, width // heads, device=device, generator=gen)
    mask = torch.ones(1, 1, 1, n, dtype=torch.bool, device=device)
    with torch.no_grad():
        matmul = 2 * 512 ** 3 / _best_time(lambda: a @ b, device)
        messages = 2 * edges * width / _best_time(lambda: scatter(src, index, 0, nodes, reduce="sum"), device)
        attention = 4 * n * n * width / _best_time(
            lambda: torch.nn.functional.scaled_dot_product_attention(q, q, q, attn_mask=mask), device)
    return KernelRates(matmul, messages, attention)


def available_memory(device: torch.device) -> int:
    """Bytes a trial may still allocate: free GPU memory, or the machine's available RAM."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    return psutil.virtual_memory().available


@dataclass(frozen=True)
class TrialBudget:
    """What one trial may spend: seconds (None: no limit) and bytes of attention scores."""

    seconds: Optional[float]
    memory_bytes: int

    def refusal(self, estimate: CostEstimate, epochs: int) -> Optional[str]:
        """Why a candidate of this estimate cannot fit (one line), or None."""
        if estimate.attention_bytes > self.memory_bytes:
            return (f"its quadratic attention holds {estimate.attention_bytes / 2 ** 30:.1f} GiB of scores, more than "
                    f"the {self.memory_bytes / 2 ** 30:.1f} GiB this device has free")
        if self.seconds is not None and estimate.seconds(epochs) > self.seconds:
            return (f"{epochs} epochs of {estimate.flops / 1e9:,.3g} GFLOPs forward take at least "
                    f"{estimate.seconds(epochs):,.3g} s on this device, more than its budget of {self.seconds:,.3g} s")
        return None


__all__ = ["CostEstimate", "GraphSizes", "KernelRates", "TrialBudget", "available_memory", "estimate_cost",
           "kernel_rates"]
