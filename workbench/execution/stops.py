"""The tasks running in this worker process, so the orchestrator can stop one mid-attempt.

Dask cannot interrupt a running task (Python threads cannot be killed): cancelling its future
only discards the result while the body runs on. Every attempt registers its CancelSignal here
under its Dask key; `stop_running`, run on the workers by the orchestrator (`Client.run`), sets
it, and the body stops at its next progress report or cancellation check, freeing its thread.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from workbench.tasks.base import CancelSignal

_running: dict[Any, CancelSignal] = {}
_lock = threading.Lock()


@contextmanager
def registered(key: Any, signal: CancelSignal) -> Iterator[CancelSignal]:
    with _lock:
        _running[key] = signal
    try:
        yield signal
    finally:
        with _lock:
            if _running.get(key) is signal:
                del _running[key]


def stop_running(keys: Sequence[Any], reason: str) -> int:
    """Runs on a worker: signal the attempts running under `keys`; returns how many were."""
    stopped = 0
    with _lock:
        for key in keys:
            signal = _running.get(tuple(key) if isinstance(key, list) else key)
            if signal is not None:
                signal.stop(reason)
                stopped += 1
    return stopped
