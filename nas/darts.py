"""Differentiable architecture search over a space file's operator choices: its settings,
and what is read off a trained supernet (the supernet is :mod:`nas.supernet`, the bi-level
step that trains it :mod:`nas.architect`).

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
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from graphnas.search_spaces import SearchSpace
from graphnas.search_spaces.param_key import ParamKey, layer_key
from graphnas.search_spaces.schema import Categorical, FloatRange, IntRange
from graphnas.settings_help import about

if TYPE_CHECKING:
    from graphnas.nas.supernet import Supernet

OPERATOR_FIELDS = ("mpnn", "attention", "kv_source")
DIFFERENTIABLE = ("darts", "gdas", "darts+tpe")


class DartsConfig(BaseModel):
    """Settings of a differentiable search (``SearchConfig.darts``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    epochs: int = Field(default=100, ge=1, description=about("darts.epochs"))
    # Adam with DARTS' betas and weight decay. DARTS' lr 3e-4 assumes ~20k steps; a
    # full-batch node task takes one step per epoch, hence a larger default.
    alpha_lr: float = Field(default=3e-2, gt=0, description=about("darts.alpha_lr"))
    alpha_weight_decay: float = Field(default=1e-3, ge=0)
    arch_fraction: float = Field(default=0.4, gt=0, lt=1)  # share of training data for the alpha step
    second_order: bool = Field(default=False, description=about("darts.second_order"))
    # one search per lambda
    cost_weights: tuple[float, ...] = Field(default=(0.0,), description=about("darts.cost_weights"))
    tau_max: float = Field(default=10.0, gt=0)  # GDAS temperature, annealed linearly to tau_min
    tau_min: float = Field(default=0.1, gt=0)
    # darts+tpe: candidates kept per operator choice
    top_k: int = Field(default=2, ge=1, description=about("darts.top_k"))
    # let the argmax pick ``none`` even without a FLOPs penalty
    keep_none: bool = Field(default=False, description=about("darts.keep_none"))
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
