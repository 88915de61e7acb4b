"""Only the warnings known to be noise are silenced; a real warning reaches the user."""
from __future__ import annotations

import logging
import warnings

from graphnas.nas.noise import KNOWN_NOISE, known_noise_silenced


def test_known_noise_is_silenced_and_a_real_warning_is_not():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with known_noise_silenced():
            for noise in KNOWN_NOISE:
                warnings.warn(noise.message + " (and the rest of torch's text)", noise.category)
            warnings.warn("your operator's own warning", UserWarning)
    assert [str(w.message) for w in caught] == ["your operator's own warning"]


def test_debug_logging_shows_the_noise_too():
    logger = logging.getLogger("graphnas")
    before = logger.level
    logger.setLevel(logging.DEBUG)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with known_noise_silenced():
                warnings.warn(KNOWN_NOISE[0].message, KNOWN_NOISE[0].category)
        assert len(caught) == 1
    finally:
        logger.setLevel(before)
