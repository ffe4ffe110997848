"""From the watch thread to the screen: updates are gathered as they come and handed to the UI
in batches, at most `max_hz` times a second, so a burst of events costs a few redraws, not one
per event. Fewer when redraws cost more: they take about FRAME_SHARE of the UI's loop (by the
median cost of the last few), the rest is left to its input and to the watcher (which shares
the interpreter with it). The latest view of an execution replaces the earlier ones in a batch;
events are all kept (the event screen shows each).

Textual-free: the app gives it `wake`, a thread-safe "flush soon" (a call onto the UI's loop).
"""

from __future__ import annotations

import statistics
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from workbench.dag.records import WorkflowExecution
from workbench.events.models import Event
from workbench.events.watch import WatchMode, WatchUpdate

MAX_EVENTS_PER_BATCH = 5_000  # the event screen keeps fewer; a longer burst keeps its newest
FRAME_SHARE = 0.4
COSTS_KEPT = 9


@dataclass
class Batch:
    executions: dict[str, WorkflowExecution] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    received_at: list[float] = field(default_factory=list)  # time.time() each event came in
    mode: WatchMode | None = None  # the watch's mode, when it changed
    dropped: int = 0  # events left out of `events` (a burst longer than the batch)

    def __bool__(self) -> bool:
        return bool(self.executions or self.events or self.mode is not None)


class LiveFeed:
    def __init__(self, wake: Callable[[], None], *, max_hz: float = 30.0) -> None:
        self.min_interval_s = 1.0 / max_hz
        self.interval_s = self.min_interval_s  # from one flush to the next
        # The last redraws' costs, their median pacing the next: a few slow ones (a screen
        # built, a collection of the garbage collector) do not hold the following back. None
        # cost anything until they are drawn: the first, slowest, ones do not slow the stream.
        self._costs = deque([0.0] * COSTS_KEPT, maxlen=COSTS_KEPT)
        self._wake = wake
        self._lock = threading.Lock()
        self._pending = Batch()
        self._awake = False  # a flush has been asked for and has not run yet
        self._mode: WatchMode | None = None

    # -- the watch thread ----------------------------------------------------------------------
    def on_update(self, update: WatchUpdate) -> None:
        with self._lock:
            batch = self._pending
            batch.executions[update.execution.execution_id] = update.execution
            if update.event is not None:
                self._add_event(batch, update.event)
            if update.mode is not self._mode:
                self._mode = batch.mode = update.mode
            self._ask()

    def on_other(self, event: Event) -> None:
        with self._lock:
            self._add_event(self._pending, event)
            self._ask()

    def on_mode(self, mode: WatchMode) -> None:
        with self._lock:
            if mode is not self._mode:
                self._mode = self._pending.mode = mode
                self._ask()

    def _add_event(self, batch: Batch, event: Event) -> None:
        batch.events.append(event)
        batch.received_at.append(time.time())
        if len(batch.events) > MAX_EVENTS_PER_BATCH:
            del batch.events[0], batch.received_at[0]
            batch.dropped += 1

    def _ask(self) -> None:
        if not self._awake:
            self._awake = True
            self._wake()

    # -- the UI's loop -------------------------------------------------------------------------
    def take(self) -> Batch:
        """What has come since the last take (the UI calls it when woken, then redraws)."""
        with self._lock:
            batch, self._pending = self._pending, Batch()
            self._awake = False
            return batch

    def drawn(self, cost_s: float) -> None:
        """The UI's loop worked `cost_s` (CPU) from the last take until it was on screen."""
        self._costs.append(cost_s)
        self.interval_s = max(self.min_interval_s, statistics.median(self._costs) / FRAME_SHARE)
