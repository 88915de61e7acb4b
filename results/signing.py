"""Signed snapshots: a pickle that this user's own graphnas wrote, and nothing else, is loaded.

A run directory travels between people ("resume my search"), and ``pickle.loads`` of a file
someone sent runs whatever code the file names. The sampler snapshot (``sampler.pkl``) is a
pickle because every strategy's sampler (Optuna's TPE and NSGA-II, the predictor with its
MLP ensemble, evolution) has its own state, and a resumed seeded search must propose exactly
what the uninterrupted one would: a JSON format per sampler class would have to follow each
Optuna release. So the pickle stays and is signed: an HMAC-SHA256 of its bytes with a key
kept in the user's cache (created on first use, readable by the user alone). A file whose
tag does not match (written elsewhere, edited, truncated) is refused before it is
unpickled. Python's ``hmac`` does the work; nothing here is cryptography of our own.
"""
from __future__ import annotations

import hashlib
import hmac
import io
import os
import pickle
import secrets
from pathlib import Path
from typing import Any, Optional

MAGIC = b"graphnas-signed-pickle 1\n"  # the format and its version
KEY_FILE = "snapshot.key"


class UntrustedFile(ValueError):
    """A signed file whose tag does not match this user's key: refused, never unpickled."""


def key_path(cache_dir: Optional[Path] = None) -> Path:
    from graphnas.evaluators.datasets import default_cache_dir  # the user's cache: $GRAPHNAS_CACHE or ~/.cache/graphnas

    return (cache_dir or default_cache_dir()) / KEY_FILE


def _key(cache_dir: Optional[Path] = None) -> bytes:
    """The user's key, created once (32 random bytes, mode 0600); two processes creating it
    at the same moment agree, since the loser of O_EXCL reads the winner's."""
    path = key_path(cache_dir)
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "wb") as f:
                f.write(secrets.token_bytes(32))
    key = path.read_bytes()
    if len(key) < 32:  # a key file cut short by a crash while it was written: a new one
        path.unlink(missing_ok=True)
        return _key(cache_dir)
    return key


def _tag(payload: bytes, cache_dir: Optional[Path]) -> bytes:
    return hmac.new(_key(cache_dir), payload, hashlib.sha256).hexdigest().encode()


def dumps(obj: Any, cache_dir: Optional[Path] = None) -> bytes:
    payload = pickle.dumps(obj)
    return MAGIC + _tag(payload, cache_dir) + b"\n" + payload


def verified_payload(blob: bytes, source: str, cache_dir: Optional[Path] = None) -> bytes:
    """The pickle inside ``blob`` once its tag is checked; UntrustedFile, one line naming
    ``source``, otherwise."""
    if not blob.startswith(MAGIC):
        raise UntrustedFile(f"{source}: not a snapshot signed by graphnas (an older or foreign format); it is not "
                            "loaded, since unpickling a file runs the code it names")
    tag, sep, payload = blob[len(MAGIC):].partition(b"\n")
    if not sep or not hmac.compare_digest(tag, _tag(payload, cache_dir)):
        raise UntrustedFile(f"{source}: damaged, or signed by another user's or machine's key "
                            f"({key_path(cache_dir)}); it is not loaded, since unpickling a file runs the code "
                            "it names")
    return payload


# The packages' import names before they moved under graphnas (graphnas.nas, ...): a snapshot
# that an older graphnas signed names its classes there.
FORMER_PACKAGES = ("nas", "search_spaces", "evaluators", "results")


class _Unpickler(pickle.Unpickler):
    """Reads a snapshot signed before the packages moved under ``graphnas``: its classes are
    found at their new paths (``nas.strategies.X`` -> ``graphnas.nas.strategies.X``)."""

    def find_class(self, module: str, name: str) -> Any:
        if module.partition(".")[0] in FORMER_PACKAGES:
            module = f"graphnas.{module}"
        return super().find_class(module, name)


def unpickle(payload: bytes) -> Any:
    """The object of a payload :func:`verified_payload` returned, its classes found at their
    current paths."""
    return _Unpickler(io.BytesIO(payload)).load()


def loads(blob: bytes, source: str, cache_dir: Optional[Path] = None) -> Any:
    return unpickle(verified_payload(blob, source, cache_dir))
