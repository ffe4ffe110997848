"""Content fingerprints of the data files a task reads, for result-cache keys.

A fingerprint is the sha256 of a file's content, so a copy at another path, or a file touched
without a change, keeps its key. Hashing a large dataset on every run would cost more than the
cache saves, so digests are remembered by (resolved path, size, mtime_ns) and a file whose size
and modification time are unchanged is not read again.

The trade-off, as in git and make: a rewrite that keeps the size and restores the old mtime on
purpose (`os.utime`, some copy tools) is not noticed while the memo holds the old digest.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

MEMO_FORMAT = 1
# Git's "racily clean" rule: a file modified this recently may be rewritten again within the
# same mtime tick with the same size, and its stamp would not show it, so its digest is used
# but not remembered.
RACY_WINDOW_NS = 2_000_000_000

_Entry = tuple[int, int, str]  # size, mtime_ns, sha256 hex


class FileFingerprints:
    """Content digests of files and folders, remembered across calls (and runs, with a path)."""

    def __init__(self, memo_path: Path | None = None) -> None:
        self._memo_path = memo_path
        self._lock = threading.Lock()
        self._memo: dict[str, _Entry] = _load_memo(memo_path) if memo_path is not None else {}
        self._dirty = False

    def fingerprint(self, path: Path) -> str:
        """sha256 hex of a file's content, or of a folder's visible files (a Parquet dataset):
        their sorted relative names and digests. Names starting with '.' are ignored."""
        resolved = Path(path).expanduser().resolve()
        try:
            is_dir = resolved.is_dir()
            if not is_dir:
                return self._file_digest(resolved)
        except FileNotFoundError:
            raise _missing(path) from None
        listing = hashlib.sha256(b"workbench-folder-fingerprint\n")
        for name, file in _visible_files(resolved):
            listing.update(f"{name}\0{self._file_digest(file)}\n".encode())
        return listing.hexdigest()

    def save(self) -> None:
        """Write the memo to memo_path atomically; a no-op without a path or new digests."""
        if self._memo_path is None:
            return
        with self._lock:
            if not self._dirty:
                return
            entries = {key: list(entry) for key, entry in self._memo.items()}
            self._dirty = False
        payload = json.dumps({"format": MEMO_FORMAT, "entries": entries}, separators=(",", ":"))
        _atomic_write(self._memo_path, payload)

    def _file_digest(self, path: Path) -> str:
        key = str(path)
        st = os.stat(path)
        with self._lock:
            entry = self._memo.get(key)
        if entry is not None and entry[:2] == (st.st_size, st.st_mtime_ns):
            return entry[2]
        digest, before, after = _hash_file(path)
        stable = (before.st_size, before.st_mtime_ns) == (after.st_size, after.st_mtime_ns)
        racy = before.st_mtime_ns >= time.time_ns() - RACY_WINDOW_NS
        if stable and not racy:
            with self._lock:
                self._memo[key] = (before.st_size, before.st_mtime_ns, digest)
                self._dirty = True
        return digest


def _hash_file(path: Path) -> tuple[str, os.stat_result, os.stat_result]:
    """The file's digest and its stat before and after reading (a change while it was read
    makes the digest unfit to remember)."""
    with open(path, "rb") as handle:
        before = os.fstat(handle.fileno())
        digest = hashlib.file_digest(handle, "sha256").hexdigest()
        after = os.fstat(handle.fileno())
    return digest, before, after


def _visible_files(folder: Path) -> list[tuple[str, Path]]:
    """(relative posix name, path) of every file under folder, sorted; hidden names skipped.
    Symlinked folders are not entered (they may loop); symlinked files count by content."""
    found: list[tuple[str, Path]] = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        base = Path(root)
        for name in files:
            if not name.startswith("."):
                file = base / name
                found.append((file.relative_to(folder).as_posix(), file))
    found.sort()
    return found


def _missing(path: Path) -> FileNotFoundError:
    error = FileNotFoundError(2, f"cannot fingerprint {path}: no such file or directory")
    error.filename = str(path)
    return error


def _load_memo(memo_path: Path) -> dict[str, _Entry]:
    """The saved memo; empty when it is missing, unreadable or malformed (it is only a memo)."""
    try:
        data: Any = json.loads(memo_path.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or data.get("format") != MEMO_FORMAT:
            return {}
        memo: dict[str, _Entry] = {}
        for key, entry in data["entries"].items():
            size, mtime_ns, digest = entry
            if (
                isinstance(size, int)
                and isinstance(mtime_ns, int)
                and isinstance(digest, str)
                and len(digest) == 64
            ):
                memo[key] = (size, mtime_ns, digest)
        return memo
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return {}


def _atomic_write(path: Path, text: str) -> None:
    """Write to a temporary file beside `path`, then rename it over: readers (and a crash)
    see the old memo or the new one, never half of one. Concurrent savers: the last one wins."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
