"""`watch` on a thread of its own, for UIs with their own loop (notebook widgets, Textual)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable
from typing import Unpack

from workbench.events.models import Event
from workbench.events.watch import (
    Snapshots,
    SourceFactory,
    WatchMode,
    WatchOptions,
    WatchUpdate,
    watch,
)

log = logging.getLogger(__name__)


class WatchThread:
    """`watch` on an event loop of its own, in a daemon thread, calling `callback(update)` for
    every update, on that thread (a UI hands it over to its own thread as it needs).

    `with WatchThread(...) as w:` or `w.start()` ... `w.stop()`. A callback that raises is
    logged and the watch goes on; an error of the watch itself (say, no such execution) ends
    the thread and is kept in `error`.
    """

    def __init__(
        self,
        snapshots: Snapshots,
        source_factory: SourceFactory,
        callback: Callable[[WatchUpdate], None],
        execution_id: str | None = None,
        # On the watch's thread, as `callback`: see `watch`.
        on_other: Callable[[Event], None] | None = None,
        on_mode: Callable[[WatchMode], None] | None = None,
        **options: Unpack[WatchOptions],
    ) -> None:
        self._updates = lambda: watch(
            snapshots, source_factory, execution_id, on_other=on_other, on_mode=on_mode, **options
        )
        self._callback = callback
        self.error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, name="workbench-watch", daemon=True)

    def start(self) -> WatchThread:
        self._thread.start()
        self._ready.wait()
        return self

    def stop(self, timeout: float | None = 10.0) -> None:
        """Cancel the watch and wait (up to `timeout`) until its thread has ended."""
        if self._loop is not None and self._task is not None:
            with contextlib.suppress(RuntimeError):  # the loop has ended already
                self._loop.call_soon_threadsafe(self._task.cancel)
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the watch to end by itself (its execution finished); True if it has."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def __enter__(self) -> WatchThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _main(self) -> None:
        try:
            asyncio.run(self._run())
        finally:
            self._ready.set()  # even when the loop could not start: start() must not hang

    async def _run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        self._ready.set()
        try:
            async with contextlib.aclosing(self._updates()) as updates:
                async for update in updates:
                    try:
                        self._callback(update)
                    except Exception:
                        log.exception(
                            "a watch callback failed on %s", update.execution.execution_id
                        )
        except asyncio.CancelledError:
            pass  # stop()
        except Exception as exc:
            self.error = exc
            log.warning("the watch ended: %s", exc)
