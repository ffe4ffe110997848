"""Deferred start reports: a task attempt announces its start only once it has run for a
moment, or reports something. A short attempt's start travels with its result instead, which
halves the scheduler messages of a workflow made of many small tasks (they sit on the critical
path of every layer of a DAG)."""

from __future__ import annotations

import threading
import time
from typing import Any

from workbench.tasks.base import TaskEventSink

START_REPORT_DELAY_S = 0.1


class AttemptReporter:
    """The sink of one attempt: any report it passes on is preceded by the attempt's start."""

    def __init__(self, sink: TaskEventSink, attempt: int, worker: str | None) -> None:
        self._sink = sink
        self._start = {"attempt": attempt, "worker": worker, "started_at": time.time()}
        self._lock = threading.Lock()
        self._announced = False
        _WATCH.add(self)

    def announce(self) -> None:
        # Sending under the lock orders the start before anything close() lets through.
        with self._lock:
            if not self._announced:
                self._announced = True
                self._sink("started", dict(self._start))

    def __call__(self, kind: str, payload: dict[str, Any]) -> None:
        self.announce()
        self._sink(kind, payload)

    def close(self) -> dict[str, Any] | None:
        """End the attempt; returns the start to attach to its result if it was never sent."""
        _WATCH.discard(self)
        with self._lock:
            if self._announced:
                return None
            self._announced = True
            return dict(self._start)


class _Watch:
    """One daemon thread per worker process announces the attempts that run long enough."""

    def __init__(self) -> None:
        self._due: dict[AttemptReporter, float] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def add(self, reporter: AttemptReporter) -> None:
        with self._lock:
            self._due[reporter] = time.monotonic() + START_REPORT_DELAY_S
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="workbench-start-reports", daemon=True
                )
                self._thread.start()

    def discard(self, reporter: AttemptReporter) -> None:
        with self._lock:
            self._due.pop(reporter, None)

    def _run(self) -> None:
        while True:
            time.sleep(START_REPORT_DELAY_S / 2)
            now = time.monotonic()
            with self._lock:
                ready = [r for r, due in self._due.items() if due <= now]
                for reporter in ready:
                    del self._due[reporter]
            for reporter in ready:
                reporter.announce()


_WATCH = _Watch()
