"""The search-space file format, validated by pydantic.

A space file has a name, global choices, per-layer choices and optionally a ``sparsity``
section (target fractions removed per dimension). Every choice is one of

* a list            ``mpnn: [gcn, gat]``                  -> :class:`Categorical`
* an int range      ``num_layers: {low: 1, high: 4}``      -> :class:`IntRange`
* a float range     ``lr: {low: 1e-4, high: 1e-1, log: true}`` -> :class:`FloatRange`
* a fixed value     ``hidden_dim: 64``                     -> :class:`Fixed`

Per-layer choices are drawn independently for every layer (depth-wise heterogeneity, as
in DARTS-GT) unless tied: ``layers.tied: true`` ties them all, and a choice written as
``{choices: [...], tied: true}`` ties one. Names of operators are checked against the
registries after pydantic has checked the shape; every error names the file and the
field path (``layers.mpnn[3]``).
"""
from __future__ import annotations

import difflib
import math
from typing import Annotated, Any, Callable, Optional, Union, get_args

import numpy as np
import yaml
from pydantic import (BaseModel, BeforeValidator, ConfigDict, Discriminator, Field, Tag,
                      ValidationError, model_validator)

from graphnas.search_spaces.architecture import (EdgeMethod, FeatureNorm, Head, HeadMerge, JumpingKnowledge, LayerForm,
                                       LRSchedule, Optimizer, Residual, residual_name)
from graphnas.search_spaces.operators import ACTIVATION, ATTENTION, ENCODING, MPNN, NORM, POOLING


class SpaceError(ValueError):
    """A space file is invalid. ``problems`` is a list of ``(field_path, message)``."""

    def __init__(self, source: str, problems: list[tuple[str, str]]) -> None:
        self.source = source
        self.problems = problems
        lines = [f"{source}: {path}: {msg}" if path else f"{source}: {msg}" for path, msg in problems]
        super().__init__("\n".join(lines))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Categorical(_Strict):
    choices: list[Any] = Field(min_length=1)
    tied: Optional[bool] = None

    def values(self) -> list[Any]:
        return list(self.choices)

    def count(self) -> int:
        return len(self.choices)

    def sample(self, rng: np.random.Generator) -> Any:
        return self.choices[int(rng.integers(len(self.choices)))]

    def suggest(self, trial, name: str) -> Any:
        keys = [optuna_key(c) for c in self.choices]
        key = trial.suggest_categorical(name, keys)
        return self.choices[keys.index(key)]

    def contains(self, value: Any) -> bool:
        return any(_same(value, c) for c in self.choices)


class IntRange(_Strict):
    low: int
    high: int
    step: int = Field(default=1, ge=1)
    log: bool = False
    tied: Optional[bool] = None

    @model_validator(mode="after")
    def _check(self) -> "IntRange":
        _check_range(self.low, self.high, self.log)
        if self.log and self.step != 1:
            raise ValueError("a log-scaled int range must have step 1")
        return self

    def values(self) -> list[int]:
        return list(range(self.low, self.high + 1, self.step))

    def count(self) -> int:
        return (self.high - self.low) // self.step + 1

    def sample(self, rng: np.random.Generator) -> int:
        if self.log:
            value = math.floor(math.exp(rng.uniform(math.log(self.low), math.log(self.high + 1))))
            return int(min(max(value, self.low), self.high))
        return int(self.low + self.step * rng.integers(self.count()))

    def suggest(self, trial, name: str) -> int:
        return trial.suggest_int(name, self.low, self.high, step=self.step, log=self.log)

    def contains(self, value: Any) -> bool:
        return (isinstance(value, int) and not isinstance(value, bool)
                and self.low <= value <= self.high and (value - self.low) % self.step == 0)


class FloatRange(_Strict):
    low: float
    high: float
    log: bool = False
    tied: Optional[bool] = None

    @model_validator(mode="after")
    def _check(self) -> "FloatRange":
        _check_range(self.low, self.high, self.log)
        return self

    def values(self) -> list[float]:
        return [self.low, self.high]

    def count(self) -> None:
        return None  # continuous: not counted in a space's size

    def sample(self, rng: np.random.Generator) -> float:
        if self.log:
            return float(math.exp(rng.uniform(math.log(self.low), math.log(self.high))))
        return float(rng.uniform(self.low, self.high))

    def suggest(self, trial, name: str) -> float:
        return trial.suggest_float(name, self.low, self.high, log=self.log)

    def contains(self, value: Any) -> bool:
        return (isinstance(value, (int, float)) and not isinstance(value, bool)
                and self.low * (1 - 1e-9) <= value <= self.high * (1 + 1e-9))


