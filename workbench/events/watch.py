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
import logging
from collections.abc import AsyncGenerator, Callable

from workbench.dag.records import WorkflowExecution
from workbench.errors import ExecutionNotFoundError
from workbench.events.models import Event, EventType, seq_epoch
from workbench.events.replay import execution_from_submitted
from workbench.events.sources import (
    BusSource,
    EventSource,
    Snapshots,
    SourceFactory,
    SourceUnavailable,
    StoreSnapshots,
    WatchMode,
    WatchOptions,
    WatchUpdate,
)
from workbench.events.views import advance, merge

# The watcher's vocabulary, importable from here as from `sources`.
__all__ = [
    "BusSource",
    "EventSource",
    "Snapshots",
    "SourceFactory",
    "SourceUnavailable",
    "StoreSnapshots",
    "WatchMode",
    "WatchOptions",
    "WatchUpdate",
    "watch",
]

log = logging.getLogger(__name__)

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
    on_other: Callable[[Event], None] | None = None,
    on_mode: Callable[[WatchMode], None] | None = None,
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
    `on_other` receives, live, the events that move no execution's view (trials, models, the
    cluster itself) instead of their being dropped; `on_mode` each change of mode, even when
    there is no execution to show it on. Both run on the watcher's loop.
    """
    watcher = _Watcher(snapshots, source_factory, execution_id, poll_s, reconnect_s, resync_s)
    watcher.on_other, watcher.on_mode = on_other, on_mode
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
        self.on_other: Callable[[Event], None] | None = None
        self.on_mode: Callable[[WatchMode], None] | None = None

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
            events = [task.result(), *self.source.drain()]
        except Exception as exc:  # SourceUnavailable, or a source that broke: never the UI
            if not isinstance(exc, SourceUnavailable | StopAsyncIteration):
                log.warning("the event source failed", exc_info=exc)
            await _close_quietly(self.source)
            self.source = None
            self._to_polling(exc)
            snaps = await self._snapshot_quietly(self.execution_id)
            return self._reset(snaps, only_changed=False) if snaps else self._all_views()
        updates: list[WatchUpdate] = []
        for event in events:
            updates += await self._on_event(event)
        return updates

    async def _on_event(self, event: Event) -> list[WatchUpdate]:
        execution_id = event.execution_id
        if self.on_other is not None and not event.type.of_workflow:
            self.on_other(event)
            return []
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
        self._set_mode(WatchMode.POLLING)
        now = asyncio.get_running_loop().time()
        self._open_at = now + self.reconnect_s
        self._poll_at = now + self.poll_s

    def _set_mode(self, mode: WatchMode) -> None:
        self.mode = mode
        if self.on_mode is not None:
            self.on_mode(mode)

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
                self._set_mode(WatchMode.LIVE)
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
