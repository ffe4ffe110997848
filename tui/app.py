"""WorkbenchApp: the terminal UI. One screen per mode; the live state is kept here, fed by the
workbench's watch stream through a LiveFeed (batched: at most 30 redraws a second whatever
the event rate, fewer when they cost more; full garbage collections between them), and
everything that can block (Redis, Kafka, Dask, files) runs in thread workers that hand their
results back to the UI's loop."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import time
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any, ClassVar, TypeVar

from textual.app import App, SystemCommand
from textual.screen import Screen

from tui.backend import Backend
from tui.feed import Batch, LiveFeed
from tui.keys import APP, KEYS, bindings_for, shown
from tui.screens.base import Banner, LiveScreen
from tui.screens.dialogs import HelpScreen, SubmitDialog
from tui.screens.events import EventsScreen
from tui.screens.models import ModelsScreen
from tui.screens.overview import OverviewScreen
from tui.screens.tuning import TuningScreen
from tui.screens.workflows import WorkflowsScreen
from tui.state import LiveState

T = TypeVar("T")

OVERVIEW_EVERY_S = 2.0
FULL_GC_EVERY_S = 5.0  # rarely: little garbage is left in cycles, which only it frees


class WorkbenchApp(App[None]):
    CSS_PATH = "workbench.tcss"
    TITLE = "Workbench"
    MODES: ClassVar[dict[str, Any]] = {
        "overview": OverviewScreen,
        "workflows": WorkflowsScreen,
        "tuning": TuningScreen,
        "models": ModelsScreen,
        "events": EventsScreen,
    }
    BINDINGS = bindings_for(APP)

    def __init__(self, backend: Backend, *, mode: str = "workflows", max_hz: float = 30.0):
        super().__init__()
        self.backend = backend
        self.start_mode = mode
        self.state = LiveState(kafka_configured=bool(backend.settings.kafka_bootstrap_servers))
        self.feed = LiveFeed(self._feed_wake, max_hz=max_hz)
        # Called after the screen has been redrawn with a batch (benchmarks measure with it).
        self.on_frame: Callable[[Batch], None] | None = None
        self._ui_loop: asyncio.AbstractEventLoop | None = None
        self._ui_context: contextvars.Context | None = None
        self._feed_at = 0.0
        self._feed_cpu_at = 0.0  # the UI thread's CPU time at the last flush
        self._feed_due = False
        self._gc_threshold = gc.get_threshold()  # the interpreter's, put back on unmount
        self._full_gc_at = 0.0

    # -- start ---------------------------------------------------------------------------------
    def on_mount(self) -> None:
        # Everything loaded so far (the workbench, Textual, their imports) lives as long as
        # the app: out of the collector's sight, a full collection scans only what came since
        # instead of pausing every thread for a hundred milliseconds or more while events
        # stream. Collected first, so that no garbage is kept for good.
        gc.collect()
        gc.freeze()
        # A full collection still pauses every thread for 10-30 ms (it visits what the objects
        # refer to, frozen ones too): the app runs them itself, right after a frame is drawn
        # (`_collect`), never the interpreter in the middle of one. The young generations are
        # collected as usual.
        gc.set_threshold(*self._gc_threshold[:2], 2**30)
        self._full_gc_at = time.monotonic()
        self.set_interval(FULL_GC_EVERY_S, partial(self._collect, 2 * FULL_GC_EVERY_S))
        self._ui_loop = asyncio.get_running_loop()
        self._ui_context = contextvars.copy_context()  # Textual's timers need its context vars
        self.sub_title = self.backend.where
        self.switch_mode(self.start_mode)
        self.background(
            "starting the live view",
            lambda: self.backend.watch(self.feed.on_update, self.feed.on_other, self.feed.on_mode),
            group="watch",
        )
        self.refresh_overview()
        self.set_interval(OVERVIEW_EVERY_S, self.refresh_overview)

    def on_unmount(self) -> None:
        self.backend.stop_watch()
        gc.set_threshold(*self._gc_threshold)

    def _collect(self, every_s: float = FULL_GC_EVERY_S) -> None:
        """A full collection if the last was `every_s` ago: after each frame, and on a timer
        (less often) for when no frame is drawn."""
        now = time.monotonic()
        if now - self._full_gc_at >= every_s:
            self._full_gc_at = now
            gc.collect()

    # -- work off the UI's loop ----------------------------------------------------------------
    def background(
        self,
        what: str,
        call: Callable[[], T],
        then: Callable[[T], None] | None = None,
        *,
        group: str | None = None,
        on_error: Callable[[Exception], None] | None = None,
    ) -> None:
        """Run `call` in a thread worker; `then(result)` (or `on_error`, by default a
        notification naming `what`) back on the UI's loop. Never takes the app down."""

        def run() -> None:
            try:
                result = call()
            except Exception as exc:
                if on_error is not None:
                    self.call_from_thread(on_error, exc)
                else:
                    self.call_from_thread(self.notify, f"{what}: {exc}", severity="error")
                return
            if then is not None:
                self.call_from_thread(then, result)

        self.run_worker(run, name=what, group=group or what, thread=True, exit_on_error=False)

    # -- the live feed -------------------------------------------------------------------------
    def _feed_wake(self) -> None:  # on the watch thread
        if self._ui_loop is not None and not self._ui_loop.is_closed():
            self._ui_loop.call_soon_threadsafe(self._feed_schedule, context=self._ui_context)

    def _feed_schedule(self) -> None:
        if self._feed_due:
            return
        wait = self._feed_at + self.feed.interval_s - time.monotonic()
        if wait > 0:
            self._feed_due = True
            self.set_timer(wait, self._flush_feed)
        else:
            self._flush_feed()

    def _flush_feed(self) -> None:
        self._feed_due = False
        self._feed_at, self._feed_cpu_at = time.monotonic(), time.thread_time()
        batch = self.feed.take()
        if not batch:
            return
        self.state.apply(batch)
        screen = self.screen
        if isinstance(screen, LiveScreen):
            screen.show(self.state, batch)
        if batch.mode is not None:  # the only problem a batch can bring or clear
            self.show_problems()
        # Twice: a screen runs after-refresh callbacks as soon as it is idle, which can be
        # before a widget's repaint request has reached it; one round later it has.
        self.call_after_refresh(self.call_after_refresh, self._drawn, batch)

    def _drawn(self, batch: Batch) -> None:
        self.feed.drawn(time.thread_time() - self._feed_cpu_at)
        if self.on_frame is not None:
            self.on_frame(batch)
        self._collect()

    # -- the overview and the banner -----------------------------------------------------------
    def refresh_overview(self) -> None:
        self.background(
            "reading the cluster",
            self.backend.overview,
            self._got_overview,
            group="overview",
            on_error=self._no_overview,
        )

    def _got_overview(self, overview: Any) -> None:
        self.state.set_overview(overview)
        self._overview_changed()

    def _no_overview(self, exc: Exception) -> None:
        self.state.overview_error = str(exc) or type(exc).__name__
        self._overview_changed()

    def _overview_changed(self) -> None:
        self.show_problems()
        screen = self.screen
        if isinstance(screen, OverviewScreen | WorkflowsScreen):
            screen.show(self.state, None)

    def show_problems(self) -> None:
        problems = self.state.problems()
        for banner in self.screen.query(Banner):
            banner.show_problems(problems)

    # -- actions -------------------------------------------------------------------------------
    def action_submit(self) -> None:
        self.push_screen(SubmitDialog(self.backend), self._submitted)

    def _submitted(self, execution_id: str | None) -> None:
        if execution_id:
            self.notify(f"submitted {execution_id}")
            self.switch_mode("workflows")

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        scopes = {APP, getattr(screen, "SCOPE", "")}
        for key in KEYS:
            if key.palette and key.scope in scopes:
                target = None if key.scope == APP else screen
                yield SystemCommand(
                    key.description,
                    f"key: {shown(key.key)}",
                    partial(self.run_action, key.action, target),
                )


def run(profile: str | None = None) -> None:
    """`workbench tui`: open the workbench (local without a profile) and run the UI."""
    backend = Backend.open(profile)
    try:
        WorkbenchApp(backend).run()
    finally:
        backend.close()
