"""Warnings that are known noise, silenced by name, one entry each with the reason.

The CLI used to silence every warning of a search; a user then never saw a real one (a
dataset's, a strategy's, their own operator's). Only these are silenced now, during a
search, a training or an assessment; ``graphnas -vv`` shows them too.
"""
from __future__ import annotations

import logging
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator


@dataclass(frozen=True)
class Noise:
    """A warning to silence: its category and a regex its message starts with."""

    category: type[Warning]
    message: str
    why: str


KNOWN_NOISE: tuple[Noise, ...] = (
    Noise(UserWarning, "Sparse CSR tensor support is in beta state",
          "torch's, once per process, when PyG builds the CSR adjacency of RWSE and LapPE encodings"),
    Noise(UserWarning, "Sparse invariant checks are implicitly disabled",
          "torch's, once per process, from the same call: PyG builds valid CSR tensors"),
)


log = logging.getLogger(__name__)


@contextmanager
def known_noise_silenced() -> Iterator[None]:
    """Silence :data:`KNOWN_NOISE` (and nothing else) inside the block, unless this package
    logs at debug level (``graphnas -vv``)."""
    with warnings.catch_warnings():
        if not log.isEnabledFor(logging.DEBUG):
            for noise in KNOWN_NOISE:
                warnings.filterwarnings("ignore", message=noise.message, category=noise.category)
        yield
