"""One-choice neighbourhoods of a space's architectures, as naszilla's ``get_nbhd``: the
architectures one choice away from a set of the space's parameters (another value of a
categorical or integer choice, a step of a float choice). The strategies that move through the
space (local search, evolution's mutations, the predictor's candidates) and the confirmation's
neighbours (nas.refine) all take them from here, through :meth:`SearchSpace.neighbours`.

A parameter set is completed through a stand-in for an Optuna trial (:class:`DrawTrial`),
which answers the space's ``suggest`` calls from the set and draws what it lacks at random:
a move that adds a layer adds that layer's choices.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterator, Optional

import numpy as np
import optuna
from optuna.distributions import BaseDistribution

if TYPE_CHECKING:
    from graphnas.search_spaces.space import SearchSpace

Draw = Callable[[dict[str, Any]], "tuple[DrawTrial, str]"]


def draw(space: "SearchSpace", params: dict[str, Any], rng: np.random.Generator) -> "tuple[DrawTrial, str]":
    """``params`` completed with random draws for the choices they lack, restricted to those
    the space asks (as a trial records them), and the canonical id of the architecture."""
    trial = DrawTrial(params, rng)
    return trial, space.canonical_id(space.suggest(trial))


def neighbours(params: dict[str, Any], rng: np.random.Generator, seen: set[str] | frozenset[str],
               complete: Draw) -> Iterator[dict[str, Any]]:
    """Every architecture one choice away from ``params`` whose canonical id is not in
    ``seen``, in a random order: another value of a categorical or integer choice, a step of
    a float choice (x2 or /2 on a log scale, a tenth of the range otherwise). ``complete``
    completes a parameter set (:func:`draw`, or a memoised one)."""
    distributions = complete(params)[0].distributions
    moves_ = [(name, value) for name, dist in distributions.items() for value in moves(dist, params[name])]
    found = {complete(params)[1]}
    for i in rng.permutation(len(moves_)):
        name, value = moves_[i]
        child, arch_id = complete({**params, name: value})
        if arch_id in seen or arch_id in found:
            continue
        found.add(arch_id)
        yield child.params


def moves(dist: BaseDistribution, value: Any) -> list[Any]:
    """The values one step from ``value`` in ``dist``."""
    if isinstance(dist, optuna.distributions.CategoricalDistribution):
        return [c for c in dist.choices if c != value]
    if isinstance(dist, optuna.distributions.IntDistribution):
        return [v for v in range(dist.low, dist.high + 1, dist.step) if v != value]
    if dist.log:
        steps = [value * 2, value / 2]
    else:
        steps = [value + (dist.high - dist.low) / 10, value - (dist.high - dist.low) / 10]
    return [float(min(max(s, dist.low), dist.high)) for s in steps if not math.isclose(s, value)]


def contains(dist: BaseDistribution, value: Any) -> bool:
    try:
        return dist._contains(dist.to_internal_repr(value))
    except (ValueError, TypeError):
        return False


@dataclass
class DrawTrial:
    """A stand-in for an Optuna trial: answers each ``suggest_*`` from ``given`` where it
    holds a valid value, otherwise from ``sample`` (a wrapped sampler) or at random, and
    records what was asked."""

    given: dict[str, Any]
    rng: np.random.Generator
    sample: Optional[Callable[[str, BaseDistribution], Any]] = None
    params: dict[str, Any] = field(default_factory=dict)
    distributions: dict[str, BaseDistribution] = field(default_factory=dict)
    drawn: bool = False  # whether some answer was drawn at random

    def _answer(self, name: str, dist: BaseDistribution, draw) -> Any:
        value = self.given.get(name)
        if name not in self.given or not contains(dist, value):
            value, self.drawn = (self.sample(name, dist) if self.sample else draw()), True
        self.params[name], self.distributions[name] = value, dist
        return value

    def suggest_categorical(self, name: str, choices) -> Any:
        choices = list(choices)
        return self._answer(name, optuna.distributions.CategoricalDistribution(choices),
                            lambda: choices[int(self.rng.integers(len(choices)))])

    def suggest_int(self, name: str, low: int, high: int, step: int = 1, log: bool = False) -> int:
        def draw() -> int:
            if log:
                return int(min(high, math.floor(math.exp(self.rng.uniform(math.log(low), math.log(high + 1))))))
            return int(low + step * self.rng.integers((high - low) // step + 1))
        return self._answer(name, optuna.distributions.IntDistribution(low, high, log=log, step=step), draw)

    def suggest_float(self, name: str, low: float, high: float, log: bool = False) -> float:
        def draw() -> float:
            return float(math.exp(self.rng.uniform(math.log(low), math.log(high))) if log
                         else self.rng.uniform(low, high))
        return self._answer(name, optuna.distributions.FloatDistribution(low, high, log=log), draw)
