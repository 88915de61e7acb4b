"""``Architecture``: one fully resolved point of a search space, and the export format."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, model_validator

from graphnas.search_spaces.param_key import ParamKey, layer_key


HeadMerge = Literal["auto", "concat", "mean"]
Head = Literal["linear", "last_layer"]
# auto: row for non-negative integer (count or binary, bag-of-words) features, else none;
# resolved per dataset by :func:`search_spaces.builder.resolve_feature_norm`
FeatureNorm = Literal["none", "row", "auto"]
# What is added around a layer's operator: nothing, its input (identity), or a learned
# linear map of its input (``conv(x) + W x``: Luo et al.'s "res", the "-sep" idea, which
# also works where the width changes). JSON before this choice had true / false.
Residual = Literal["none", "identity", "linear"]
# Where the norm, activation, dropout and residual sit around a layer's operator:
# gps: norm(skip + dropout(act(op(h))))           (GraphGPS; the layers before this choice)
# conv_norm_act: dropout(act(norm(op(h) + skip)))  (Luo et al. 2024's classic GNN layer)
# pre_norm: skip + dropout(act(op(norm(h))))       (Platonov et al. 2023; the stack ends in a norm)
LayerForm = Literal["gps", "conv_norm_act", "pre_norm"]
Optimizer = Literal["adamw", "adam"]
LRSchedule = Literal["constant", "step", "cosine"]  # see evaluators.training.LR_SCHEDULES
JumpingKnowledge = Literal["none", "cat", "max"]


class LayerArch(BaseModel):
    """The choices of one layer."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mpnn: str
    attention: str = "none"
    heads: int = 1
    top_m: int = 8
    kv_source: str = "features"
    norm: str = "batch"
    ffn: bool = False
    activation: str = "relu"  # after the MPNN (ACTIVATION registry)
    head_merge: HeadMerge = "auto"  # multi-head MPNNs: concat heads of width C/heads, or mean heads of width C


Fraction = Annotated[float, Field(ge=0.0, lt=1.0)]
Positive = Annotated[int, Field(ge=1)]  # widths and depths: a file someone edited may say 0
EdgeMethod = Literal["learned", "teddy"]