class Fixed(_Strict):
    value: Any
    tied: Optional[bool] = None

    def values(self) -> list[Any]:
        return [self.value]

    def count(self) -> int:
        return 1

    def sample(self, rng: np.random.Generator) -> Any:
        return self.value

    def suggest(self, trial, name: str) -> Any:
        return self.value

    def contains(self, value: Any) -> bool:
        return _same(value, self.value)


def _check_range(low: float, high: float, log: bool) -> None:
    if low > high:
        raise ValueError(f"inverted range: low={low} is greater than high={high}")
    if log and low <= 0:
        raise ValueError(f"a log-scaled range needs low > 0, got low={low}")


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return list(a) == list(b)
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    return a == b


def optuna_key(value: Any) -> Any:
    """Optuna's categorical values must be scalars: lists (link patterns) become strings."""
    if isinstance(value, (list, tuple)):
        return "-".join(str(v) for v in value)
    return value


def _normalise(raw: Any) -> Any:
    if isinstance(raw, BaseModel):  # a choice built in code
        return raw
    if isinstance(raw, list):
        return {"choices": raw}
    if isinstance(raw, dict):
        if not ({"choices", "low", "high", "value"} & raw.keys()):
            raise ValueError("expected a list of choices, a range {low, high[, step, log]} or a "
                             f"fixed value, got a mapping with keys {sorted(raw)}")
        return raw
    return {"value": raw}


def _kind(raw: Any) -> str:
    if isinstance(raw, BaseModel):
        return {Categorical: "categorical", IntRange: "int_range", FloatRange: "float_range"}.get(type(raw), "fixed")
    if "choices" in raw:
        return "categorical"
    if "low" in raw or "high" in raw:
        ints = all(isinstance(raw.get(k), int) and not isinstance(raw.get(k), bool) for k in ("low", "high"))
        return "int_range" if ints else "float_range"
    return "fixed"


Choice = Annotated[
    Union[Annotated[Categorical, Tag("categorical")], Annotated[IntRange, Tag("int_range")],
          Annotated[FloatRange, Tag("float_range")], Annotated[Fixed, Tag("fixed")]],
    Discriminator(_kind),
    BeforeValidator(_normalise),
]
_TAGS = {"categorical", "int_range", "float_range", "fixed"}


class GlobalChoices(_Strict):
    """Choices that hold for the whole model (and its training)."""

    hidden_dim: Choice = Fixed(value=64)
    num_layers: Choice = Fixed(value=2)
    dropout: Choice = Fixed(value=0.0)
    lr: Choice = Fixed(value=0.01)
    weight_decay: Choice = Fixed(value=0.0)
    encoding: Choice = Fixed(value="none")
    encoding_dim: Choice = Fixed(value=8)
    pooling: Choice = Fixed(value="mean")
    residual: Choice = Fixed(value=True)  # around each branch: none | identity | linear (true / false: identity / none)
    layer_form: Choice = Fixed(value="gps")  # gps | conv_norm_act (Luo et al.) | pre_norm (Platonov et al.)
    links: Choice = Fixed(value=None)  # a link pattern turns the stack into a NAS-Bench-Graph cell
    input_projection: Choice = Fixed(value=True)  # false: the first MPNN reads the raw features
    input_activation: Choice = Fixed(value="identity")  # after the projection (Platonov et al.: gelu)
    head: Choice = Fixed(value="linear")  # last_layer: the last MPNN is the classifier
    input_dropout: Choice = Fixed(value=None)  # null: the same as dropout
    attention_dropout: Choice = Fixed(value=0.0)  # on attention coefficients (gat, gatv2, full, masked)
    feature_norm: Choice = Fixed(value="none")  # row: row-normalised input features
    optimizer: Choice = Fixed(value="adamw")  # adam: Adam with L2 weight decay
    lr_schedule: Choice = Fixed(value="constant")  # step: halved every 50 epochs (GIN); cosine
    jk: Choice = Fixed(value="none")  # jumping knowledge: none | cat | max


class LayerChoices(_Strict):
    """Choices made per layer; ``tied`` is the default for every one of them."""

    tied: bool = False
    mpnn: Choice = Fixed(value="gcn")
    attention: Choice = Fixed(value="none")
    heads: Choice = Fixed(value=1)
    top_m: Choice = Fixed(value=8)  # nodes each node attends to, for the topm attention form
    kv_source: Choice = Fixed(value="features")  # keys/values of kv_from_mpnn: features | mpnn
    norm: Choice = Fixed(value="batch")
    ffn: Choice = Fixed(value=False)
    activation: Choice = Fixed(value="relu")
    head_merge: Choice = Fixed(value="auto")  # multi-head MPNNs: auto | concat | mean


