"""Cost of a model: forward FLOPs, parameters, latency.

Convention: FLOPs = 2 x multiply-adds, forward pass only, on the inputs given (for node
tasks the whole graph; for graph tasks one batch).

``torch.utils.flop_counter.FlopCounterMode`` counts matmuls and convolutions but gives 0
for the gather/scatter ops that message passing is made of and for the CPU attention
kernel. We register formulas for those (no library counts them: fvcore and thop do not
either):

* scatter/index reductions (``scatter_add``, ``scatter_reduce``, ``index_add``): one
  multiply-add per source element, ``2 * src.numel()``; an aggregation over E edges of
  width d thus costs ``2 E d``, the cost of the equivalent sparse-dense matmul ``A X``.
* gathers (``index_select``, ``gather``): 0; they move data and do no arithmetic.
* ``_scaled_dot_product_flash_attention_for_cpu``: the formula PyTorch uses for the
  GPU kernels, ``2 B H Lq Lk d`` for the scores plus ``2 B H Lq Lk d_v`` for the values.

Element-wise work (activations, the exponentials of a softmax, GAT's attention-vector
products written as multiply-then-sum) is not counted, as FlopCounterMode counts none of it.

Weights pruned by weight sparsity (a linear layer with a ``weight_mask``) are
counted as a sparse product, 2 FLOPs per non-zero weight per row, and only their non-zeros
as parameters, the convention of the graph-lottery-ticket papers (UGS, TEDDY). The dense
kernel that runs them does not get faster; FlopCounterMode only sees shapes, so a forward
hook on each pruned layer subtracts the zeros' share.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

from graphnas.search_spaces.sparsity import pruned_weights

aten = torch.ops.aten


def _scatter_flops(self_shape, dim=None, index_shape=None, src_shape=None, *args, out_shape=None,
                   **kwargs) -> int:
    # scatter_add(self, dim, index, src) / scatter_reduce(self, dim, index, src, reduce)
    shape = src_shape if isinstance(src_shape, (tuple, list, torch.Size)) else index_shape
    return 2 * _numel(shape)


def _index_add_flops(self_shape, dim=None, index_shape=None, source_shape=None, *args, out_shape=None,
                     **kwargs) -> int:
    return 2 * _numel(source_shape)


def _zero_flops(*args, **kwargs) -> int:
    return 0


def _cpu_attention_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return sdpa_flop_count(query_shape, key_shape, value_shape)


def _numel(shape) -> int:
    n = 1
    for s in shape:
        n *= int(s)
    return n


MESSAGE_PASSING_FORMULAS: dict[Any, Callable[..., int]] = {
    aten.scatter_add: _scatter_flops,
    aten.scatter_add_: _scatter_flops,
    aten.scatter_reduce: _scatter_flops,  # keys are overload packets: FlopCounterMode looks up
    aten.scatter_reduce_: _scatter_flops,  # func._overloadpacket, never a single overload
    aten.index_add: _index_add_flops,
    aten.index_add_: _index_add_flops,
    aten.index_select: _zero_flops,
    aten.gather: _zero_flops,
    aten._scaled_dot_product_flash_attention_for_cpu: _cpu_attention_flops,
}


def flops_of(model: nn.Module, **inputs: Any) -> int:
    """Forward FLOPs of ``model(**inputs)`` in eval mode, message passing and attention
    included; pruned weights count as sparse (see the module docstring)."""
    was_training = model.training
    model.eval()
    counter = FlopCounterMode(display=False, custom_mapping=MESSAGE_PASSING_FORMULAS)
    zeros_share = [0]
    pruned = {m: n for m in model.modules() if (n := pruned_weights(m))}

    def discount(module: nn.Module, args: tuple, out: torch.Tensor) -> None:
        zeros_share[0] += 2 * (out.numel() // out.size(-1)) * pruned[module]

    hooks = [m.register_forward_hook(discount) for m in pruned]
    try:
        with torch.no_grad(), counter:
            model(**inputs)
    finally:
        model.train(was_training)
        for hook in hooks:
            hook.remove()
    return int(counter.get_total_flops()) - zeros_share[0]


def params_of(model: nn.Module) -> int:
    """Parameters; of a pruned weight, its unmasked entries."""
    return sum(p.numel() for p in model.parameters()) - sum(pruned_weights(m) for m in model.modules())


def latency_ms(model: nn.Module, repeats: int = 5, **inputs: Any) -> float:
    """Median wall-clock time of one forward pass in eval mode (after one warm-up)."""
    was_training = model.training
    model.eval()
    times = []
    try:
        with torch.no_grad():
            for i in range(repeats + 1):
                _sync(inputs)
                start = time.perf_counter()
                model(**inputs)
                _sync(inputs)
                if i:
                    times.append((time.perf_counter() - start) * 1e3)
    finally:
        model.train(was_training)
    return statistics.median(times)


def _sync(inputs: dict) -> None:
    x = inputs.get("x")
    if isinstance(x, torch.Tensor) and x.is_cuda:
        torch.cuda.synchronize(x.device)


@dataclass(frozen=True)
class Cost:
    flops: int
    params: int
    latency_ms: float


def measure_cost(model: nn.Module, repeats: int = 5, **inputs: Any) -> Cost:
    return Cost(flops_of(model, **inputs), params_of(model), latency_ms(model, repeats, **inputs))
