"""Events: the live event stream (workflow, task, trial, model and cluster events) with a
filter (text, or `type:task.failed`); Space pauses the view, not the stream."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import Input, RichLog

from tui import look
from tui.screens.base import LiveScreen
from tui.state import EVENTS_KEPT

if TYPE_CHECKING:
    from tui.feed import Batch
    from tui.state import LiveState
    from workbench.events.models import Event

_TYPE_STYLE = {
    "workflow": "bold cyan",
    "task": "",
    "trial": "magenta",
    "model": "bold green",
    "cluster": "yellow",
}
_FAILED = ("task.failed", "task.retrying")


def line(event: Event) -> Text:
    kind = event.type.value
    style = "bold red" if kind in _FAILED else _TYPE_STYLE.get(kind.split(".")[0], "")
    text = Text.assemble((look.clock(event.timestamp), "grey50"), " ", (f"{kind:<22}", style))
    text.append(f" {event.execution_id or event.workflow_id}")
    if event.task_id:
        text.append(f" {event.task_id}", style="bold")
    if event.status:
        text.append(f" {event.status}")
    if event.progress is not None and kind == "task.progress":
        text.append(f" {event.progress:.0%}")
    if event.metrics:
        text.append(f" {look.metrics(event.metrics)}", style="cyan")
    if event.message:
        text.append(f" {event.message}", style="grey70")
    text.append(f"  [{event.instance_id}]", style="grey42")
    return text


class EventsScreen(LiveScreen):
    SCOPE = "events"

    def __init__(self) -> None:
        super().__init__()
        self.paused = False

    def body(self) -> ComposeResult:
        yield Input(placeholder="filter: text, or type:task.failed  (/ to focus)", id="filter")
        yield RichLog(id="events", max_lines=EVENTS_KEPT, wrap=False, auto_scroll=True)

    def on_mount(self) -> None:
        self.query_one(RichLog).focus()

    def on_input_submitted(self) -> None:
        self.query_one(RichLog).focus()

    def show(self, state: LiveState, batch: Batch | None) -> None:
        if self.paused:
            return
        log = self.query_one(RichLog)
        text = self.query_one("#filter", Input).value.strip().lower()
        if batch is None:
            log.clear()
            wanted = [e for e in state.events if _matches(e, text)]
        else:
            # Following: a burst writes only what fits on the screen; the scrollback is
            # rebuilt from the kept events when the view is paused (or the filter changes).
            wanted = [e for e in batch.events if _matches(e, text)][-max(log.size.height, 1) :]
        if wanted:
            log.write(Text("\n").join(line(e) for e in wanted), scroll_end=True)

    def on_input_changed(self) -> None:
        self.show(self.workbench_app.state, None)

    def action_focus_filter(self) -> None:
        self.query_one("#filter", Input).focus()

    def action_toggle_pause(self) -> None:
        log = self.query_one(RichLog)
        if self.paused:
            self.paused = False
            log.border_title = None
            self.show(self.workbench_app.state, None)
        else:  # every kept event, to scroll through
            self.show(self.workbench_app.state, None)
            self.paused = True
            log.border_title = "paused (Space to follow)"


def _matches(event: Event, text: str) -> bool:
    """`text`: a filter, lower case; empty matches everything."""
    if not text:
        return True
    if text.startswith("type:"):
        return event.type.value.startswith(text.removeprefix("type:").strip())
    fields = (event.type.value, event.execution_id, event.task_id, event.message, event.status)
    return any(text in value.lower() for value in fields if value)