class SparsityChoices(_Strict):
    """Target sparsity per dimension, each a choice (GTSP's four: edges, heads, layers,
    weights; fractions removed), and how edges are chosen."""

    edges: Choice = Fixed(value=0.0)
    heads: Choice = Fixed(value=0.0)
    layers: Choice = Fixed(value=0.0)
    weights: Choice = Fixed(value=0.0)
    edge_method: Choice = Fixed(value="learned")  # learned | teddy


class SpaceSpec(_Strict):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: str = Field(min_length=1)
    version: int = 1
    description: str = ""
    global_: GlobalChoices = Field(default_factory=GlobalChoices, alias="global")
    layers: LayerChoices = Field(default_factory=LayerChoices)
    sparsity: Optional[SparsityChoices] = None  # absent: every architecture is dense
    canonical: Optional[str] = None  # a registered canonical form: size() counts distinct forms


GLOBAL_FIELDS = tuple(GlobalChoices.model_fields)
LAYER_FIELDS = tuple(f for f in LayerChoices.model_fields if f != "tied")
SPARSITY_FIELDS = tuple(SparsityChoices.model_fields)


# --- value rules, checked after the shape: (what is expected, predicate) -------------------

def _int_at_least(n: int) -> tuple[str, Callable[[Any], bool]]:
    return f"an integer >= {n}", lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= n


def _number(lo: float, hi: float, lo_open: bool = False, hi_open: bool = False):
    def ok(v: Any) -> bool:
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            return False
        return (v > lo if lo_open else v >= lo) and (v < hi if hi_open else v <= hi)
    return f"a number in {'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}", ok


def _name_in(registry):
    return f"one of: {', '.join(registry.names())}", lambda v: isinstance(v, str) and v in registry


def _literal(kind: Any) -> tuple[str, Callable[[Any], bool]]:
    values = get_args(kind)
    return f"one of: {', '.join(values)}", lambda v: v in values and isinstance(v, str)


def _links_ok(v: Any) -> bool:
    if v is None:
        return True
    return (isinstance(v, (list, tuple)) and len(v) > 0
            and all(isinstance(j, int) and 0 <= j <= i for i, j in enumerate(v)))


RULES: dict[str, tuple[str, Callable[[Any], bool], bool]] = {
    # field: (expected, predicate, may be a range)
    "hidden_dim": (*_int_at_least(1), True),
    "num_layers": (*_int_at_least(1), True),
    "dropout": (*_number(0.0, 1.0, hi_open=True), True),
    "lr": (*_number(0.0, math.inf, lo_open=True), True),
    "weight_decay": (*_number(0.0, math.inf), True),
    "encoding": (*_name_in(ENCODING), False),
    "encoding_dim": (*_int_at_least(1), True),
    "pooling": (*_name_in(POOLING), False),
    "residual": (f"one of: {', '.join(get_args(Residual))} (or true / false: identity / none)",
                 lambda v: residual_name(v) in get_args(Residual), False),
    "layer_form": (*_literal(LayerForm), False),
    "input_activation": (*_name_in(ACTIVATION), False),
    "links": ("null or a list whose i-th entry is an earlier node in 0..i (0 = the input)",
              _links_ok, False),
    "mpnn": (*_name_in(MPNN), False),
    "attention": (*_name_in(ATTENTION), False),
    "heads": (*_int_at_least(1), True),
    "top_m": (*_int_at_least(1), True),
    "kv_source": ("one of: features, mpnn", lambda v: v in ("features", "mpnn"), False),
    "norm": (*_name_in(NORM), False),
    "ffn": ("true or false", lambda v: isinstance(v, bool), False),
    "input_projection": ("true or false", lambda v: isinstance(v, bool), False),
    "head": (*_literal(Head), False),
    "input_dropout": ("null or a number in [0.0, 1.0)",
                      lambda v: v is None or _number(0.0, 1.0, hi_open=True)[1](v), True),
    "attention_dropout": (*_number(0.0, 1.0, hi_open=True), True),
    "feature_norm": (*_literal(FeatureNorm), False),
    "optimizer": (*_literal(Optimizer), False),
    "lr_schedule": (*_literal(LRSchedule), False),
    "jk": (*_literal(JumpingKnowledge), False),
    "activation": (*_name_in(ACTIVATION), False),
    "head_merge": (*_literal(HeadMerge), False),
}
SPARSITY_RULES: dict[str, tuple[str, Callable[[Any], bool], bool]] = {
    **dict.fromkeys(("edges", "heads", "layers", "weights"), (*_number(0.0, 1.0, hi_open=True), True)),
    "edge_method": (f"one of: {', '.join(get_args(EdgeMethod))}", lambda v: v in get_args(EdgeMethod), False),
}