class Sparsity(BaseModel):
    """Target sparsity per dimension (GTSP, Liu et al. 2024): the fraction of graph edges,
    of attention heads per layer, of layers, and of prunable weights removed after the
    masks are learned. ``edge_method`` is ``learned`` (a gate per edge of the one graph of
    a node task) or ``teddy`` (one-shot degree-based scores, any graph)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    edges: Fraction = 0.0
    heads: Fraction = 0.0
    layers: Fraction = 0.0
    weights: Fraction = 0.0
    edge_method: EdgeMethod = "learned"

    @property
    def dense(self) -> bool:
        return not (self.edges or self.heads or self.layers or self.weights)


class Architecture(BaseModel):
    """Every value chosen, per layer; immutable, JSON round-trips, hashes stably.

    ``links`` is ``None`` for a GraphGPS-style stack; for a NAS-Bench-Graph cell it says
    which earlier node (0 = the input) feeds each layer, and the outputs of the layers
    that feed no other are summed.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    space: str
    space_version: int = 1
    hidden_dim: Positive
    num_layers: Positive
    dropout: float
    lr: Annotated[float, Field(gt=0.0)]
    weight_decay: Annotated[float, Field(ge=0.0)]
    encoding: str = "none"
    encoding_dim: Positive = 8
    pooling: str = "mean"
    residual: Residual = "identity"
    layer_form: LayerForm = "gps"
    links: Optional[tuple[int, ...]] = None
    # How the stack meets the data (Kipf & Welling and GAT: no input projection, the last
    # MPNN is the classifier) and how it is trained; see DESIGN_DEFAULTS for the defaults.
    input_projection: bool = True  # False: the first layer's MPNN reads the raw features
    input_activation: str = "identity"  # after the projection and its dropout (Platonov et al.: gelu)
    head: Head = "linear"  # last_layer: the last MPNN outputs the classes, no separate head
    input_dropout: Optional[Fraction] = None  # dropout on the input features; None: ``dropout``
    attention_dropout: Fraction = 0.0  # on attention coefficients (operators that declare it)
    feature_norm: FeatureNorm = "none"  # row: PyG's NormalizeFeatures, computed once per dataset
    optimizer: Optimizer = "adamw"  # adam: Adam with L2 weight decay (the published protocols)
    lr_schedule: LRSchedule = "constant"  # step: halved every 50 epochs (GIN); cosine: to 0 over the epochs
    jk: JumpingKnowledge = "none"  # jumping knowledge over the layers' outputs (PyG's JumpingKnowledge)
    layers: tuple[LayerArch, ...]
    sparsity: Optional[Sparsity] = None  # None: dense (what every architecture without the section is)

    @model_validator(mode="before")
    @classmethod
    def _one_input_dropout(cls, data: Any) -> Any:
        """An input dropout equal to ``dropout`` is the same model: stored as ``None``.
        ``residual`` written as true / false (before ``linear`` existed) is identity / none."""
        if isinstance(data, dict) and data.get("input_dropout") is not None and data.get("input_dropout") == data.get("dropout"):
            data = {**data, "input_dropout": None}
        if isinstance(data, dict) and isinstance(data.get("residual"), bool):
            data = {**data, "residual": residual_name(data["residual"])}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> "Architecture":
        if len(self.layers) != self.num_layers:
            raise ValueError(f"num_layers={self.num_layers} but {len(self.layers)} layers are given")
        if self.links is not None:
            if len(self.links) != self.num_layers:
                raise ValueError(f"links has {len(self.links)} entries, num_layers is {self.num_layers}")
            for i, j in enumerate(self.links):
                if not 0 <= j <= i:
                    raise ValueError(f"links[{i}]={j}: a layer can only read the input (0) or an earlier layer")
        if self.sparsity is not None and self.links is not None:
            raise ValueError("sparsity applies to layer stacks, not to NAS-Bench-Graph cells (links)")
        if self.links is not None:
            changed = [f for f in ("input_projection", "head", "jk") if getattr(self, f) != GLOBAL_DEFAULTS[f]]
            if changed:
                raise ValueError(f"{', '.join(changed)}: a NAS-Bench-Graph cell (links) has its own input and "
                                 "output; these apply to layer stacks")
        if self.jk != "none" and self.sparsity_targets.layers > 0:
            raise ValueError(f"jk={self.jk!r} reads every layer's output, so layer sparsity cannot remove layers")
        problems = [f"{key}={value!r}: {why}" for key, value, _, why in canonical_fixes(self)]
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def sparsity_targets(self) -> Sparsity:
        """The targets, all 0 for a dense architecture."""
        return self.sparsity or Sparsity()

    def to_json(self, **kwargs: Any) -> str:
        return self.model_dump_json(**kwargs)

    @classmethod
    def from_json(cls, text: str) -> "Architecture":
        return cls.model_validate_json(text)

    @classmethod
    def load(cls, path: str | Path) -> "Architecture":
        """Read an architecture file; an export file with an ``architecture`` key also works."""
        data = json.loads(Path(path).read_text())
        return cls.model_validate(data.get("architecture", data))

    @property
    def arch_id(self) -> str:
        """Stable 12-hex-digit id: a hash of the canonical JSON of every choice."""
        data = self.model_dump(mode="json")
        if data["residual"] != "linear":  # hashed as the boolean it was before linear existed
            data["residual"] = data["residual"] == "identity"
        if data["sparsity"] is None:  # dense architectures keep the ids they had before sparsity existed
            del data["sparsity"]
        # Choices added later are hashed only when they differ from the behaviour before
        # them, so every architecture keeps the id it had.
        for key, default in GLOBAL_DEFAULTS.items():
            if data[key] == default:
                del data[key]
        # A choice that the built layer never reads (heads of a GCN layer without attention)
        # is hashed at its default: the models differ in nothing else, so they are one.
        for layer, unused in zip(data["layers"], unused_choices(self)):
            layer.update({key: LayerArch.model_fields[key].default for key in unused})
            for key, default in LAYER_DEFAULTS.items():
                if layer[key] == default:
                    del layer[key]
        canonical = json.dumps(data, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]

    def applied_dump(self) -> dict[str, Any]:
        """The JSON form without the per-layer choices that do not apply (:func:`unused_choices`):
        what an export shows. It reads back to an architecture with the same ``arch_id``."""
        data = self.model_dump(mode="json")
        for layer, unused in zip(data["layers"], unused_choices(self)):
            for key in unused:
                del layer[key]
        return data

    def flat(self) -> dict[str, Any]:
        """Choices as one flat dict: globals by name, per-layer ones as ``layer{i}.{field}``."""
        out = self.model_dump(mode="json", exclude={"layers", "space", "space_version", "sparsity"})
        if self.sparsity is not None:
            out.update({str(ParamKey(k, sparsity=True)): v for k, v in self.sparsity.model_dump().items()})
        if out["links"] is not None:
            out["links"] = "-".join(map(str, out["links"]))
        for i, layer in enumerate(self.layers):
            for field, value in layer.model_dump().items():
                out[layer_key(i, field)] = value
        return out


