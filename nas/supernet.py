"""DARTS' supernet: the space's model with a mixed operation wherever an operator choice is
searched (``model_search.py`` in the original DARTS; the bi-level step that trains it lives
apart, in :mod:`nas.architect`).

The model is built by the same :func:`~search_spaces.builder.build_model` as every trial's,
with a hook (:class:`MixedOperators`) that builds a :class:`ChoiceSlot` where a choice is
searched. A slot's candidates are built exactly as the derived model will build the chosen
one (its context, its dropout), and they share the layer's input and the model's one input
projection. The mixing weights of a forward are drawn once, by :meth:`Supernet.forward`,
and handed to each :class:`MixedOp` as arguments, as in DARTS' ``MixedOp.forward(x, weights)``.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Iterator, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from graphnas.evaluators.cost import flops_of
from graphnas.nas.darts import OPERATOR_FIELDS, default_value
from graphnas.search_spaces import Architecture, SearchSpace
from graphnas.search_spaces.builder import AttentionBranch, DataInfo, KVSource, OperatorBuilder, build_model
from graphnas.search_spaces.operators import OpContext
from graphnas.search_spaces.operators.attention import takes_kv
from graphnas.search_spaces.param_key import ParamKey, layer_key
from graphnas.search_spaces.schema import Categorical


class MixedOp(nn.Module):
    """``sum_i weights[i] * op_i(*inputs)`` over the candidates in ``active`` (all of them
    for DARTS, the one sampled for GDAS). Shapes: those of the candidates, which agree."""

    def __init__(self, candidates: dict[str, nn.Module]) -> None:
        super().__init__()
        self.names = list(candidates)
        self.ops = nn.ModuleList(candidates.values())

    def forward(self, *inputs: Any, weights: Tensor, active: Sequence[int]) -> Tensor:
        return sum(weights[i] * self.ops[i](*inputs) for i in active)


@dataclass
class Draw:
    """The mixing weights of one supernet forward: per searched key, the weight of each
    candidate and the indices of those to run. Written by :meth:`Supernet.forward` only."""

    weights: dict[str, tuple[Tensor, list[int]]] = field(default_factory=dict)


class ChoiceSlot(MixedOp):
    """Where a searched choice sits in the supernet's model: the :class:`MixedOp` of its
    candidates, called like the operator it stands for and run with the weights drawn for
    ``key`` in the current forward. ``in_width`` is the width its candidates read (a first
    layer's MPNN reads the raw features: what :meth:`Supernet.measure_flops` feeds it)."""

    def __init__(self, key: str, candidates: dict[str, nn.Module], draw: Draw, in_width: Optional[int] = None) -> None:
        super().__init__(candidates)
        self.key, self.in_width = key, in_width
        self._draw = draw  # shared with the supernet, not a submodule

    def forward(self, *inputs: Any) -> Tensor:
        weights, active = self._draw.weights[self.key]
        return super().forward(*inputs, weights=weights, active=active)


class _NoBranch(nn.Module):
    """The ``none`` candidate of a searched attention: the branch adds nothing."""

    def forward(self, h: Tensor, *rest: Any) -> Tensor:
        return h.new_zeros(())


class MixedOperators(OperatorBuilder):
    """The supernet's hook of ``build_model``: a :class:`ChoiceSlot` for a searched choice,
    whose candidates the plain builder builds one by one; the plain operator elsewhere.

    ``attention_dropout`` is the value the space fixes: the base architecture (the first
    candidates) drops it when none of its own operators has coefficients, but a candidate
    that has them gets it, as the derived model will."""

    def __init__(self, keys: dict[tuple[int, str], str], candidates: dict[str, list[str]], draw: Draw,
                 attention_dropout: float = 0.0) -> None:
        self.keys, self.candidates, self.draw = keys, candidates, draw
        self.attention_dropout = attention_dropout

    def _slot(self, layer_index: int, field_name: str) -> Optional[str]:
        return self.keys.get((layer_index, field_name))

    def mpnn(self, layer_index: int, name: str, ctx: OpContext) -> nn.Module:
        key = self._slot(layer_index, "mpnn")
        if key is None:
            return super().mpnn(layer_index, name, ctx)
        ctx = replace(ctx, dropout=self.attention_dropout)
        build = super().mpnn
        return ChoiceSlot(key, {n: build(layer_index, n, ctx) for n in self.candidates[key]},
                          self.draw, in_width=ctx.in_width)

    def attention(self, layer_index: int, name: str, ctx: OpContext, norm: str, dropout: float) -> Optional[nn.Module]:
        key = self._slot(layer_index, "attention")
        if key is None:
            return super().attention(layer_index, name, ctx, norm, dropout)
        build, ctx = super().attention, replace(ctx, dropout=self.attention_dropout)
        return ChoiceSlot(key, {n: build(layer_index, n, ctx, norm, dropout) or _NoBranch()
                                for n in self.candidates[key]}, self.draw)

    def kv_source(self, layer_index: int, name: str, attention: str) -> Optional[nn.Module]:
        key = self._slot(layer_index, "kv_source")
        if key is None and self._slot(layer_index, "attention") is None:
            return super().kv_source(layer_index, name, attention)
        if key is None:  # a fixed source for a searched attention: its candidates read it if they take it
            return KVSource(name) if name == "mpnn" else None
        return ChoiceSlot(key, {n: KVSource(n) for n in self.candidates[key]}, self.draw)


class Supernet(nn.Module):
    """The space's model with a :class:`ChoiceSlot` for every searched operator choice.

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
        self.draw = Draw()
        keys = {(i, f): k for i in range(self.base.num_layers) for f in OPERATOR_FIELDS
                if (k := self._key(i, f)) is not None}
        # edge features embedded whatever the base reads: the candidates may read them
        self.model = build_model(self.base, info, edge_features=True,
                                 operators=MixedOperators(keys, self.candidates, self.draw,
                                                          self.fixed.get("attention_dropout", 0.0)))
        gen = torch.Generator().manual_seed(seed)
        self.alphas = nn.ParameterDict({k.replace(".", "__"): nn.Parameter(1e-3 * torch.randn(len(v), generator=gen))
                                        for k, v in self.candidates.items()})
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

    def mixed_ops(self) -> Iterator[ChoiceSlot]:
        return (m for m in self.model.modules() if isinstance(m, ChoiceSlot))

    def weight_parameters(self) -> list[nn.Parameter]:
        return list(self.model.parameters())

    def arch_parameters(self) -> list[nn.Parameter]:
        return list(self.alphas.parameters())

    def alpha(self, key: str) -> Tensor:
        return self.alphas[key.replace(".", "__")]

    # --- forward ----------------------------------------------------------------------------
    def forward(self, **inputs: Any) -> Tensor:
        """The model's forward with this forward's mixing weights: softmax(alpha) over every
        candidate (DARTS, and GDAS in eval mode), or one hard Gumbel-softmax sample per key
        (GDAS in training; straight-through gradients to alpha)."""
        self.draw.weights = {key: self._mixing(self.alpha(key)) for key in self.candidates}
        return self.model(**inputs)

    def _mixing(self, alpha: Tensor) -> tuple[Tensor, list[int]]:
        if self.mode == "gdas" and self.training:
            w = F.gumbel_softmax(alpha, tau=self.tau, hard=True)
            return w, [int(w.argmax())]
        return F.softmax(alpha, dim=-1), list(range(len(alpha)))

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
            width = op.in_width or self.base.hidden_dim
            args["x"] = h if width == h.size(1) else torch.randn(h.size(0), width, device=h.device)
            for i, cand in enumerate(op.ops):
                self.flops[op.key][i] += _candidate_flops(cand, args)
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




def _candidate_flops(candidate: nn.Module, args: dict[str, Any]) -> float:
    """FLOPs of one candidate: an attention branch's are its attention form's (the norm is
    the same for all), a key/value source and ``none`` cost nothing."""
    if isinstance(candidate, AttentionBranch):
        return flops_of(candidate.attn, **args)
    if isinstance(candidate, (KVSource, _NoBranch)):
        return 0
    return flops_of(candidate, **args)
