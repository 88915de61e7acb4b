"""``SearchSpace``: sample, suggest, test membership and count a validated space."""
from __future__ import annotations

import difflib
import hashlib

import itertools
import json
import math
from importlib import resources
from pathlib import Path
from typing import Any, Iterator, Optional, Protocol

import numpy as np
import yaml

from types import SimpleNamespace

from graphnas.search_spaces.architecture import (Architecture, LayerArch, Sparsity, canonical_fixes, moot_keys, residual_name,
                                       unused_choices)
from graphnas.search_spaces.canonical import CANONICAL, canonical_id
from graphnas.search_spaces.param_key import ParamKey, layer_key
from graphnas.search_spaces.schema import (GLOBAL_FIELDS, DuplicateKeyError, load_yaml, LAYER_FIELDS, SPARSITY_FIELDS, Fixed, FloatRange, SpaceError, SpaceSpec,
                                  optuna_key, parse_spec)

PRESET_DIR = "presets"


class _Picker(Protocol):
    def __call__(self, name: str, choice: Any) -> Any: ...


class SearchSpace:
    """A validated space. ``source`` names the file (or preset) it came from."""

    def __init__(self, spec: SpaceSpec, source: str = "<memory>", raw: Optional[dict] = None) -> None:
        self.spec = spec
        self.source = source
        self.raw = raw  # the dict a space made in memory was given (from_dict): to_yaml writes it back
        self._canonical_size: Optional[int] = None

    # --- construction -----------------------------------------------------------------
    @classmethod
    def from_yaml(cls, path: str | Path) -> "SearchSpace":
        path = Path(path)
        if not path.is_file():
            raise SpaceError(str(path), [("", "space file not found" + _preset_hint(str(path)))])
        try:
            raw = load_yaml(path.read_text(encoding="utf-8"))
        except UnicodeDecodeError as err:
            raise SpaceError(str(path), [("", f"not a text file: a space is UTF-8 YAML ({err.reason} at byte "
                                              f"{err.start})")]) from None
        except DuplicateKeyError as err:
            raise SpaceError(str(path), [("", str(err))]) from None
        except yaml.YAMLError as err:
            raise SpaceError(str(path), [("", f"not valid YAML: {err}")]) from None
        return cls(parse_spec(raw, str(path)), str(path))

    @classmethod
    def from_dict(cls, raw: dict, source: str = "<memory>") -> "SearchSpace":
        return cls(parse_spec(raw, source), source, raw=raw)

    def to_yaml(self) -> str:
        """The space as a YAML file that loads back to it: the dict it was made from, else its
        validated spec."""
        raw = self.raw if self.raw is not None else self.spec.model_dump(mode="json", by_alias=True)
        return yaml.safe_dump(raw, sort_keys=False)

    @classmethod
    def preset(cls, name: str) -> "SearchSpace":
        names = preset_names()
        if name not in names:
            raise SpaceError(name, [("", f"unknown preset; presets: {', '.join(names)}")])
        text = resources.files("graphnas.search_spaces").joinpath(PRESET_DIR, f"{name}.yaml").read_text()
        try:
            raw = load_yaml(text)
        except DuplicateKeyError as err:
            raise SpaceError(f"preset:{name}", [("", str(err))]) from None
        return cls(parse_spec(raw, f"preset:{name}"), f"preset:{name}")

    @classmethod
    def load(cls, name_or_path: str | Path) -> "SearchSpace":
        """A preset name, or a path to a YAML file."""
        if str(name_or_path) in preset_names():
            return cls.preset(str(name_or_path))
        return cls.from_yaml(name_or_path)

    # --- neighbourhoods (search_spaces.neighbours) --------------------------------------
    def complete(self, params: dict[str, Any], rng: np.random.Generator) -> tuple[dict[str, Any], str]:
        """``params`` completed with random draws for the choices they lack (only those the
        space asks), and the canonical id of the architecture they build."""
        from graphnas.search_spaces.neighbours import draw

        trial, arch_id = draw(self, params, rng)
        return trial.params, arch_id

    def neighbours(self, params: dict[str, Any], rng: np.random.Generator,
                   seen: set[str] | frozenset[str] = frozenset(), complete=None) -> Iterator[dict[str, Any]]:
        """The architectures one choice away from ``params`` whose canonical ids are not in
        ``seen``, in a random order (naszilla's ``get_nbhd``); ``complete``: how a parameter
        set is completed (default: :func:`search_spaces.neighbours.draw` with ``rng``)."""
        from graphnas.search_spaces.neighbours import draw, neighbours

        return neighbours(params, rng, seen, complete or (lambda p: draw(self, p, rng)))

    @property
    def name(self) -> str:
        return self.spec.name

    # --- the four questions -------------------------------------------------------------
    def sample(self, rng: np.random.Generator) -> Architecture:
        return self._resolve(lambda name, choice: choice.sample(rng))

    def suggest(self, trial) -> Architecture:
        """Ask an Optuna trial for every choice (parameters named like ``Architecture.flat``)."""
        return self._resolve(lambda name, choice: choice.suggest(trial, name))

    def build(self, pick: "_Picker") -> Architecture:
        """An architecture whose every choice is ``pick(name, choice)``; names as in
        :meth:`suggest` (``hidden_dim``, ``layer2.mpnn``, or ``mpnn`` when tied)."""
        return self._resolve(pick)

    def trial_params(self, arch: Architecture) -> dict[str, Any]:
        """The Optuna parameters for which :meth:`suggest` returns ``arch``: what
        ``study.enqueue_trial`` takes to evaluate a given architecture as a trial."""
        params: dict[str, Any] = {}

        def record(name: str, choice: Any) -> Any:
            key = ParamKey.parse(name)
            field = key.field
            if key.sparsity:
                value = getattr(arch.sparsity_targets, field)
            elif key.layer is not None:
                value = getattr(arch.layers[key.layer], field)
            elif field in LAYER_FIELDS:
                value = getattr(arch.layers[0], field)
            else:
                value = _as_written(choice, field, getattr(arch, field))
            if not isinstance(choice, Fixed):
                # a choice that cannot apply to arch (canonical_fixes) may hold a value outside
                # the space; any value of the choice builds the same architecture
                params[name] = optuna_key(value if choice.contains(_plain(value)) else choice.values()[0])
            return _plain(value)

        self._resolve(record)
        return params

    def contains(self, arch: Architecture) -> bool:
        g = self.spec.global_
        moot = moot_keys(arch)  # set by the space whatever was picked
        if not all(getattr(g, f).contains(_as_written(getattr(g, f), f, _plain(getattr(arch, f))))
                   for f in GLOBAL_FIELDS if f not in moot):
            return False
        # a choice that a layer never reads may hold anything: an export leaves it out (default)
        unused = unused_choices(arch)
        for field in LAYER_FIELDS:
            choice = getattr(self.spec.layers, field)
            values = [getattr(layer, field) for i, layer in enumerate(arch.layers)
                      if layer_key(i, field) not in moot and field not in unused[i]]
            if not all(choice.contains(v) for v in values):
                return False
            if self.tied(field) and len(set(values)) > 1:
                return False
        if self.spec.sparsity is None:
            return arch.sparsity is None
        sparsity = arch.sparsity_targets
        moot = _moot_dimensions(arch.layers)  # 0 there whatever was chosen
        return all(getattr(self.spec.sparsity, f).contains(getattr(sparsity, f)) for f in SPARSITY_FIELDS
                   if (f != "edge_method" or sparsity.edges > 0) and f not in moot)

    def digest(self) -> str:
        """A digest of the space's content (its spec): equal for equal spaces, whatever their
        file; knowledge transfers only between searches of one digest."""
        content = json.dumps(self.spec.model_dump(mode="json", by_alias=True), sort_keys=True)
        return hashlib.sha256(content.encode()).hexdigest()[:12]

    def canonical_id(self, arch: Architecture) -> str:
        """The id of what ``arch`` computes: isomorphic cells of a space with a canonical
        form share it (``search_spaces.canonical.canonical_id``); ``arch.arch_id`` otherwise."""
        return canonical_id(self.spec.canonical, arch)

    def size(self) -> int:
        """Number of discrete architectures; continuous (float range) choices are not
        counted. With a canonical form, architectures that compute the same function count
        once (and degenerate ones not at all). Without one, every labelling counts, also of
        choices that a layer never reads (heads of a GCN layer without attention), which
        share one ``arch_id``: a search never queries them twice, so this is an upper bound."""
        if self.spec.canonical is None:
            return self.labelled_size()
        if self._canonical_size is None:
            form = CANONICAL.get(self.spec.canonical)
            count = form.count(self)
            self._canonical_size = count if count is not None else len({form.key(a) for a in self.enumerate()} - {None})
        return self._canonical_size

    def labelled_size(self) -> int:
        """Number of discrete architectures as labelled (isomorphic ones counted apart)."""
        g = self.spec.global_
        fixed = math.prod(_count(getattr(g, f)) for f in GLOBAL_FIELDS if f != "num_layers")
        tied = math.prod(_count(getattr(self.spec.layers, f)) for f in LAYER_FIELDS if self.tied(f))
        free = math.prod(_count(getattr(self.spec.layers, f)) for f in LAYER_FIELDS if not self.tied(f))
        sparse = math.prod(_count(getattr(self.spec.sparsity, f)) for f in SPARSITY_FIELDS) if self.spec.sparsity else 1
        return sum(fixed * tied * sparse * free ** depth for depth in g.num_layers.values())

    def enumerate(self) -> Iterator[Architecture]:
        """Every discrete architecture of the space (labellings, not canonical forms)."""
        g = self.spec.global_
        for depth in g.num_layers.values():
            order: list[tuple[str, list[Any]]] = []

            def collect(name: str, choice: Any, depth=depth) -> Any:
                if isinstance(choice, FloatRange):
                    raise ValueError(f"{self.source}: {name} is a float range: the space cannot be enumerated")
                values = [depth] if name == "num_layers" else choice.values()
                order.append((name, values))
                return values[0]

            self._resolve(collect)
            names = [n for n, _ in order]
            for combo in itertools.product(*(v for _, v in order)):
                chosen = dict(zip(names, combo))
                yield self._resolve(lambda name, choice: chosen[name], validate=False)

    def encodings(self) -> dict[str, int]:
        """Encodings the space can choose, each with the largest ``encoding_dim`` it can
        ask for: what a dataset must precompute once for every trial of a search."""
        k = max(self.spec.global_.encoding_dim.values())
        return {name: k for name in self.spec.global_.encoding.values() if name != "none"}

    def feature_norms(self) -> set[str]:
        """Feature normalisations the space can choose: precomputed once per dataset."""
        from graphnas.search_spaces.builder import precomputed_feature_norms

        return precomputed_feature_norms(self.spec.global_.feature_norm.values())

    # --- internals ----------------------------------------------------------------------
    def tied(self, field: str) -> bool:
        """Does one value of per-layer ``field`` hold for every layer?"""
        choice = getattr(self.spec.layers, field)
        return self.spec.layers.tied if choice.tied is None else choice.tied

    def _resolve(self, pick: _Picker, validate: bool = True) -> Architecture:
        values = {f: pick(f, getattr(self.spec.global_, f)) for f in GLOBAL_FIELDS}
        depth = values["num_layers"]
        per_layer: dict[str, list[Any]] = {}
        for field in LAYER_FIELDS:
            choice = getattr(self.spec.layers, field)
            if self.tied(field):
                per_layer[field] = [pick(field, choice)] * depth
            else:
                per_layer[field] = [pick(layer_key(i, field), choice) for i in range(depth)]
        # validate=False: values already come from the validated space (enumeration of
        # tens of thousands of architectures, where pydantic validation dominates).
        layer_cls = LayerArch if validate else LayerArch.model_construct
        arch_cls = Architecture if validate else Architecture.model_construct
        layer_values = [{f: per_layer[f][i] for f in LAYER_FIELDS} for i in range(depth)]
        _apply_canonical(values, layer_values)
        layers = tuple(layer_cls(**v) for v in layer_values)
        links = values.pop("links")
        return arch_cls(space=self.spec.name, space_version=self.spec.version, layers=layers,
                        links=tuple(links) if links is not None else None, sparsity=self._sparsity(pick, layers),
                        **values)

    def _sparsity(self, pick: _Picker, layers: tuple[LayerArch, ...]) -> Optional[Sparsity]:
        """The picked targets, with those that cannot remove anything here set to 0 (so one
        model has one id); ``None`` when all are 0, so a dense architecture is the same
        (same id) with or without the section; the edge method counts only with edges."""
        if self.spec.sparsity is None:
            return None
        values = {f: pick(f"sparsity.{f}", getattr(self.spec.sparsity, f)) for f in SPARSITY_FIELDS}
        sparsity = Sparsity(**{**values, **dict.fromkeys(_moot_dimensions(layers), 0.0)})
        if sparsity.dense:
            return None
        return sparsity if sparsity.edges else sparsity.model_copy(update={"edge_method": "learned"})