# The new choices at the values that reproduce the models built before they existed.
GLOBAL_DEFAULTS: dict[str, Any] = {"input_projection": True, "input_activation": "identity", "layer_form": "gps", "head": "linear", "input_dropout": None,
                                   "attention_dropout": 0.0, "feature_norm": "none", "optimizer": "adamw",
                                   "jk": "none", "lr_schedule": "constant"}
LAYER_DEFAULTS: dict[str, Any] = {"activation": "relu", "head_merge": "auto"}


def residual_name(value: Any) -> Any:
    """``residual`` as named now: true / false (the JSON and spaces before ``linear``) are
    identity / none; anything else is returned as it is."""
    return {True: "identity", False: "none"}[value] if isinstance(value, bool) else value


# A last layer that is the classifier runs its MPNN alone: logits, no norm, no branches.
OUTPUT_LAYER: dict[str, Any] = {"attention": "none", "kv_source": "features", "ffn": False, "norm": "none",
                                "activation": "identity"}


def unused_choices(arch: Any) -> list[set[str]]:
    """Per layer, the choices its built layer never reads: ``heads`` without a multi-head
    MPNN or an attention form; ``head_merge`` without a multi-head MPNN with heads > 1 (and
    in NAS-Bench-Graph cells, which always merge as the operator does); ``top_m`` without an
    attention form that declares ``top_m``; ``kv_source`` without one that ``takes_kv``."""
    from graphnas.search_spaces.operators import ATTENTION, MPNN

    def attention_can(layer: LayerArch, capability: str) -> bool:
        return layer.attention in ATTENTION and ATTENTION.entry(layer.attention).can(capability)

    out = []
    for layer in arch.layers:
        multi_head = MPNN.entry(layer.mpnn).can("heads")
        unused = set()
        if not multi_head and layer.attention == "none":
            unused.add("heads")
        if not (multi_head and layer.heads > 1) or arch.links is not None:
            unused.add("head_merge")
        if not attention_can(layer, "top_m"):
            unused.add("top_m")
        if not attention_can(layer, "takes_kv"):
            unused.add("kv_source")
        out.append(unused)
    return out


def canonical_fixes(arch: Any) -> list[tuple[str, Any, Any, str]]:
    """The constraints of :func:`choice_constraints` that ``arch`` breaks."""
    return [c for c in choice_constraints(arch) if c[1] != c[2]]


def moot_keys(arch: Any) -> set[str]:
    """Keys whose value is set by the rest of ``arch``, not chosen (:func:`choice_constraints`)."""
    return {c[0] for c in choice_constraints(arch)}


