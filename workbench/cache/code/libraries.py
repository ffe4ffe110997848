"""Installed versions of the third-party libraries a task's modules import.

They are those of the process that computes the version, read once per process (`clear` after
upgrading a library in place).
"""

from __future__ import annotations

import functools
import importlib.metadata
import threading
from collections.abc import Mapping

NOT_INSTALLED = "not-installed"
# Metadata lookups read many files: one thread does them while the others wait for its answer.
_metadata_lock = threading.Lock()
_DISTRIBUTIONS: dict[str, tuple[tuple[str, str], ...]] = {}


@functools.cache
def _packages_distributions() -> Mapping[str, list[str]]:
    return importlib.metadata.packages_distributions()  # ~0.1 s: once per process


def distributions(top: str) -> tuple[tuple[str, str], ...]:
    """(distribution, version) pairs that provide the top-level module `top`."""
    with _metadata_lock:
        cached = _DISTRIBUTIONS.get(top)
        if cached is not None:
            return cached
        names = sorted(set(_packages_distributions().get(top, ()))) or [top]
        found: list[tuple[str, str]] = []
        for name in names:
            try:
                found.append((name, importlib.metadata.version(name)))
            except importlib.metadata.PackageNotFoundError:
                found.append((name, NOT_INSTALLED))  # still keyed: installing it changes it
        _DISTRIBUTIONS[top] = result = tuple(found)
        return result


def clear() -> None:
    """Forget the versions read so far (and the map of top-level modules to distributions)."""
    with _metadata_lock:
        _DISTRIBUTIONS.clear()
        _packages_distributions.cache_clear()
