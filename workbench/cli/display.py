"""The live Rich display of a running workflow: a subscriber of the event bus like any other."""

from __future__ import annotations

import threading
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.markup import escape
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from workbench.dag.records import WorkflowExecution
from workbench.dag.states import TaskState, WorkflowStatus
from workbench.events.models import Event
from workbench.events.replay import ExecutionViews

STATE_STYLE: dict[TaskState, tuple[str, str]] = {
    TaskState.PENDING: ("·", "dim"),
    TaskState.SUBMITTED: ("○", "cyan"),
    TaskState.RUNNING: ("▶", "bold yellow"),
    TaskState.RETRYING: ("↻", "magenta"),
    TaskState.SUCCEEDED: ("✔", "green"),
    TaskState.CACHED: ("✔", "cyan"),
    TaskState.FAILED: ("✘", "bold red"),
    TaskState.SKIPPED: ("⤼", "dim red"),
    TaskState.CANCELLED: ("■", "dim"),
}

STATUS_STYLE = {
    WorkflowStatus.PENDING: "dim",
    WorkflowStatus.RUNNING: "yellow",
    WorkflowStatus.SUCCEEDED: "bold green",
    WorkflowStatus.FAILED: "bold red",
    WorkflowStatus.CANCELLED: "dim",
}

MAX_ROWS = 40  # a 10,000-task workflow shows its running and failed tasks first


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    return f"{seconds:.1f}s" if seconds < 120 else f"{seconds / 60:.1f}m"


def metric_text(value: float) -> str:
    """Counts as integers with separators, everything else with four significant digits."""
    if float(value).is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    return f"{value:.4g}"


def task_table(execution: WorkflowExecution, width: int = 120) -> Table:
    wide = width >= 110  # an 80-column terminal drops the type column and shortens the bar
    table = Table(expand=True, box=None, pad_edge=False)
    table.add_column("", width=1)
    table.add_column("task", no_wrap=True)
    if wide:
        table.add_column("type", style="dim", no_wrap=True)
    table.add_column("progress", width=22 if wide else 12)
    table.add_column("try", justify="right", width=3)
    table.add_column("time", justify="right", width=6)
    table.add_column("detail", overflow="ellipsis", no_wrap=True, ratio=1, min_width=10)
    records = list(execution.tasks.values())
    if len(records) > MAX_ROWS:
        rank = {TaskState.RUNNING: 0, TaskState.RETRYING: 0, TaskState.FAILED: 1}
        records = sorted(records, key=lambda r: rank.get(r.state, 2))[:MAX_ROWS]
    for record in records:
        symbol, style = STATE_STYLE[record.state]
        fraction = 1.0 if record.state.succeeded else record.progress
        detail = record.error if record.state is TaskState.FAILED else record.message
        if record.state.succeeded and record.metrics:
            detail = "  ".join(f"{k}={metric_text(v)}" for k, v in list(record.metrics.items())[:4])
        if record.state is TaskState.CACHED:
            detail = f"cached  {detail}" if record.metrics else "cached"
        cells: list[RenderableType] = [Text(symbol, style=style), Text(record.task_id, style=style)]
        if wide:
            cells.append(record.task_type)
        cells += [
            ProgressBar(total=1.0, completed=fraction, width=20 if wide else 10),
            str(record.attempts or ""),
            _duration(record.duration_s),
            escape(detail or ""),
        ]
        table.add_row(*cells)
    return table


def header(execution: WorkflowExecution) -> Text:
    counts = execution.counts()
    done = sum(n for state, n in counts.items() if state.terminal)
    text = Text()
    text.append(f"{execution.name} ", style="bold")
    text.append(f"[{execution.execution_id}] ", style="dim")
    text.append(execution.status.value, style=STATUS_STYLE[execution.status])
    text.append(f"  {done}/{len(execution.tasks)} tasks  {execution.progress:.0%}")
    text.append(f"  {_duration(execution.duration_s)}", style="dim")
    return text


class LiveDisplay:
    """Keeps its own view of the execution from the events it hears, and re-renders it a few
    times a second (bursts of events cost one redraw)."""

    def __init__(self, console: Console) -> None:
        self._console = console
        self._views = ExecutionViews()
        self._execution: WorkflowExecution | None = None
        self._lock = threading.Lock()
        self.waiting = "starting the local Dask cluster…"
        # Transient: when the run ends the live view gives way to the summary.
        self._live = Live(
            console=console, refresh_per_second=8, get_renderable=self._render, transient=True
        )

    def on_event(self, event: Event) -> None:
        with self._lock:
            execution = self._views.apply(event)
            if execution is not None:
                self._execution = execution

    def on_view(self, execution: WorkflowExecution) -> None:
        """A view built elsewhere (a watcher following a cluster)."""
        with self._lock:
            self._execution = execution

    def _render(self) -> RenderableType:
        with self._lock:
            execution = self._execution
            if execution is None:
                return Text(self.waiting, style="dim")
            return Group(header(execution), task_table(execution, self._console.width))

    def __enter__(self) -> LiveDisplay:
        self._live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._live.__exit__(*exc)


def render_summary(console: Console, execution: WorkflowExecution) -> None:
    console.print(header(execution))
    console.print(task_table(execution, console.width))
    metrics = execution.metrics
    if metrics:
        table = Table(title="metrics", title_justify="left", expand=True, show_lines=False)
        table.add_column("task", style="bold", no_wrap=True)
        table.add_column("metrics", ratio=1)
        for task_id, values in metrics.items():
            line = "   ".join(
                f"{name} [bold]{metric_text(value)}[/]" for name, value in values.items()
            )
            table.add_row(task_id, line)
        console.print(table)
    if execution.error is not None:
        where = f" in task {execution.error.task_id!r}" if execution.error.task_id else ""
        console.print(f"[bold red]failed{where}:[/] {escape(execution.error.message)}")
        if execution.error.traceback:
            console.print(Text(execution.error.traceback.rstrip(), style="dim"))
