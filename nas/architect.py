"""The bi-level architecture step of a differentiable search (``architect.py`` in the
original DARTS): the network weights learn on one part of the training data and the
supernet's architecture parameters alpha on the other, first-order by default or with
DARTS' unrolled second-order gradient. The supernet itself is :mod:`nas.supernet`.
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import cycle
from typing import Any, Callable, Optional

import torch
from torch import Tensor, nn
from torch.func import functional_call

from graphnas.evaluators.datasets import DatasetBundle
from graphnas.evaluators.training import TrainingDiverged, task_loss
from graphnas.nas.darts import DartsConfig
from graphnas.nas.supernet import Supernet
from graphnas.search_spaces import Architecture
from graphnas.search_spaces.builder import model_inputs

Step = Callable[[Callable[..., Tensor]], tuple[Tensor, Tensor]]  # forward -> (weight loss, alpha loss)


def bilevel_batches(bundle: DatasetBundle, arch: Architecture, device: torch.device, arch_fraction: float,
                    seed: int, batch_size: int = 32) -> Callable[[], list[Step]]:
    """Split the training set (nodes or graphs) at random into a weight part (1 -
    ``arch_fraction``) and an alpha part; return a function giving one epoch of steps, each
    mapping a forward function to (loss on a weight batch, loss on an alpha batch).

    Node tasks: one full-graph forward serves both parts (the parts are disjoint node sets
    of the same graph), so a step costs one forward. Graph tasks: one batch of each part,
    the alpha part cycled when it runs out first."""
    train = bundle.splits.train
    perm = train[torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))]
    cut = max(1, min(len(perm) - 1, round(len(perm) * (1 - arch_fraction))))
    w_idx, a_idx = perm[:cut], perm[cut:]
    if not bundle.info.graph_level:
        data = bundle.data.to(device)
        inputs = model_inputs(data, arch)
        w_idx, a_idx = w_idx.to(device), a_idx.to(device)

        def node_step(fwd: Callable[..., Tensor]) -> tuple[Tensor, Tensor]:
            out = fwd(**inputs)
            return (task_loss(out[w_idx].float(), data.y[w_idx]), task_loss(out[a_idx].float(), data.y[a_idx]))
        return lambda: [node_step]

    from torch_geometric.loader import DataLoader

    def loader(idx: Tensor, part: int) -> DataLoader:
        return DataLoader([bundle.graphs[i] for i in idx.tolist()], batch_size=batch_size, shuffle=True,
                          generator=torch.Generator().manual_seed(seed + part))

    w_loader, a_loader = loader(w_idx, 0), loader(a_idx, 1)

    def graph_step(w_batch, a_batch) -> Step:
        w_batch, a_batch = w_batch.to(device), a_batch.to(device)
        return lambda fwd: tuple(task_loss(fwd(**model_inputs(b, arch)).float(), b.y, bundle.info.task)
                                 for b in (w_batch, a_batch))
    return lambda: [graph_step(w, a) for w, a in zip(w_loader, cycle(a_loader))]


@dataclass
class AlphaSearch:
    """One bi-level search of a supernet (one ``cost_weight``).

    First-order steps update alpha (on the alpha part, plus the cost penalty) and the
    weights (on the weight part) from the same forward pass, both at the current point:
    DARTS' first-order approximation without its second forward. ``second_order`` uses
    DARTS' unrolled gradient for alpha instead."""

    net: Supernet
    config: DartsConfig
    cost_weight: float = 0.0

    def run(self, epoch_steps: Callable[[], list[Step]],
            on_epoch: Optional[Callable[[int], None]] = None) -> list[dict[str, Any]]:
        """Train; return the ``alphas.csv`` rows (softmax weights after every epoch)."""
        cfg, net = self.config, self.net
        lr = net.base.lr
        w_opt = torch.optim.AdamW(net.weight_parameters(), lr=lr, weight_decay=net.base.weight_decay)
        a_opt = torch.optim.Adam(net.arch_parameters(), lr=cfg.alpha_lr, betas=(0.5, 0.999),
                                 weight_decay=cfg.alpha_weight_decay)
        alphas = net.arch_parameters()
        rows = []
        for epoch in range(cfg.epochs):
            net.train()
            net.tau = cfg.tau_max - (cfg.tau_max - cfg.tau_min) * epoch / max(1, cfg.epochs - 1)
            for step in epoch_steps():
                if cfg.second_order:
                    a_grads = self._unrolled_alpha_grad(step, lr)
                    w_loss, _ = step(net)
                else:
                    w_loss, a_loss = step(net)
                    a_grads = torch.autograd.grad(a_loss + self._penalty(), alphas, retain_graph=True,
                                                  allow_unused=True)
                if not torch.isfinite(w_loss):
                    raise TrainingDiverged(f"supernet loss is {w_loss.item()} at epoch {epoch}")
                w_opt.zero_grad(set_to_none=True)
                w_loss.backward()
                for a, g in zip(alphas, a_grads):  # alpha learns from the alpha part only
                    a.grad = g if g is not None else torch.zeros_like(a)
                nn.utils.clip_grad_norm_(net.weight_parameters(), 5.0)
                w_opt.step()
                a_opt.step()
            rows += [{"epoch": epoch, **r} for r in net.weights_table()]
            if on_epoch:
                on_epoch(epoch)
        return rows

    def _penalty(self) -> Tensor | float:
        return self.cost_weight * self.net.expected_cost() if self.cost_weight else 0.0

    def _unrolled_alpha_grad(self, step: Step, xi: float) -> list[Tensor]:
        """DARTS' second-order gradient: grad_alpha L_a(w'), w' = w - xi grad_w L_w(w), minus
        xi times the Hessian-vector product, by finite differences (DARTS eq. 8)."""
        net = self.net
        named = [(n, p) for n, p in net.named_parameters() if not n.startswith("alphas.")]
        names, weights = [n for n, _ in named], [p for _, p in named]
        alphas = net.arch_parameters()

        def at(params: dict[str, Tensor]) -> Callable[..., Tensor]:
            return lambda **inputs: functional_call(net, params, args=(), kwargs=inputs)

        def zeros_for_none(grads, like) -> list[Tensor]:
            return [g if g is not None else torch.zeros_like(x) for g, x in zip(grads, like)]

        grads = zeros_for_none(torch.autograd.grad(step(net)[0], weights, allow_unused=True), weights)
        virtual = {n: (p - xi * g).detach().requires_grad_(True) for n, p, g in zip(names, weights, grads)}
        loss = step(at(virtual))[1] + self._penalty()
        out = zeros_for_none(torch.autograd.grad(loss, alphas + list(virtual.values()), allow_unused=True),
                             alphas + weights)
        d_alpha, d_w = out[:len(alphas)], out[len(alphas):]
        eps = 0.01 / (torch.sqrt(sum((d * d).sum() for d in d_w)) + 1e-12)

        def alpha_grad(sign: float) -> list[Tensor]:
            shifted = {n: (p + sign * eps * d).detach() for n, p, d in zip(names, weights, d_w)}
            return zeros_for_none(torch.autograd.grad(step(at(shifted))[0], alphas, allow_unused=True), alphas)

        plus, minus = alpha_grad(1.0), alpha_grad(-1.0)
        return [da - xi * (gp - gm) / (2 * eps) for da, gp, gm in zip(d_alpha, plus, minus)]
