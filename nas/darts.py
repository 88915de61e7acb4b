"""Differentiable architecture search over a space file's operator choices.

* ``darts`` (Liu et al., ICLR 2019): every per-layer operator choice (``mpnn``,
  ``attention``, ``kv_source``) becomes a :class:`MixedOp`, the softmax(alpha)-weighted sum
  of its candidates; network weights and architecture parameters alpha are trained
  bi-level on two disjoint parts of the training data (DARTS-GT's 60/40), first-order by
  default, second-order (unrolled, finite-difference Hessian) as an option.
* ``gdas`` (Dong & Yang, CVPR 2019): a hard Gumbel-softmax sample per mixed op and step,
  so only one candidate runs (straight-through gradients to alpha); temperature annealed.
* FLOPs-aware: the alpha loss adds ``cost_weight * sum_k softmax(alpha_k) . flops_k /
  max_flops``, each candidate's FLOPs measured by :func:`evaluators.cost.flops_of`.

Every other choice is fixed (a value given in ``fix`` or the space's default: first
category, middle of a range). The derived architecture (argmax per mixed op, skipping
``none`` as DARTS does unless a FLOPs penalty is on) is retrained by the standard evaluator and recorded as a trial by
:mod:`nas.search`; the validation split is never used here.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from itertools import cycle
from typing import Any, Callable, Iterator, Optional

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn
from torch.func import functional_call

from evaluators.cost import flops_of
from evaluators.datasets import DatasetBundle
from evaluators.training import TrainingDiverged, task_loss
from search_spaces import Architecture, SearchSpace
from search_spaces.builder import Cell, ClassifierLayer, DataInfo, GPSLayer, build_model, model_inputs
from search_spaces.operators import ATTENTION, MPNN, NORM, OpContext
from search_spaces.operators.attention import takes_kv
from search_spaces.param_key import ParamKey, layer_key
from search_spaces.schema import Categorical, FloatRange, IntRange

OPERATOR_FIELDS = ("mpnn", "attention", "kv_source")
DIFFERENTIABLE = ("darts", "gdas", "darts+tpe")


class DartsConfig(BaseModel):
    """Settings of a differentiable search (``SearchConfig.darts``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    epochs: int = Field(default=100, ge=1)
    # Adam with DARTS' betas and weight decay. DARTS' lr 3e-4 assumes ~20k steps; a
    # full-batch node task takes one step per epoch, hence a larger default.
    alpha_lr: float = Field(default=3e-2, gt=0)
    alpha_weight_decay: float = Field(default=1e-3, ge=0)
    arch_fraction: float = Field(default=0.4, gt=0, lt=1)  # share of training data for the alpha step
    second_order: bool = False
    cost_weights: tuple[float, ...] = (0.0,)  # one search per lambda
    tau_max: float = Field(default=10.0, gt=0)  # GDAS temperature, annealed linearly to tau_min
    tau_min: float = Field(default=0.1, gt=0)
    top_k: int = Field(default=2, ge=1)  # darts+tpe: candidates kept per operator choice
    keep_none: bool = False  # let the argmax pick ``none`` even without a FLOPs penalty
    fix: dict[str, Any] = Field(default_factory=dict)  # field or layer{i}.field -> value

    def keeps_none(self, cost_weight: float) -> bool:
        """May discretisation pick ``none``? Not without a FLOPs penalty (DARTS: the zero
        op's weight measures how little the others matter, it is never chosen); yes with one,
        where dropping the branch is exactly the saving the penalty asks for."""
        return self.keep_none or cost_weight > 0


def default_value(choice: Any) -> Any:
    """The value a choice takes when DARTS does not search it: a categorical's first
    value, the middle of a range (geometric middle of a log range)."""
    if isinstance(choice, FloatRange):
        return math.sqrt(choice.low * choice.high) if choice.log else (choice.low + choice.high) / 2
    if isinstance(choice, IntRange):
        values = choice.values()
        return values[len(values) // 2]
    return choice.values()[0]


class MixedOp(nn.Module):
    """``sum_i w_i * op_i(...)`` over the active candidates. The supernet sets ``weights``
    (one per candidate) and ``active`` (indices to run: all for DARTS, one for GDAS) before
    each forward; without a key (a fixed choice) the single candidate runs with weight 1."""

    def __init__(self, key: Optional[str], candidates: dict[str, nn.Module]) -> None:
        super().__init__()
        self.key, self.names = key, list(candidates)
        self.ops = nn.ModuleList(candidates.values())
        self.weights: Optional[Tensor] = None
        self.active: list[int] = [0]

    def forward(self, *args: Any, **kwargs: Any) -> Tensor:
        if self.weights is None:
            return self.ops[0](*args, **kwargs)
        return sum(self.weights[i] * self.ops[i](*args, **kwargs) for i in self.active)


class _Take(nn.Module):
    """Candidate of ``kv_source``: the layer input (features) or the MPNN output."""

    def __init__(self, index: int) -> None:
        super().__init__()
        self.index = index

    def forward(self, h: Tensor, local: Tensor) -> Tensor:
        return (h, local)[self.index]


class _AttentionBranch(nn.Module):
    """One attention candidate with its own norm: ``norm(skip + dropout(attn(h, kv)))``."""

    def __init__(self, name: str, ctx: OpContext, norm: str, dropout: float) -> None:
        super().__init__()
        self.op = None if name == "none" else ATTENTION.get(name)(ctx)
        self.norm = NORM.get(norm)(ctx.channels) if self.op is not None else None
        self.takes_kv = self.op is not None and takes_kv(name)
        self.dropout = dropout

    def forward(self, h: Tensor, kv: Tensor, skip: Tensor | int, edge_index: Tensor,
                edge_attr: Optional[Tensor], batch: Optional[Tensor]) -> Tensor:
        if self.op is None:
            return h.new_zeros(())
        extra = {"kv": kv} if self.takes_kv else {}
        glob = self.op(h, edge_index, edge_attr, batch, **extra)
        return self.norm(skip + F.dropout(glob, self.dropout, self.training), batch)


class SuperLayer(GPSLayer):
    """A stack layer whose MPNN, attention form and key/value source are mixed ops. The
    candidates share the layer's input (and so the model's one input projection)."""

    def __init__(self, base: GPSLayer, layer_arch, keys: dict[str, Optional[str]],
                 candidates: dict[str, list[str]]) -> None:
        nn.Module.__init__(self)
        self.residual, self.dropout, self.act = base.residual, base.dropout, base.act
        self.local_norm, self.ffn, self.ffn_norm = base.local_norm, base.ffn, base.ffn_norm
        local_ctx, ctx = base.contexts
        self.local = mixed_mpnn(keys["mpnn"], candidates["mpnn"], local_ctx)
        self.attention = MixedOp(keys["attention"], {
            n: _AttentionBranch(n, _with_dropout(ATTENTION, n, ctx), layer_arch.norm, base.dropout)
            for n in candidates["attention"]})
        self.kv_source = MixedOp(keys["kv_source"], {
            n: _Take(0 if n == "features" else 1) for n in candidates["kv_source"]})

    def global_branch(self, h, local, skip, edge_index, edge_attr, batch):
        return self.attention(h, self.kv_source(h, local), skip, edge_index, edge_attr, batch)


def _with_dropout(registry, name: str, ctx: OpContext) -> OpContext:
    """``ctx`` with its attention dropout kept only for a candidate that declares it."""
    return ctx if name in registry and registry.entry(name).can("attention_dropout") else replace(ctx, dropout=0.0)


def mixed_mpnn(key: Optional[str], names: list[str], ctx: OpContext) -> MixedOp:
    """The MPNN candidates of one layer, built from the layer's own context."""
    op = MixedOp(key, {n: MPNN.get(n)(_with_dropout(MPNN, n, ctx)) for n in names})
    op.in_width = ctx.in_width  # a first layer reading raw features: what measure_flops feeds it
    return op


class Supernet(nn.Module):
    """The space's model with every searched operator choice replaced by a :class:`MixedOp`.

    ``alphas`` holds one parameter vector per searched choice, named like the trial
    parameter (``layer1.mpnn``, or ``mpnn`` when the space ties it across layers; dots
    become ``__`` in the ParameterDict). :meth:`weight_parameters` and
    :meth:`arch_parameters` are disjoint: they go to separate optimisers.
    """

    def __init__(self, space: SearchSpace, info: DataInfo, fix: Optional[dict[str, Any]] = None,
                 mode: str = "darts", seed: int = 0) -> None:
        super().__init__()
        if mode not in ("darts", "gdas"):
            raise ValueError(f"mode must be darts or gdas, got {mode!r}")
        self.space, self.mode, self.tau = space, mode, 1.0
        self.fix = dict(fix or {})
        self.candidates: dict[str, list[str]] = {}  # searched key -> candidate names
        self.fixed: dict[str, Any] = {}  # every other choice -> the value it was fixed to
        self.base = space.build(self._base_pick)
        if not self.candidates:
            raise ValueError(f"space {space.name!r} has no operator choice with several candidates "
                             f"({', '.join(OPERATOR_FIELDS)}): nothing for DARTS to search")
        self.model = build_model(self.base, info, edge_features=True)  # candidates may read them
        gen = torch.Generator().manual_seed(seed)
        self.alphas = nn.ParameterDict({k.replace(".", "__"): nn.Parameter(1e-3 * torch.randn(len(v), generator=gen))
                                        for k, v in self.candidates.items()})
        self._install(info)
        self.flops: dict[str, Tensor] = {k: torch.zeros(len(v)) for k, v in self.candidates.items()}
        self._cost_scale = 1.0  # the most expensive total, set by measure_flops

    # --- construction ---------------------------------------------------------------------
    def _base_pick(self, name: str, choice: Any) -> Any:
        field = ParamKey.parse(name).field
        given = self.fix.get(name, self.fix.get(field))
        if given is not None:
            if not choice.contains(given):
                raise ValueError(f"--fix {name}={given!r}: not in the space ({choice.values()})")
            self.fixed[name] = given
            return given
        if field in OPERATOR_FIELDS and isinstance(choice, Categorical) and choice.count() > 1:
            self.candidates[name] = list(choice.values())
            return choice.values()[0]
        value = default_value(choice)
        self.fixed[name] = value
        return value

    def _key(self, layer: int, field: str) -> Optional[str]:
        for key in (layer_key(layer, field), field):
            if key in self.candidates:
                return key
        return None

    def _install(self, info: DataInfo) -> None:
        arch, body = self.base, self.model.body
        edge_dim = arch.hidden_dim if info.edge_dim else None
        deg = torch.tensor(info.deg, dtype=torch.long)
        for i, layer in enumerate(arch.layers):
            keys = {f: self._key(i, f) for f in OPERATOR_FIELDS}
            names = {f: self.candidates[k] if k else [getattr(layer, f)] for f, k in keys.items()}
            if isinstance(body, Cell):
                ctx = OpContext(arch.hidden_dim, layer.heads, edge_dim, deg, 0.0, layer.top_m)
                body.ops[i] = MixedOp(keys["mpnn"], {n: MPNN.get(n)(ctx) for n in names["mpnn"]})
            elif isinstance(body.layers[i], ClassifierLayer):  # the last layer is the classifier: its MPNN alone
                body.layers[i].local = mixed_mpnn(keys["mpnn"], names["mpnn"], body.layers[i].contexts[0])
            else:
                body.layers[i] = SuperLayer(body.layers[i], layer, keys, names)

    def mixed_ops(self) -> Iterator[MixedOp]:
        return (m for m in self.model.modules() if isinstance(m, MixedOp) and m.key is not None)

    def weight_parameters(self) -> list[nn.Parameter]:
        return list(self.model.parameters())

    def arch_parameters(self) -> list[nn.Parameter]:
        return list(self.alphas.parameters())

    def alpha(self, key: str) -> Tensor:
        return self.alphas[key.replace(".", "__")]

    # --- forward ----------------------------------------------------------------------------
    def forward(self, **inputs: Any) -> Tensor:
        sampled: dict[str, tuple[Tensor, list[int]]] = {}
        for key in self.candidates:
            a = self.alpha(key)
            if self.mode == "gdas" and self.training:
                w = F.gumbel_softmax(a, tau=self.tau, hard=True)
                sampled[key] = (w, [int(w.argmax())])
            else:
                sampled[key] = (F.softmax(a, dim=-1), list(range(len(a))))
        for op in self.mixed_ops():
            op.weights, op.active = sampled[op.key]
        return self.model(**inputs)

    # --- cost ---------------------------------------------------------------------------------
    @torch.no_grad()
    def measure_flops(self, inputs: dict[str, Any]) -> None:
        """FLOPs of every candidate of every mixed op on ``inputs`` (the graph or sample
        batch), summed over the layers that share a key; kept on the alphas' device, since
        every architecture step reads them."""
        device = next(iter(self.alphas.values())).device
        self.flops = {k: torch.zeros(len(v), device=device) for k, v in self.candidates.items()}
        h = torch.randn(inputs["x"].size(0), self.base.hidden_dim, device=inputs["x"].device)
        e = inputs.get("edge_attr")
        if e is not None and self.model.edge_input is not None:
            e = self.model.edge_input(e)
        args = dict(x=h, edge_index=inputs["edge_index"], edge_attr=e, batch=inputs.get("batch"))
        for op in self.mixed_ops():
            width = getattr(op, "in_width", self.base.hidden_dim)
            args["x"] = h if width == h.size(1) else torch.randn(h.size(0), width, device=h.device)
            for i, cand in enumerate(op.ops):
                if isinstance(cand, _AttentionBranch):
                    cost = flops_of(cand.op, **args) if cand.op is not None else 0
                elif isinstance(cand, _Take):
                    cost = 0
                else:
                    cost = flops_of(cand, **args)
                self.flops[op.key][i] += cost
        self._cost_scale = sum(float(f.max()) for f in self.flops.values()) or 1.0

    def expected_cost(self) -> Tensor:
        """Softmax-expected FLOPs of the searched choices over their most expensive total:
        in [0, 1], so ``cost_weight`` 1 weighs the whole cost range like one unit of loss."""
        return sum((F.softmax(self.alpha(k), -1) * f).sum() for k, f in self.flops.items()) / self._cost_scale

    # --- discretisation ---------------------------------------------------------------------
    def ranking(self, key: str, keep_none: bool = False) -> list[str]:
        """Candidates of ``key`` by decreasing alpha; ``none`` last unless ``keep_none``."""
        order = [self.candidates[key][i] for i in torch.argsort(self.alpha(key).detach(), descending=True).tolist()]
        if not keep_none and len(order) > 1 and "none" in order:
            order.remove("none")
            order.append("none")
        return order

    def overridden_none(self, keep_none: bool = False) -> dict[str, float]:
        """The choices where ``none`` has the largest weight and ``derive`` takes the next
        candidate instead (``keep_none`` false), with the weight of ``none``: what the
        derived architecture does not follow, said in darts.json and in the log."""
        if keep_none:
            return {}
        return {key: round(float(torch.softmax(self.alpha(key).detach(), -1)[names.index("none")]), 4)
                for key, names in self.candidates.items()
                if "none" in names and names[int(torch.argmax(self.alpha(key).detach()))] == "none"}

    def derive(self, keep_none: bool = False) -> Architecture:
        """The discrete architecture: argmax per mixed op, every other choice as fixed. A
        layer whose attention does not read keys/values from the MPNN gets
        ``kv_source: features`` when the space allows it."""
        chosen: dict[str, Any] = {}

        def pick(name: str, choice: Any) -> Any:
            field = ParamKey.parse(name).field
            if name in self.candidates:
                chosen[name] = self.ranking(name, keep_none)[0]
            else:
                chosen[name] = self.fixed[name]
            if field == "kv_source" and chosen[name] == "mpnn" and choice.contains("features"):
                attention = chosen.get(name.replace("kv_source", "attention"), chosen.get("attention"))
                if not takes_kv(attention):
                    chosen[name] = "features"
            return chosen[name]

        return self.space.build(pick)

    def weights_table(self) -> list[dict[str, Any]]:
        """Softmax weights per key and candidate: rows of ``alphas.csv`` (without epoch)."""
        rows = []
        for key, names in self.candidates.items():
            layer, choice = key.split(".") if "." in key else ("all", key)
            probs = F.softmax(self.alpha(key).detach(), -1).tolist()
            rows += [{"layer": layer.removeprefix("layer"), "choice": choice, "candidate": n, "weight": p}
                     for n, p in zip(names, probs)]
        return rows


# --- bi-level optimisation ----------------------------------------------------------------------

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


def narrow(space: SearchSpace, net: Supernet, top_k: int, keep_none: bool = False) -> SearchSpace:
    """The space with each searched operator choice cut to the union over layers of each
    layer's ``top_k`` candidates by alpha (the schema has one candidate list per field)."""
    keep: dict[str, set[str]] = {}
    for key in net.candidates:
        keep.setdefault(ParamKey.parse(key).field, set()).update(net.ranking(key, keep_none)[:top_k])
    layers = space.spec.layers
    update = {}
    for field, names in keep.items():
        old = getattr(layers, field)
        update[field] = Categorical(choices=[c for c in old.values() if c in names], tied=old.tied)
    spec = space.spec.model_copy(update={"layers": layers.model_copy(update=update)})
    return SearchSpace(spec, f"{space.source} (narrowed by DARTS to top-{top_k})")


def alphas_summary(rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Final softmax weights per (layer, choice) from ``alphas.csv`` rows."""
    last = max(r["epoch"] for r in rows)
    out: dict[str, dict[str, float]] = {}
    for r in rows:
        if r["epoch"] == last:
            out.setdefault(layer_key(r["layer"], r["choice"]), {})[r["candidate"]] = round(float(r["weight"]), 4)
    return out
