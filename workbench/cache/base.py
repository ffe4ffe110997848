"""The storage seam of the result cache: what every backend offers, and the key rule."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

# Keys become file names and Redis key parts, so the alphabet excludes '/', whitespace and
# glob characters. Cache keys are normally a 64-hex sha256.
KEY_PATTERN = re.compile(r"[A-Za-z0-9_.:-]{1,200}")


def validate_key(key: str) -> str:
    """Return `key` if it is a valid cache key; raise ValueError saying what is allowed."""
    if not isinstance(key, str) or KEY_PATTERN.fullmatch(key) is None:
        raise ValueError(
            f"invalid cache key {key!r}: use 1 to 200 characters from A-Z a-z 0-9 _ . : - "
            "(a cache key is normally a 64-character sha256 hex digest)"
        )
    return key


def check_payload(payload: bytes) -> bytes:
    """Backends store opaque bytes only: a str or an object here is a caller's bug."""
    if not isinstance(payload, bytes):
        raise TypeError(
            f"cache payloads are bytes, got {type(payload).__name__}; serialize the value first"
        )
    return payload


@dataclass(frozen=True)
class BackendStats:
    """One storage tier's figures. `bytes` counts payload bytes (disk: file bytes)."""

    backend: str  # "memory" | "disk" | "redis" | "none"
    entries: int
    bytes: int
    hits: int
    misses: int
    evictions: int = 0
    capacity_bytes: int | None = None
    location: str = ""  # directory, Redis URL (password masked), or ""


class CacheBackend(Protocol):
    """Stores opaque bytes under string keys. Thread-safe; never unpickles anything.

    A corrupt or half-written entry reads as a miss, never as an exception or a partial payload.
    """

    name: str

    def get(self, key: str) -> bytes | None:
        """The payload, or None on a miss. Counts a hit or a miss."""
        ...

    def put(self, key: str, payload: bytes) -> None: ...

    def contains(self, key: str) -> bool:
        """Whether an entry exists; counts neither a hit nor a miss."""
        ...

    def delete(self, key: str) -> bool:
        """Whether an entry was removed."""
        ...

    def clear(self) -> int:
        """Remove every entry; return how many were removed."""
        ...

    def stats(self) -> list[BackendStats]:
        """One item per storage tier (hybrid: memory, then Redis)."""
        ...

    def close(self) -> None: ...
