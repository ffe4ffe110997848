"""A directory of entry files, shared safely by threads and processes, bounded with LRU eviction.

Layout: `root/<2-char fan-out>/<key>`; an entry file is a 12-byte header (magic, payload length)
then the payload, written to a temp file in the same directory and renamed into place, so a
reader sees a whole old entry or a whole new one. Recency is the file's mtime: reads touch it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import secrets
import struct
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from workbench.cache.base import BackendStats, check_payload, validate_key
from workbench.errors import CacheError

log = logging.getLogger(__name__)

DEFAULT_DISK_CAPACITY = 10 * 1024**3
MAGIC = b"WBE1"
HEADER = struct.Struct(">4sQ")  # magic, payload length
STATS_FILE = "stats.json"
STATS_LOCK = "stats.lock"
# Other processes add files this instance's index cannot see; a put rescans this often.
RESCAN_INTERVAL_S = 30.0
STALE_TEMP_S = 3600.0  # a temp file this old belongs to a writer that died


@dataclass
class _Entry:
    size: int  # file bytes, header included
    mtime_ns: int


def _file_name(key: str) -> str:
    # Entry files never start with '.', which keeps '.' and '..' keys inside their directory
    # and lets a scan tell entries from temp files. '%' is not a key character: no collisions.
    return "%" + key if key.startswith(".") else key


def _key_of(name: str) -> str | None:
    if name.startswith("."):
        return None  # a temp file
    return name[1:] if name.startswith("%") else name


class DiskBackend:
    """Entries survive restarts and are shared by every process using the same `root`.

    `capacity_bytes` bounds the total size of the entry files. Each instance keeps an index
    (built by scanning `root` on first need, rescanned every RESCAN_INTERVAL_S on put) and evicts
    least recently used files when the total goes over. Another process's new files count from
    the next rescan, so with several writers the total can briefly run over by what they added.
    Hits, misses and evictions are counted in memory and merged into `root/stats.json` under a
    file lock on stats() and close(): no file write per get. `contains` checks that the file
    exists; a damaged one still reads as a miss.
    """

    name = "disk"

    def __init__(self, root: Path, capacity_bytes: int = DEFAULT_DISK_CAPACITY) -> None:
        if capacity_bytes <= 0:
            raise ValueError(f"capacity_bytes must be positive, got {capacity_bytes}")
        self.root = Path(root)
        self.capacity_bytes = capacity_bytes
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CacheError(
                f"cannot create the disk cache directory {self.root}: {exc}; "
                "choose a writable directory"
            ) from exc
        self._lock = threading.Lock()
        self._index: OrderedDict[str, _Entry] | None = None  # least recently used first
        self._index_bytes = 0
        self._scanned_at = 0.0
        self._pending = {"hits": 0, "misses": 0, "evictions": 0}

    # -- the protocol --------------------------------------------------------------------------

    def get(self, key: str) -> bytes | None:
        path = self._path(validate_key(key))
        payload = self._read(path)
        now = time.time_ns()
        with self._lock:
            self._pending["hits" if payload is not None else "misses"] += 1
            if self._index is not None:
                if payload is None:
                    self._forget(key)
                elif (entry := self._index.get(key)) is not None:
                    entry.mtime_ns = now
                    self._index.move_to_end(key)
        if payload is not None:
            # Recency for every process's LRU. Gone meanwhile? The payload we read is whole.
            with contextlib.suppress(OSError):
                os.utime(path, ns=(now, now))
        return payload

    def put(self, key: str, payload: bytes) -> None:
        path = self._path(validate_key(key))
        size = HEADER.size + len(check_payload(payload))
        if size > self.capacity_bytes:
            self.delete(key)  # too large to keep; never leave an older value behind
            return
        mtime_ns = self._write(path, payload)
        with self._lock:
            index = self._fresh_index()
            self._forget(key)
            index[key] = _Entry(size, mtime_ns)
            self._index_bytes += size
            self._evict(protect=key)

    def contains(self, key: str) -> bool:
        return self._path(validate_key(key)).is_file()

    def delete(self, key: str) -> bool:
        path = self._path(validate_key(key))
        with self._lock:
            self._forget(key)
            try:
                path.unlink()
            except FileNotFoundError:
                return False
            return True

    def clear(self) -> int:
        removed = 0
        with self._lock:
            for key, _ in self._scan():
                try:
                    self._path(key).unlink()
                    removed += 1
                except FileNotFoundError:
                    pass  # another process removed it first
            self._index = OrderedDict()
            self._index_bytes = 0
            self._scanned_at = time.monotonic()
        return removed

    def stats(self) -> list[BackendStats]:
        totals = self._flush_counters()
        with self._lock:
            self._rescan()
            entries, size = len(self._index or ()), self._index_bytes
        return [
            BackendStats(
                backend=self.name,
                entries=entries,
                bytes=size,
                hits=totals["hits"],
                misses=totals["misses"],
                evictions=totals["evictions"],
                capacity_bytes=self.capacity_bytes,
                location=str(self.root),
            )
        ]

    def close(self) -> None:
        self._flush_counters()

    # -- files ---------------------------------------------------------------------------------

    def _path(self, key: str) -> Path:
        name = _file_name(key)
        return self.root / name[:2] / name

    def _read(self, path: Path) -> bytes | None:
        """The payload, or None if the file is missing or not a whole entry (then removed)."""
        try:
            with open(path, "rb") as f:
                header = f.read(HEADER.size)
                if len(header) == HEADER.size:
                    magic, length = HEADER.unpack(header)
                    st = os.fstat(f.fileno())
                    if magic == MAGIC and st.st_size == HEADER.size + length:
                        payload = f.read(length)
                        if len(payload) == length:
                            return payload
                inode = os.fstat(f.fileno()).st_ino
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("cache entry %s cannot be read, treated as a miss: %s", path, exc)
            return None
        log.warning("cache entry %s is truncated or corrupt; removed", path)
        try:
            if os.stat(path).st_ino == inode:  # not already replaced by a good entry
                os.unlink(path)
        except OSError:
            pass
        return None

    def _write(self, path: Path, payload: bytes) -> int:
        """Write atomically; return the mtime given to the file (ns, finer than the kernel's)."""
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        mtime_ns = time.time_ns()
        try:
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileNotFoundError:
                tmp.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                with open(fd, "wb", closefd=False) as f:
                    f.write(HEADER.pack(MAGIC, len(payload)))
                    f.write(payload)
                os.utime(fd, ns=(mtime_ns, mtime_ns))
            finally:
                os.close(fd)
            os.replace(tmp, path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise CacheError(f"cannot write the cache entry {path}: {exc}") from exc
        return mtime_ns

    def _scan(self) -> Iterator[tuple[str, os.stat_result]]:
        """Every entry file under root, tolerating files that vanish meanwhile; also removes
        temp files that dead writers left behind."""
        try:
            fan_outs = [d for d in os.scandir(self.root) if len(d.name) <= 2 and d.is_dir()]
        except FileNotFoundError:
            return
        stale_before = time.time() - STALE_TEMP_S
        for fan_out in fan_outs:
            try:
                files = list(os.scandir(fan_out.path))
            except FileNotFoundError:
                continue
            for file in files:
                try:
                    st = file.stat()
                    key = _key_of(file.name)
                    if key is None:
                        if st.st_mtime < stale_before:
                            os.unlink(file.path)
                        continue
                except FileNotFoundError:
                    continue
                yield key, st

    # -- the LRU index (all under self._lock) --------------------------------------------------

    def _rescan(self) -> None:
        found = sorted(self._scan(), key=lambda item: item[1].st_mtime_ns)
        self._index = OrderedDict((key, _Entry(st.st_size, st.st_mtime_ns)) for key, st in found)
        self._index_bytes = sum(entry.size for entry in self._index.values())
        self._scanned_at = time.monotonic()

    def _fresh_index(self) -> OrderedDict[str, _Entry]:
        if self._index is None or time.monotonic() - self._scanned_at > RESCAN_INTERVAL_S:
            self._rescan()
        assert self._index is not None
        return self._index

    def _forget(self, key: str) -> None:
        if self._index is not None and (entry := self._index.pop(key, None)) is not None:
            self._index_bytes -= entry.size

    def _evict(self, protect: str) -> None:
        index = self._fresh_index()
        refreshed: set[str] = set()
        while self._index_bytes > self.capacity_bytes and len(index) > 1:
            key, entry = next(iter(index.items()))
            if key == protect:
                index.move_to_end(key)
                continue
            path = self._path(key)
            try:
                st = os.stat(path)
            except FileNotFoundError:
                self._forget(key)  # another process removed it
                continue
            if st.st_mtime_ns > entry.mtime_ns and key not in refreshed:
                # Another process used it since we looked: it is not the least recent after all.
                refreshed.add(key)
                entry.mtime_ns = st.st_mtime_ns
                index.move_to_end(key)
                continue
            self._forget(key)
            try:
                path.unlink()
                self._pending["evictions"] += 1
            except FileNotFoundError:
                pass

    # -- counters ------------------------------------------------------------------------------

    @contextmanager
    def _stats_lock(self) -> Iterator[None]:
        with open(self.root / STATS_LOCK, "a") as lock_file:
            fcntl.flock(lock_file, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock_file, fcntl.LOCK_UN)

    def _flush_counters(self) -> dict[str, int]:
        """Add this instance's counts to root/stats.json; return the totals of all processes."""
        with self._lock:
            deltas, self._pending = self._pending, dict.fromkeys(self._pending, 0)
        path = self.root / STATS_FILE
        try:
            with self._stats_lock():
                totals = _read_counters(path)
                if any(deltas.values()):
                    totals = {name: totals.get(name, 0) + n for name, n in deltas.items()}
                    tmp = path.with_name(f".{STATS_FILE}.{secrets.token_hex(4)}.tmp")
                    tmp.write_text(json.dumps(totals), encoding="utf-8")
                    os.replace(tmp, path)
        except OSError as exc:
            with self._lock:  # keep the counts for the next try
                for name, n in deltas.items():
                    self._pending[name] += n
            raise CacheError(f"cannot update the cache statistics {path}: {exc}") from exc
        return {name: totals.get(name, 0) for name in deltas}


def _read_counters(path: Path) -> dict[str, int]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError):
        log.warning("cache statistics %s are unreadable; counting from zero", path)
        return {}
    if not isinstance(data, dict):
        return {}
    return {name: n for name, n in data.items() if isinstance(n, int)}
