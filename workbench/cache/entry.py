"""What a cache entry holds: a small JSON header the orchestrator reads, and the result bytes.

The header (metrics, artifacts, summary, where the result came from) lets the orchestrator
record a hit without unpickling anything; only the process that uses the result unpickles it.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from typing import Any

from workbench.errors import CacheIntegrityError

_HEADER_LENGTH = struct.Struct(">I")


@dataclass(frozen=True)
class CacheEntry:
    result: bytes | memoryview  # the pickled TaskResult, made by the worker that computed it
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def metrics(self) -> dict[str, float]:
        return dict(self.meta.get("metrics") or {})

    @property
    def artifacts(self) -> dict[str, str]:
        return dict(self.meta.get("artifacts") or {})

    @property
    def summary(self) -> dict[str, Any]:
        return dict(self.meta.get("summary") or {})


def encode_entry(entry: CacheEntry) -> bytes:
    header = json.dumps(entry.meta, separators=(",", ":"), default=str).encode()
    return _HEADER_LENGTH.pack(len(header)) + header + entry.result


def decode_entry(blob: bytes | memoryview) -> CacheEntry:
    """The entry in `blob`; its result stays a view into `blob` (no copy of a large result)."""
    view = memoryview(blob)
    if len(view) < _HEADER_LENGTH.size:
        raise CacheIntegrityError("cache entry too short to hold its header; ignored")
    (length,) = _HEADER_LENGTH.unpack_from(view)
    end = _HEADER_LENGTH.size + length
    if end > len(view):
        raise CacheIntegrityError("cache entry header runs past its end; ignored")
    try:
        meta = json.loads(bytes(view[_HEADER_LENGTH.size : end]))
    except ValueError as exc:
        raise CacheIntegrityError(f"cache entry header is not JSON ({exc}); ignored") from exc
    return CacheEntry(result=view[end:], meta=meta)
