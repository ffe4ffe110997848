"""Watching executions live, for every UI: a snapshot, then the events after it.

`watch()` opens an event source first (the in-process bus locally, Kafka in a cluster) and
only then takes a snapshot, so no event between the two is missed. It applies the events that
follow, drops duplicates by sequence number, and re-snapshots on a gap or a new ownership
epoch. While the source is away it polls the snapshots and tries to reopen the source. Each
update carries the whole execution as it is now: a UI only redraws it.

The Kafka source is in `events.kafka_source` (it imports aiokafka, lazily).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Generic, Protocol, TypeVar

from workbench.dag.records import WorkflowExecution
from workbench.errors import ExecutionNotFoundError, WorkbenchError
from workbench.events.bus import InProcessBus, Subscription
from workbench.events.models import Event, EventType, seq_epoch
from workbench.events.replay import execution_from_submitted
from workbench.events.views import advance, merge

log = logging.getLogger(__name__)

# -- what a watcher reads ---------------------------------------------------------------------


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
    publisher's thread; events cross to the watcher's loop with call_soon_threadsafe. A
    watcher `maxsize` events behind loses the newest: the gap in seq makes it re-snapshot,
    and the workflow never waits for a UI."""

    def __init__(
        self, bus: InProcessBus, execution_id: str | None = None, *, maxsize: int = 10_000
    ) -> None:
        self._bus = bus
        self._execution_id = execution_id
        self._maxsize = maxsize
        self._queue: asyncio.Queue[Event] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._subscription: Subscription | None = None
        self.dropped = 0

    async def open(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._queue = asyncio.Queue(self._maxsize)
        self._subscription = self._bus.subscribe(self._deliver, self._execution_id)

    def _deliver(self, event: Event) -> None:  # on the publisher's thread
        assert self._loop is not None
        with contextlib.suppress(RuntimeError):  # the watcher's loop is closed: nobody reads
            self._loop.call_soon_threadsafe(self._put, event)

    def _put(self, event: Event) -> None:
        assert self._queue is not None
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self.dropped += 1

    def __aiter__(self) -> BusSource:
        return self

    async def __anext__(self) -> Event:
        if self._queue is None:
            raise SourceUnavailable("the bus source is not open")
        return await self._queue.get()

    async def close(self) -> None:
        if self._subscription is not None:
            self._subscription.close()
            self._subscription = None


# -- the watcher ----------------------------------------------------------------------------------


async def watch(
    snapshots: Snapshots,
    source_factory: SourceFactory,
    execution_id: str | None = None,
    *,
    poll_s: float = 0.5,
    reconnect_s: float = 1.0,
    resync_s: float = 5.0,
    settle_s: float = 5.0,
) -> AsyncGenerator[WatchUpdate, None]:
    """Updates of one execution (`execution_id`) or of all of them, live.

    First the snapshot (event None), then one update per new event (duplicates dropped).
    A gap in seq or a new ownership epoch re-snapshots first; so does a live feed quiet for
    `resync_s` (events can be lost upstream). When the source fails: POLLING, a snapshot every
    `poll_s` yielded only where it changed, and a reopen tried every `reconnect_s`; once it is
    back, a snapshot and LIVE again. Every mode change yields each view with the new mode.
    With `execution_id`, the watch ends once the execution has finished, its last update
    equal to the snapshot (the store), which it waits up to `settle_s` to show the finish.
    Without, it never ends by itself.
    """
    watcher = _Watcher(snapshots, source_factory, execution_id, poll_s, reconnect_s, resync_s)
    try:
        for update in await watcher.start():
            yield update
        while not watcher.finished:
            for update in await watcher.step():
                yield update
        for update in await watcher.settle(settle_s):
            yield update
    finally:
        await watcher.close()


class _Watcher:
    def __init__(
        self,
        snapshots: Snapshots,
        source_factory: SourceFactory,
        execution_id: str | None,
        poll_s: float,
        reconnect_s: float,
        resync_s: float,
    ) -> None:
        self.snapshots = snapshots
        self.source_factory = source_factory
        self.execution_id = execution_id
        self.poll_s = poll_s
        self.reconnect_s = reconnect_s
        self.resync_s = resync_s
        self.mode = WatchMode.LIVE
        self.views: dict[str, WorkflowExecution] = {}
        self.seqs: dict[str, int | None] = {}  # last applied; None: accept the next one
        self.source: EventSource | None = None
        self._next: asyncio.Task[Event] | None = None
        self._opening: asyncio.Task[EventSource] | None = None
        self._open_at = 0.0  # loop time of the next reopen attempt
        self._poll_at = 0.0  # loop time of the next poll
        self._store_ok = True

    @property
    def finished(self) -> bool:
        view = self.views.get(self.execution_id or "")
        return view is not None and view.status.terminal

    async def start(self) -> list[WatchUpdate]:
        try:
            self.source = await self._open()
        except SourceUnavailable as exc:
            self._to_polling(exc)
        # After the source: what is published from now on is delivered, nothing falls between.
        return self._reset(await self._snapshot(self.execution_id), only_changed=False)

    async def step(self) -> list[WatchUpdate]:
        return await (self._live_step() if self.source is not None else self._poll_step())

    async def settle(self, settle_s: float) -> list[WatchUpdate]:
        """The store's view once it shows the finish (it may commit after the event)."""
        assert self.execution_id is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + settle_s
        view = self.views[self.execution_id]
        while True:
            snaps = await self._snapshot_quietly(self.execution_id)
            if snaps and snaps[0].status.terminal:
                self.views[self.execution_id] = snaps[0]
                return [] if snaps[0] == view else [WatchUpdate(snaps[0], None, self.mode)]
            if loop.time() >= deadline:
                log.warning("%s finished, but the snapshot does not show it", self.execution_id)
                return []
            await asyncio.sleep(min(self.poll_s, 0.1))

    async def close(self) -> None:
        pulling, opening = self._next, self._opening
        self._next = self._opening = None
        for task in (pulling, opening):
            if task is not None:
                task.cancel()
                await asyncio.wait({task})  # not `await task`: its error is not ours
        if opening is not None and not opening.cancelled() and opening.exception() is None:
            await _close_quietly(opening.result())  # it opened just as the watch ended
        if pulling is not None and not pulling.cancelled():
            pulling.exception()  # retrieved: no "exception never retrieved" noise
        if self.source is not None:
            await _close_quietly(self.source)
            self.source = None

    # -- live ----------------------------------------------------------------------------------

    async def _live_step(self) -> list[WatchUpdate]:
        assert self.source is not None
        if self._next is None:
            self._next = asyncio.create_task(_pull(self.source))
        done, _ = await asyncio.wait({self._next}, timeout=self.resync_s)
        if not done:  # quiet: a lost event must not freeze the view
            snaps = await self._snapshot_quietly(self.execution_id)
            return self._reset(snaps, only_changed=True) if snaps is not None else []
        task, self._next = self._next, None
        try:
            event = task.result()
        except Exception as exc:  # SourceUnavailable, or a source that broke: never the UI
            if not isinstance(exc, SourceUnavailable | StopAsyncIteration):
                log.warning("the event source failed", exc_info=exc)
            await _close_quietly(self.source)
            self.source = None
            self._to_polling(exc)
            snaps = await self._snapshot_quietly(self.execution_id)
            return self._reset(snaps, only_changed=False) if snaps else self._all_views()
        return await self._on_event(event)

    async def _on_event(self, event: Event) -> list[WatchUpdate]:
        execution_id = event.execution_id
        if not execution_id or event.type.cluster_level:
            return []
        if self.execution_id is not None and execution_id != self.execution_id:
            return []
        updates: list[WatchUpdate] = []
        view = self.views.get(execution_id)
        last = self.seqs.get(execution_id)
        if view is None:
            if event.type is EventType.WORKFLOW_SUBMITTED:
                view = execution_from_submitted(event)
            else:
                snaps = await self._snapshot_quietly(execution_id)
                if not snaps:
                    return []  # not in the store (yet): its next event tries again
                view = snaps[0]
                updates.append(WatchUpdate(view, None, self.mode))
        elif last is not None:
            if event.seq <= last:
                return []  # a duplicate: another delivery, a replay, an old owner
            if event.seq > last + 1 or seq_epoch(event.seq) != seq_epoch(last):
                snaps = await self._snapshot_quietly(execution_id)
                fresh = merge(view, snaps[0]) if snaps else view
                if fresh != view:
                    updates.append(WatchUpdate(fresh, None, self.mode))
                view = fresh
        view = advance(view, event)
        self.views[execution_id] = view
        self.seqs[execution_id] = event.seq
        updates.append(WatchUpdate(view, event, self.mode))
        return updates

    # -- polling -------------------------------------------------------------------------------

    def _to_polling(self, exc: BaseException) -> None:
        log.warning(
            "live events unavailable (%s): polling every %g s until they are back",
            str(exc) or type(exc).__name__,
            self.poll_s,
        )
        self.mode = WatchMode.POLLING
        now = asyncio.get_running_loop().time()
        self._open_at = now + self.reconnect_s
        self._poll_at = now + self.poll_s

    async def _poll_step(self) -> list[WatchUpdate]:
        loop = asyncio.get_running_loop()
        if self._opening is None and loop.time() >= self._open_at:
            self._opening = asyncio.create_task(self._open())
        wake_at = self._poll_at if self._opening is not None else min(self._poll_at, self._open_at)
        timeout = max(0.0, wake_at - loop.time())
        if self._opening is not None:
            await asyncio.wait({self._opening}, timeout=timeout)
        else:
            await asyncio.sleep(timeout)
        if self._opening is not None and self._opening.done():
            task, self._opening = self._opening, None
            try:
                self.source = task.result()
            except Exception as exc:
                log.debug("event source still unavailable: %s", exc)
                self._open_at = loop.time() + self.reconnect_s
            else:
                log.info("live events are back")
                self.mode = WatchMode.LIVE
                snaps = await self._snapshot_quietly(self.execution_id)
                return self._reset(snaps, only_changed=False) if snaps else self._all_views()
        if loop.time() < self._poll_at:
            return []
        snaps = await self._snapshot_quietly(self.execution_id)
        self._poll_at = loop.time() + self.poll_s
        return self._reset(snaps, only_changed=True) if snaps is not None else []

    # -- snapshots -----------------------------------------------------------------------------

    async def _open(self) -> EventSource:
        source = self.source_factory()
        try:
            await source.open()
        except BaseException:
            await _close_quietly(source)
            raise
        return source

    async def _snapshot(self, execution_id: str | None) -> list[WorkflowExecution]:
        if execution_id is None:
            return await asyncio.to_thread(self.snapshots.all)
        return [await asyncio.to_thread(self.snapshots.get, execution_id)]

    async def _snapshot_quietly(self, execution_id: str | None) -> list[WorkflowExecution] | None:
        """The snapshot; [] when the execution does not exist, None when it cannot be read."""
        try:
            snaps = await self._snapshot(execution_id)
        except ExecutionNotFoundError:
            return []
        except Exception as exc:
            if self._store_ok:  # once per outage
                log.warning("cannot read the current state (%s); trying again", exc)
            self._store_ok = False
            return None
        if not self._store_ok:
            log.info("the current state is readable again")
            self._store_ok = True
        return snaps

    def _reset(self, snaps: list[WorkflowExecution], *, only_changed: bool) -> list[WatchUpdate]:
        updates = []
        for snap in snaps:
            old = self.views.get(snap.execution_id)
            view = merge(old, snap)
            self.views[snap.execution_id] = view
            self.seqs[snap.execution_id] = None  # a snapshot has no seq: take the next event
            if not only_changed or view != old:
                updates.append(WatchUpdate(view, None, self.mode))
        return updates

    def _all_views(self) -> list[WatchUpdate]:
        return [WatchUpdate(view, None, self.mode) for view in self.views.values()]


async def _pull(source: EventSource) -> Event:
    return await anext(source)


async def _close_quietly(source: EventSource) -> None:
    try:
        await source.close()
    except Exception as exc:
        log.debug("closing the event source: %s", exc)