def _apply_canonical(values: dict[str, Any], layers: list[dict[str, Any]]) -> None:
    """Set the choices that cannot apply to the picked architecture to the one value they
    must have (:func:`canonical_fixes`), so a model has one id whatever was drawn for them."""
    if values.get("input_dropout") is not None and values["input_dropout"] == values["dropout"]:
        values["input_dropout"] = None  # the same model as no separate input dropout
    view = SimpleNamespace(**values, layers=[SimpleNamespace(**layer) for layer in layers])
    for key, _, want, _ in canonical_fixes(view):
        param = ParamKey.parse(key)
        if want is None and param.field == "head_merge":
            continue  # not fixable (concat that does not divide): the architecture is refused
        if param.layer is not None:
            layers[param.layer][param.field] = want
        else:
            values[key] = want


def _moot_dimensions(layers: tuple[LayerArch, ...]) -> list[str]:
    """Sparsity dimensions that remove nothing from these layers: heads without a layer whose
    attention form prunes heads and has more than one; layers in a one-layer stack."""
    from graphnas.search_spaces.operators.attention import head_prunable_forms

    moot, prunable = [], head_prunable_forms()
    if not any(layer.attention in prunable and layer.heads > 1 for layer in layers):
        moot.append("heads")
    if len(layers) < 2:
        moot.append("layers")
    return moot


def _count(choice: Any) -> int:
    return 1 if isinstance(choice, FloatRange) else choice.count()


def _as_written(choice: Any, field: str, value: Any) -> Any:
    """``value`` as the space writes it: a space (and an Optuna study) from before
    ``residual: linear`` holds true / false where the architecture says identity / none."""
    if field != "residual" or isinstance(choice, FloatRange):
        return value
    return next((v for v in choice.values() if residual_name(v) == value), value)


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _preset_hint(name: str) -> str:
    """For a name that is no file: the closest preset, as a user who misspelled one meant."""
    if "/" in name or Path(name).suffix:  # a path: the user meant a file
        return ""
    close = difflib.get_close_matches(name, preset_names(), n=1, cutoff=0.6)
    return (f"; did you mean the preset {close[0]!r}?" if close else "") + f" (presets: {', '.join(preset_names())})"


def preset_names() -> list[str]:
    folder = resources.files("graphnas.search_spaces").joinpath(PRESET_DIR)
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))
