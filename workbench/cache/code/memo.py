"""When a remembered result is still valid: file stamps, the racy window, the results memo.

A result stays valid while every file it was derived from keeps its (mtime_ns, size). As in
git, a file modified within the last 2 s is not memoised: a same-size edit within one mtime
tick would not show in its stamp. `lock` guards every memo of the package (parsed modules,
results, code-object fallbacks).
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from workbench.cache.code.model import CodeVersion

RACY_WINDOW_NS = 2_000_000_000
Stamp = tuple[str, int, int]
lock = threading.Lock()
RESULTS: dict[tuple[str, ...], tuple[CodeVersion, tuple[Stamp, ...]]] = {}


def stamp(path: Path) -> Stamp | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (str(path), st.st_mtime_ns, st.st_size)


def racy(file_stamp: Stamp) -> bool:
    return file_stamp[1] >= time.time_ns() - RACY_WINDOW_NS


def memoised(key: tuple[str, ...]) -> CodeVersion | None:
    with lock:
        entry = RESULTS.get(key)
    if entry is None:
        return None
    result, stamps = entry
    for path, mtime_ns, size in stamps:
        try:
            st = os.stat(path)
        except OSError:
            return None
        if st.st_mtime_ns != mtime_ns or st.st_size != size:
            return None
    return result


def remember(key: tuple[str, ...], result: CodeVersion, stamps: tuple[Stamp, ...]) -> None:
    if not any(map(racy, stamps)):
        with lock:
            RESULTS[key] = (result, stamps)
