"""Redis as a cache shared by every machine of a cluster.

Keys (`ns` is the namespace):
  `{ns}:cache:entry:{key}`                  0x00 + payload (inline), or 0x01 + pointer
  `{ns}:cache:chunk:{key}:{write id}:{i}`   the i-th chunk of a payload above chunk_bytes
  `{ns}:cache:stats`                        hash: lookups, misses (hits = lookups - misses)

A large payload's chunks and its pointer are written in one MULTI/EXEC, under a write id of their
own, so a reader sees a whole entry or none, and writers of the same key never mix chunks.
"""

from __future__ import annotations

import re
import secrets
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, cast
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis

from workbench.cache.base import BackendStats, check_payload, validate_key
from workbench.errors import CacheError

DEFAULT_TTL_S = 7 * 24 * 3600.0
DEFAULT_CHUNK_BYTES = 8 * 1024**2
INLINE = b"\x00"
POINTER = b"\x01"
POINTER_FORMAT = struct.Struct(">cQI16s")  # prefix, payload length, chunk count, write id
# A reader may hold the pointer an overwrite just replaced: the old chunks stay this long.
CHUNK_GRACE_MS = 10_000
READ_ATTEMPTS = 3  # re-reads of a pointer that changed while its chunks were being fetched
NAMESPACE_PATTERN = re.compile(r"[A-Za-z0-9_.-]{1,64}")
REDIS_URL_ENV = "WORKBENCH_REDIS_URL"
# What to do when Redis refuses the credentials (an ACL user, or requirepass).
CREDENTIALS_FIX = (
    "the ACL user and password go in the URL: redis://USER:PASSWORD@host:port/0 "
    "(redis://:PASSWORD@... for requirepass)"
)


