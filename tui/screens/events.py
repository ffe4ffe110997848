"""Events: the live event stream (workflow, task, trial, model and cluster events) with a
filter (text, or `type:task.failed`); Space pauses the view, not the stream."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.segment import Segment
from rich.style import Style
from textual.app import ComposeResult
from textual.widgets import Input

from tui import look
from tui.screens.base import LiveScreen
from tui.state import EVENTS_KEPT
from tui.widgets import EventLog

if TYPE_CHECKING:
    from tui.feed import Batch
    from tui.state import LiveState
    from workbench.events.models import Event

# Parsed once: a screenful of new lines is made every frame of a burst.
_TYPE_STYLE = {
    "workflow": Style.parse("bold cyan"),
    "trial": Style.parse("magenta"),
    "model": Style.parse("bold green"),
    "cluster": Style.parse("yellow"),
}
_FAILED = ("task.failed", "task.retrying")
_FAILED_STYLE = Style.parse("bold red")
_CLOCK, _TASK, _METRICS = Style.parse("grey50"), Style.parse("bold"), Style.parse("cyan")
_MESSAGE, _INSTANCE = Style.parse("grey70"), Style.parse("grey42")


def line(event: Event) -> list[Segment]:
    """The event's line, as segments: made directly, as a Rich Text would cost several times
    more to make and render."""
    kind = event.type.value
    style = _FAILED_STYLE if kind in _FAILED else _TYPE_STYLE.get(kind.split(".")[0])
    segments = [
        Segment(look.clock(event.timestamp), _CLOCK),
        Segment(" "),
        Segment(f"{kind:<22}", style),
        Segment(f" {event.execution_id or event.workflow_id}"),
    ]
    if event.task_id:
        segments.append(Segment(f" {event.task_id}", _TASK))
    plain = ""
    if event.status:
        plain += f" {event.status}"
    if event.progress is not None and kind == "task.progress":
        plain += f" {event.progress:.0%}"
    if plain:
        segments.append(Segment(plain))
    if event.metrics:
        segments.append(Segment(f" {look.metrics(event.metrics)}", _METRICS))
    if event.message:
        segments.append(Segment(f" {event.message}", _MESSAGE))
    segments.append(Segment(f"  [{event.instance_id}]", _INSTANCE))
    return segments


class EventsScreen(LiveScreen):
    SCOPE = "events"

    def __init__(self) -> None:
        super().__init__()
        self.paused = False

    def body(self) -> ComposeResult:
        yield Input(placeholder="filter: text, or type:task.failed  (/ to focus)", id="filter")
        yield EventLog(line, capacity=EVENTS_KEPT, id="events")

    @property
    def event_log(self) -> EventLog[Event]:
        return self.query_one("#events", EventLog)

    def on_mount(self) -> None:
        self.event_log.focus()

    def on_input_submitted(self) -> None:
        self.event_log.focus()

    def show(self, state: LiveState, batch: Batch | None) -> None:
        if self.paused:
            return
        text = self.query_one("#filter", Input).value.strip().lower()
        # Every event is kept (a bounded history to scroll through); only those on screen
        # are ever made into lines.
        if batch is None:
            self.event_log.replace(e for e in state.events if _matches(e, text))
        else:
            self.event_log.extend(e for e in batch.events if _matches(e, text))

    def on_input_changed(self) -> None:
        self.show(self.workbench_app.state, None)

    def action_focus_filter(self) -> None:
        self.query_one("#filter", Input).focus()

    def action_toggle_pause(self) -> None:
        self.paused = not self.paused
        if self.paused:
            self.event_log.border_title = "paused (Space to follow)"
        else:  # what came meanwhile
            self.event_log.border_title = None
            self.show(self.workbench_app.state, None)


def _matches(event: Event, text: str) -> bool:
    """`text`: a filter, lower case; empty matches everything."""
    if not text:
        return True
    if text.startswith("type:"):
        return event.type.value.startswith(text.removeprefix("type:").strip())
    fields = (event.type.value, event.execution_id, event.task_id, event.message, event.status)
    return any(text in value.lower() for value in fields if value)
