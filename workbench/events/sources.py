"""What a watcher reads: the updates it yields, its event sources and its snapshots.

`BusSource` follows the in-process bus (local mode); `StoreSnapshots` reads a state store
(cluster mode). The Kafka source is in `events.kafka_source`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Generic, Protocol, TypedDict, TypeVar

from workbench.dag.records import WorkflowExecution
from workbench.errors import ExecutionNotFoundError, WorkbenchError
from workbench.events.bus import InProcessBus, Subscription
from workbench.events.models import Event

log = logging.getLogger(__name__)


class WatchMode(StrEnum):
    LIVE = "live"  # events from the source as they happen
    POLLING = "polling"  # the source is away: snapshots every poll_s until it is back


@dataclass(frozen=True)
class WatchUpdate:
    # A new object per update. Task records the update did not touch are shared with earlier
    # updates (copying 10,000 of them per event would cost more than the event): read-only.
    execution: WorkflowExecution
    event: Event | None  # None: the view came from a snapshot
    mode: WatchMode


class WatchOptions(TypedDict, total=False):
    """The timing knobs of `watch` (see there), for the callers that pass them on."""

    poll_s: float
    reconnect_s: float
    resync_s: float
    settle_s: float


class SourceUnavailable(WorkbenchError):
    """An event source lost its feed, or never got it: the watcher polls until it is back."""

    retryable = True


class EventSource(Protocol):
    async def open(self) -> None:
        """Start receiving: every event published after this returns is delivered.
        SourceUnavailable if it cannot."""
        ...

    def __aiter__(self) -> EventSource: ...

    async def __anext__(self) -> Event:
        """The next event; SourceUnavailable when the feed is lost."""
        ...

    async def close(self) -> None: ...

    def drain(self) -> list[Event]:
        """The events received already, without waiting ([] when none): a watcher behind a
        burst takes them all in one step."""
        ...


SourceFactory = Callable[[], EventSource]


class Snapshots(Protocol):
    """The current state of executions. Blocking calls: the watcher runs them in a thread."""

    def get(self, execution_id: str) -> WorkflowExecution:
        """ExecutionNotFoundError when there is no such execution."""
        ...

    def all(self) -> list[WorkflowExecution]: ...


S = TypeVar("S")
S_co = TypeVar("S_co", covariant=True)


class ExecutionStore(Protocol[S_co]):
    """The read side of `coordination.base.StateStore`, all StoreSnapshots needs."""

    def get_execution(self, execution_id: str) -> S_co | None: ...

    def list_executions(self) -> Sequence[S_co]: ...


class StoreSnapshots(Generic[S]):
    """Snapshots from the shared state store. `convert` makes a record of a stored execution
    (`orchestrator.owned.execution_from_store`); it is passed in because `events` sits below
    `coordination` and `orchestrator` and may not import them."""

    def __init__(self, store: ExecutionStore[S], convert: Callable[[S], WorkflowExecution]):
        self._store = store
        self._convert = convert

    def get(self, execution_id: str) -> WorkflowExecution:
        stored = self._store.get_execution(execution_id)
        if stored is None:
            raise ExecutionNotFoundError(execution_id)
        return self._convert(stored)

    def all(self) -> list[WorkflowExecution]:
        return [self._convert(stored) for stored in self._store.list_executions()]


class BusSource:
    """The in-process bus as an event source (local mode). The bus calls back on the
    publisher's thread; events wait in a buffer, and the watcher's loop is woken only when the
    buffer stops being empty, so a burst costs one wake-up, not one per event. A watcher
    `maxsize` events behind loses the newest: the gap in seq makes it re-snapshot, and the
    workflow never waits for a UI."""

    def __init__(
        self, bus: InProcessBus, execution_id: str | None = None, *, maxsize: int = 10_000
    ) -> None:
        self._bus = bus
        self._execution_id = execution_id
        self._maxsize = maxsize
        self._buffer: deque[Event] = deque()
        self._lock = threading.Lock()
        self._wake_due = False  # a wake-up is on its way to the loop
        self._waiter: asyncio.Future[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._subscription: Subscription | None = None
        self.dropped = 0

    async def open(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._subscription = self._bus.subscribe(self._deliver, self._execution_id)

    def _deliver(self, event: Event) -> None:  # on the publisher's thread
        assert self._loop is not None
        with self._lock:
            if len(self._buffer) >= self._maxsize:
                self.dropped += 1
                return
            self._buffer.append(event)
            if self._wake_due:
                return
            self._wake_due = True
        with contextlib.suppress(RuntimeError):  # the watcher's loop is closed: nobody reads
            self._loop.call_soon_threadsafe(self._wake)

    def _wake(self) -> None:  # on the watcher's loop
        with self._lock:
            self._wake_due = False
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def __aiter__(self) -> BusSource:
        return self

    async def __anext__(self) -> Event:
        if self._loop is None:
            raise SourceUnavailable("the bus source is not open")
        while True:
            with self._lock:
                if self._buffer:
                    return self._buffer.popleft()
                # Any event appended after this finds no wake-up due and schedules one.
                self._waiter = self._loop.create_future()
            await self._waiter

    def drain(self) -> list[Event]:
        with self._lock:
            events = list(self._buffer)
            self._buffer.clear()
        return events

    async def close(self) -> None:
        if self._subscription is not None:
            self._subscription.close()
            self._subscription = None
