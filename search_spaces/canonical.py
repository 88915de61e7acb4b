"""Canonical forms: which architectures of a space compute the same function.

A space file may name one (``canonical: nas_bench_graph``, registered by
:mod:`evaluators.nas_bench_graph`); :meth:`SearchSpace.size` then counts distinct canonical forms
rather than labellings, and a tabular benchmark looks architectures up by it. Each form maps an
architecture to a hashable key, or ``None`` when the architecture is degenerate and not part of
the space as its authors count it.
A form may also count a space's distinct forms faster than enumerating architectures.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Callable, Hashable, Optional

from graphnas.search_spaces.architecture import Architecture
from graphnas.search_spaces.param_key import ParamKey
from graphnas.search_spaces.registry import Registry


@dataclass(frozen=True)
class CanonicalForm:
    """``key(arch)``: the canonical key, ``None`` for a degenerate architecture;
    ``count(space)``: distinct keys in a space, or ``None`` to enumerate it; ``covers``:
    the choices the key stands for (flat names' last part), so that an id of the whole
    architecture adds the others (:func:`canonical_id`)."""

    key: Callable[[Architecture], Optional[Hashable]]
    count: Callable[[Any], Optional[int]] = lambda space: None
    covers: tuple[str, ...] = ("links", "mpnn")


def canonical_id(form_name: Optional[str], arch: Architecture) -> str:
    """One id per function computed: with a canonical form, its key (isomorphic cells share
    it) and a digest of the choices the key does not cover; the architecture's id without
    one, or for a degenerate architecture."""
    if form_name is None:
        return arch.arch_id
    form = CANONICAL.get(form_name)
    key = form.key(arch)
    if key is None:
        return arch.arch_id
    rest = {k: v for k, v in arch.flat().items() if ParamKey.parse(k).field not in form.covers}
    digest = hashlib.sha256(json.dumps(rest, sort_keys=True, default=str).encode()).hexdigest()[:8]
    return f"{form_name}:{key}:{digest}"


CANONICAL: Registry[CanonicalForm] = Registry("canonical form")
# NAS-Bench-Graph's form is the benchmark's own hash, kept with the rest of the benchmark
CANONICAL.provided_by("nas_bench_graph", "graphnas.evaluators.nas_bench_graph")