def mask_url(url: str) -> str:
    """`url` with its password (in the user info or the query) replaced by ***."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password is not None:
        userinfo, _, hostport = netloc.rpartition("@")
        netloc = f"{userinfo.split(':', 1)[0]}:***@{hostport}"
    query = urlencode(
        [(k, "***" if k == "password" else v) for k, v in parse_qsl(parts.query)], safe="*"
    )
    return urlunsplit(parts._replace(netloc=netloc, query=query))


class RedisBackend:
    """Entries expire after `ttl_s` (None: never); Redis's own eviction policy bounds memory."""

    name = "redis"

    def __init__(
        self,
        url: str,
        *,
        namespace: str = "workbench",
        ttl_s: float | None = DEFAULT_TTL_S,
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
        client: redis.Redis | None = None,
    ) -> None:
        if NAMESPACE_PATTERN.fullmatch(namespace) is None:
            raise ValueError(
                f"invalid Redis namespace {namespace!r}: use 1 to 64 characters from "
                "A-Z a-z 0-9 _ . -"
            )
        if ttl_s is not None and ttl_s <= 0:
            raise ValueError(f"ttl_s must be positive or None (no expiry), got {ttl_s}")
        if chunk_bytes <= 0:
            raise ValueError(f"chunk_bytes must be positive, got {chunk_bytes}")
        self.location = mask_url(url)
        self.namespace = namespace
        self.chunk_bytes = chunk_bytes
        self._px = None if ttl_s is None else max(1, round(ttl_s * 1000))
        self._stats_key = f"{namespace}:cache:stats"
        self._owns_client = client is None
        if client is None:
            try:
                client = redis.Redis.from_url(url, socket_connect_timeout=2.0, socket_timeout=10.0)
            except ValueError as exc:
                raise CacheError(
                    f"invalid Redis URL {self.location}: {exc}; expected "
                    "redis://[[user]:password@]host:port/db (rediss:// for TLS)"
                ) from exc
        self._client: redis.Redis = client
        with self._errors():
            self._client.ping()  # fail now, with the fix, rather than inside a running workflow

    # -- the protocol --------------------------------------------------------------------------

    def get(self, key: str) -> bytes | None:
        entry_key = self._entry_key(validate_key(key))
        with self._errors():
            # One round trip for an inline entry. Redis strips the prefix byte (GETRANGE 1 -1),
            # which spares a copy of the payload here; MULTI keeps head and body of one value.
            pipe = self._client.pipeline(transaction=True)
            pipe.getrange(entry_key, 0, POINTER_FORMAT.size - 1)
            pipe.getrange(entry_key, 1, -1)
            pipe.hincrby(self._stats_key, "lookups", 1)
            head, body, _ = pipe.execute()
            payload = body if head[:1] == INLINE else self._resolve(key, head or None)
            if payload is None:
                self._client.hincrby(self._stats_key, "misses", 1)  # a miss costs a compute anyway
            return payload

    def put(self, key: str, payload: bytes) -> None:
        entry_key = self._entry_key(validate_key(key))
        check_payload(payload)
        with self._errors():
            pipe = self._client.pipeline(transaction=True)
            pipe.getrange(entry_key, 0, POINTER_FORMAT.size - 1)  # what this write replaces
            if len(payload) <= self.chunk_bytes:
                pipe.set(entry_key, INLINE + payload, px=self._px)
            else:
                write_id = secrets.token_hex(8).encode("ascii")
                view = memoryview(payload)  # slices without copies
                starts = range(0, len(payload), self.chunk_bytes)
                for i, start in enumerate(starts):
                    chunk = view[start : start + self.chunk_bytes]
                    pipe.set(self._chunk_key(key, write_id, i), chunk, px=self._px)
                pointer = POINTER_FORMAT.pack(POINTER, len(payload), len(starts), write_id)
                pipe.set(entry_key, pointer, px=self._px)
            replaced = pipe.execute()[0]
            if chunks := self._chunk_keys(key, replaced):
                # Not deleted at once: a reader may be fetching them right now.
                grace = min(CHUNK_GRACE_MS, self._px or CHUNK_GRACE_MS)
                retire = self._client.pipeline(transaction=False)
                for chunk_key in chunks:
                    retire.pexpire(chunk_key, grace)
                retire.execute()

    def contains(self, key: str) -> bool:
        entry_key = self._entry_key(validate_key(key))
        with self._errors():
            return bool(self._client.exists(entry_key))

    def delete(self, key: str) -> bool:
        entry_key = self._entry_key(validate_key(key))
        with self._errors():
            pipe = self._client.pipeline(transaction=True)
            pipe.getrange(entry_key, 0, POINTER_FORMAT.size - 1)
            pipe.delete(entry_key)
            replaced, removed = pipe.execute()
            if chunks := self._chunk_keys(key, replaced):
                self._client.unlink(*chunks)
            return bool(removed)

    def clear(self) -> int:
        """Entries first, then every chunk. Not atomic against concurrent writers: an entry
        written meanwhile may lose its chunks, and then reads as a miss."""
        removed = 0
        with self._errors():
            for keys in self._scan(f"{self.namespace}:cache:entry:*"):
                removed += self._client.unlink(*keys)
            for keys in self._scan(f"{self.namespace}:cache:chunk:*"):
                self._client.unlink(*keys)
        return removed

    def stats(self) -> list[BackendStats]:
        """Entries and bytes by a SCAN over the entry keys: O(entries)."""
        entries = size = 0
        with self._errors():
            for keys in self._scan(f"{self.namespace}:cache:entry:*"):
                pipe = self._client.pipeline(transaction=False)
                for entry_key in keys:
                    pipe.strlen(entry_key)
                    pipe.getrange(entry_key, 0, POINTER_FORMAT.size - 1)
                replies = pipe.execute()
                for length, head in zip(replies[::2], replies[1::2], strict=True):
                    if head[:1] == INLINE:
                        entries, size = entries + 1, size + length - 1
                    elif head[:1] == POINTER and len(head) == POINTER_FORMAT.size:
                        entries, size = entries + 1, size + POINTER_FORMAT.unpack(head)[1]
            counts = self._client.hgetall(self._stats_key)
        lookups = int(counts.get(b"lookups", 0))
        misses = int(counts.get(b"misses", 0))
        return [
            BackendStats(
                backend=self.name,
                entries=entries,
                bytes=size,
                hits=max(0, lookups - misses),
                misses=misses,
                location=self.location,
            )
        ]

    def close(self) -> None:
        if self._owns_client:
            self._client.close()

    # -- internals -----------------------------------------------------------------------------

    def _entry_key(self, key: str) -> str:
        return f"{self.namespace}:cache:entry:{key}"

    def _chunk_key(self, key: str, write_id: bytes, i: int) -> str:
        return f"{self.namespace}:cache:chunk:{key}:{write_id.decode('ascii')}:{i}"

    def _chunk_keys(self, key: str, value: bytes | None) -> list[str]:
        """The chunk keys an entry value points at; [] for an inline or missing entry."""
        if not value or value[:1] != POINTER or len(value) < POINTER_FORMAT.size:
            return []
        _, _, count, write_id = POINTER_FORMAT.unpack(value[: POINTER_FORMAT.size])
        return [self._chunk_key(key, write_id, i) for i in range(count)]

    def _resolve(self, key: str, value: bytes | None) -> bytes | None:
        """The payload an entry value holds or points at; None when anything is missing."""
        for _ in range(READ_ATTEMPTS):
            if value is None or value[:1] not in (INLINE, POINTER):
                return None
            if value[:1] == INLINE:
                return value[1:]
            if len(value) != POINTER_FORMAT.size:
                return None
            chunks = self._client.mget(self._chunk_keys(key, value))
            if all(isinstance(chunk, bytes) for chunk in chunks):
                payload = b"".join(cast(list[bytes], chunks))
                return payload if len(payload) == POINTER_FORMAT.unpack(value)[1] else None
            # A chunk is gone: expired, evicted, or the entry was overwritten meanwhile.
            current = self._client.get(self._entry_key(key))
            if current == value or not isinstance(current, bytes | None):
                return None
            value = current
        return None

    def _scan(self, pattern: str, batch: int = 1000) -> Iterator[list[Any]]:
        keys: list[Any] = []
        for found in self._client.scan_iter(match=pattern, count=batch):
            keys.append(found)
            if len(keys) >= batch:
                yield keys
                keys = []
        if keys:
            yield keys

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except redis.exceptions.AuthenticationError as exc:
            raise CacheError(
                f"Redis at {self.location} refused the credentials (authentication failed: "
                f"{exc}); {CREDENTIALS_FIX}; fix {REDIS_URL_ENV}"
            ) from exc
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            raise CacheError(
                f"cannot reach Redis at {self.location} ({exc}): start redis-server or set "
                f"{REDIS_URL_ENV}"
            ) from exc
        except redis.exceptions.RedisError as exc:
            raise CacheError(f"Redis at {self.location} failed: {exc}") from exc