def check_values(spec: SpaceSpec) -> list[tuple[str, str]]:
    """Every problem with the values of a shape-valid spec, as ``(path, message)``."""
    problems: list[tuple[str, str]] = []
    sections = [("global", spec.global_, GLOBAL_FIELDS), ("layers", spec.layers, LAYER_FIELDS)]
    if spec.sparsity is not None:
        sections.append(("sparsity", spec.sparsity, SPARSITY_FIELDS))
    for section, model, fields in sections:
        for field in fields:
            choice = getattr(model, field)
            expected, ok, rangeable = (SPARSITY_RULES if section == "sparsity" else RULES)[field]
            path = f"{section}.{field}"
            if isinstance(choice, (IntRange, FloatRange)):
                if not rangeable:
                    problems.append((path, f"a range is not allowed here; expected a list of {expected}"))
                    continue
                for end in ("low", "high"):
                    if not ok(getattr(choice, end)):
                        problems.append((f"{path}.{end}", f"expected {expected}, got {getattr(choice, end)!r}"))
            elif isinstance(choice, Categorical):
                for i, value in enumerate(choice.choices):
                    if not ok(value):
                        problems.append((f"{path}[{i}]", f"expected {expected}, got {value!r}"))
            elif not ok(choice.value):
                problems.append((path, f"expected {expected}, got {choice.value!r}"))
            if section != "layers" and choice.tied is not None:
                problems.append((f"{path}.tied", "only per-layer choices can be tied"))
    if spec.canonical is not None:
        from graphnas.search_spaces.canonical import CANONICAL

        if spec.canonical not in CANONICAL:
            problems.append(("canonical", f"expected one of: {', '.join(CANONICAL.names())}, got {spec.canonical!r}"))
    problems += _applicability(spec)
    patterns = [p for p in spec.global_.links.values() if p is not None]
    if patterns and spec.sparsity is not None:
        problems.append(("sparsity", "a space with links (NAS-Bench-Graph cells) cannot have a sparsity section"))
    if patterns:  # a NAS-Bench-Graph cell has no attention, FFN or residual branches
        for section, model, field, default in (("layers", spec.layers, "attention", "none"),
                                               ("layers", spec.layers, "ffn", False),
                                               ("global", spec.global_, "residual", True),
                                               ("global", spec.global_, "input_projection", True),
                                               ("global", spec.global_, "head", "linear"),
                                               ("global", spec.global_, "jk", "none")):
            if [residual_name(v) for v in getattr(model, field).values()] != [residual_name(default)]:
                problems.append((f"{section}.{field}", f"must be {default!r} (fixed) in a space with links: "
                                 "the cell has no such branch"))
    if not problems and patterns:
        depths = spec.global_.num_layers.values()
        if any(len(p) != d for p in patterns for d in depths):
            problems.append(("global.links", f"every link pattern must have num_layers entries; "
                             f"pattern lengths {sorted({len(p) for p in patterns})}, "
                             f"num_layers {sorted(set(depths))}"))
    return problems


def _applicability(spec: SpaceSpec) -> list[tuple[str, str]]:
    """Choices that no architecture of the space could use: refused, naming what would."""
    problems = []
    g, layers = spec.global_, spec.layers
    mpnns, attentions = set(layers.mpnn.values()), set(layers.attention.values())
    if any(v for v in g.attention_dropout.values()):
        mpnn_ok, attn_ok = MPNN.with_capability("attention_dropout"), ATTENTION.with_capability("attention_dropout")
        if not (mpnns & set(mpnn_ok) or attentions & set(attn_ok)):
            problems.append(("global.attention_dropout", f"applies to operators with attention coefficients (mpnn "
                             f"{', '.join(mpnn_ok)}; attention {', '.join(attn_ok)}); the space has mpnn "
                             f"{', '.join(sorted(mpnns))} and attention {', '.join(sorted(attentions))}"))
    if set(layers.head_merge.values()) - {"auto"} and not mpnns & set(MPNN.with_capability("heads")):
        problems.append(("layers.head_merge", f"applies to multi-head MPNNs ({', '.join(MPNN.with_capability('heads'))}); "
                         f"the space has mpnn {', '.join(sorted(mpnns))}"))
    if "concat" in layers.head_merge.values() and isinstance(g.hidden_dim, (Categorical, Fixed)):
        bad = [(c, h) for c in g.hidden_dim.values() for h in layers.heads.values()
               if isinstance(c, int) and isinstance(h, int) and c % h]
        if bad:
            problems.append(("layers.head_merge", f"concat needs heads to divide hidden_dim; "
                             f"hidden_dim {bad[0][0]} with heads {bad[0][1]} does not"))
    if spec.sparsity is not None and set(g.jk.values()) - {"none"} and any(spec.sparsity.layers.values()):
        problems.append(("global.jk", "jumping knowledge reads every layer, so it cannot be searched with "
                         "sparsity.layers > 0"))
    return problems