def choice_constraints(arch: Any) -> list[tuple[str, Any, Any, str]]:
    """Choices that cannot apply to ``arch`` (an :class:`Architecture` or anything with its
    attributes, such as a namespace of picked values): ``(key, value, the value it must
    have, why)``, whether or not the value already is that one. The space sets them to that value, so one model has one id; an
    architecture that still has them is refused with the reason. Keys as in
    :meth:`Architecture.flat` (``attention_dropout``, ``layer1.norm``)."""
    from graphnas.search_spaces.operators import ATTENTION, MPNN

    fixes: list[tuple[str, Any, Any, str]] = []
    layers, last = arch.layers, len(arch.layers) - 1

    def need(key: str, value: Any, want: Any, why: str) -> None:
        fixes.append((key, value, want, why))

    head = arch.head
    if arch.layer_form == "pre_norm":  # decided first: the classifier-layer rules below follow from the head
        need("head", arch.head, "linear", "a pre_norm stack ends in a norm and a linear head")
        head = "linear"
    if head == "last_layer":
        for field, want in OUTPUT_LAYER.items():
            need(layer_key(last, field), getattr(layers[last], field), want,
                 f"the last layer is the classifier (head='last_layer'): it outputs logits from its MPNN alone")
        need("jk", arch.jk, "none", "the last layer is the classifier (head='last_layer'), so no layers are combined")
        entry = MPNN.entry(layers[last].mpnn)
        if entry.can("heads") and not entry.can("head_mean"):
            need(layer_key(last, "heads"), layers[last].heads, 1,
                 f"the classifier layer averages its heads; mpnn {layers[last].mpnn!r} cannot, so it has one")
    if not arch.input_projection:
        need("layer0.attention", layers[0].attention, "none",
             "the first layer reads the raw features (input_projection=false); attention needs the model width")
        need("layer0.kv_source", layers[0].kv_source, "features", "layer 0 has no attention")
    if not arch.input_projection:
        need("input_activation", arch.input_activation, "identity",
             "the first layer reads the raw features (input_projection=false): there is no projection to activate")
    if arch.layer_form != "gps":
        for i, layer in enumerate(layers):  # the other forms wrap one operator: attention comes as an MPNN (gt_sep)
            for field, want in (("attention", "none"), ("kv_source", "features"), ("ffn", False)):
                need(layer_key(i, field), getattr(layer, field), want,
                     f"layer_form={arch.layer_form!r} wraps the layer's MPNN alone (no attention or FFN branch)")
    if arch.layer_form == "pre_norm":
        need("jk", arch.jk, "none", "a pre_norm stack ends in a norm of its last layer's output, not in jumping knowledge")
    with_coefficients = [i for i, layer in enumerate(layers)
                         if MPNN.entry(layer.mpnn).can("attention_dropout")
                         or (layer.attention in ATTENTION and ATTENTION.entry(layer.attention).can("attention_dropout")
                             and not (head == "last_layer" and i == last))]
    if not with_coefficients:
        need("attention_dropout", arch.attention_dropout, 0.0,
             f"applies to operators with attention coefficients (mpnn {', '.join(MPNN.with_capability('attention_dropout'))}; "
             f"attention {', '.join(ATTENTION.with_capability('attention_dropout'))}); the layers use mpnn "
             f"{', '.join(layer.mpnn for layer in layers)}")
    for i, layer in enumerate(layers):
        if not MPNN.entry(layer.mpnn).can("heads") or layer.heads == 1:
            need(layer_key(i, "head_merge"), layer.head_merge, "auto",
                 f"applies to multi-head MPNNs ({', '.join(MPNN.with_capability('heads'))}) with heads > 1; layer {i} "
                 f"has mpnn {layer.mpnn!r} with {layer.heads} head(s)")
        elif head == "last_layer" and i == last:
            need(layer_key(i, "head_merge"), layer.head_merge, "auto", "the classifier layer averages its heads")
        elif layer.head_merge == "concat" and arch.hidden_dim % layer.heads:
            fixes.append((layer_key(i, "head_merge"), "concat", None,
                          f"concatenated heads need heads ({layer.heads}) to divide hidden_dim ({arch.hidden_dim})"))
    return fixes