def format_loc(loc: tuple) -> str:
    """Pydantic location -> ``layers.mpnn[3]`` (union tags and the ``choices`` key dropped)."""
    parts: list[str] = []
    items = [p for p in loc if p not in _TAGS]
    for i, part in enumerate(items):
        if isinstance(part, int):
            parts.append(f"[{part}]")
        elif part == "choices" and i + 1 < len(items) and isinstance(items[i + 1], int):
            continue
        else:
            parts.append(("." if parts else "") + str(part))
    return "".join(parts)


def _keys_at(model: type[BaseModel], loc: tuple) -> list[str]:
    """The keys the model at ``loc`` (a pydantic error location under ``model``) accepts."""
    for part in loc:
        if not isinstance(part, str):
            continue  # a list index or a union member's tag
        field = next((f for name, f in model.model_fields.items() if part in (name, f.alias)), None)
        nested = _model_in(field.annotation) if field is not None else None
        if nested is None:
            break
        model = nested
    return [f.alias or name for name, f in model.model_fields.items()]


def _model_in(annotation: Any) -> Optional[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return next((m for m in map(_model_in, get_args(annotation)) if m is not None), None)


def _key_paths(model: type[BaseModel], prefix: str = "") -> dict[str, str]:
    """Every key of the space's tree -> its dotted path (``hidden_dim`` -> ``global.hidden_dim``)."""
    paths: dict[str, str] = {}
    for name, f in model.model_fields.items():
        key = f.alias or name
        nested = _model_in(f.annotation)
        if nested is not None:
            paths.update({k: v for k, v in _key_paths(nested, f"{prefix}{key}.").items() if k not in paths})
        paths.setdefault(key, prefix + key)
    return paths


def _did_you_mean(key: str, valid: list[str], elsewhere: dict[str, str]) -> str:
    """The closest valid key here; else the closest key elsewhere in the tree, by its path."""
    close = difflib.get_close_matches(key, valid, n=1)
    if close:
        return f"; did you mean {close[0]!r}?"
    close = difflib.get_close_matches(key, list(elsewhere), n=1, cutoff=0.8)
    if close:
        return f"; did you mean {elsewhere[close[0]]!r}?"
    return f"; valid here: {', '.join(sorted(valid))}"


def parse_spec(raw: Any, source: str) -> SpaceSpec:
    """Validate a parsed YAML document; raise :class:`SpaceError` listing every problem."""
    if not isinstance(raw, dict):
        raise SpaceError(source, [("", f"expected a mapping at the top level, got {type(raw).__name__}")])
    try:
        spec = SpaceSpec.model_validate(raw)
    except ValidationError as err:
        problems = []
        for e in err.errors():
            msg = e["msg"].removeprefix("Value error, ")
            if e["type"] == "extra_forbidden":
                msg = "unknown field" + _did_you_mean(str(e["loc"][-1]), _keys_at(SpaceSpec, e["loc"][:-1]),
                                                      _key_paths(SpaceSpec))
            problems.append((format_loc(e["loc"]), msg))
        raise SpaceError(source, problems) from None
    problems = check_values(spec)
    if problems:
        raise SpaceError(source, problems)
    return spec


# --- YAML: a key written twice in one mapping is refused ------------------------------------

class DuplicateKeyError(ValueError):
    """A mapping of a space or zoo file has the same key twice (PyYAML keeps the last)."""


class StrictLoader(yaml.SafeLoader):
    """PyYAML's SafeLoader that refuses a key written twice in one mapping, naming the key
    and both lines, instead of silently keeping the last value."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise DuplicateKeyError(f"duplicate key {key!r} at lines {seen[key]} and {line}")
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def load_yaml(text: str) -> Any:
    """Parse a space or zoo file with :class:`StrictLoader` (a duplicated key raises
    :class:`DuplicateKeyError`: ``duplicate key 'hidden_dim' at lines 3 and 7``)."""
    return yaml.load(text, Loader=StrictLoader)  # noqa: S506 (a SafeLoader subclass)
