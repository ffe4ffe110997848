"""A workflow execution in a notebook: every task live, then the outcome.

`Execution` follows its execution through the client's watch stream (the bus locally, Kafka
in a cluster) on a background thread; its widget shows overall progress, one row per task in
graph order (state, progress bar, duration, attempts, cache badge, metrics) and, for each
failed task, an expandable error with its traceback.
"""

from __future__ import annotations

import threading
from html import escape
from typing import TYPE_CHECKING, Any

from workbench.dag.records import TaskRecord, WorkflowExecution
from workbench.dag.states import TaskState
from workbench.notebook import html
from workbench.notebook.live import LiveView
from workbench.spec.graph import depths

if TYPE_CHECKING:
    from workbench.client.workbench import Workbench
    from workbench.events.watch import WatchUpdate
    from workbench.events.watch_thread import WatchThread
    from workbench.tasks.base import TaskResult

TASK_COLUMNS = ("", "task", "type", "state", "progress", "duration", "attempts", "metrics")


def task_row(record: TaskRecord, depth: int) -> list[str]:
    _, colour = html.LOOK.get(record.state, ("", "#444"))
    cached = record.state is TaskState.CACHED
    progress = 1.0 if record.state.succeeded else record.progress
    indent = "&nbsp;&nbsp;" * depth + ("└&nbsp;" if depth else "")
    return [
        html.badge("cache hit", "#2a6fdb") if cached else "",
        f"{indent}<b>{escape(record.task_id)}</b>",
        f'<span class="dim">{escape(record.task_type)}</span>',
        html.state(record.state),
        f"{html.bar(progress, colour)} {progress:.0%}",
        html.duration(record.duration_s),
        str(record.attempts),
        html.metrics(record.metrics),
    ]


def summary_line(view: WorkflowExecution) -> str:
    done = sum(1 for t in view.tasks.values() if t.state.terminal)
    return f"{view.name} · {view.status.value} · {done}/{len(view.tasks)} tasks" + (
        f" · {html.duration(view.duration_s)}" if view.duration_s is not None else ""
    )


class Execution(LiveView):
    """One execution, live. `wait()` blocks until it has finished; `view` is its record now."""

    CSS_CLASS = "workbench-execution"

    def __init__(self, client: Workbench, execution_id: str, *, follow: bool = True) -> None:
        super().__init__()
        self.client = client
        self.execution_id = execution_id
        self.view: WorkflowExecution = client.execution(execution_id)
        graph = client.dependencies(execution_id)
        self.depth = depths(graph)
        self.order = [t for t in graph if t in self.view.tasks]
        self.order += [t for t in self.view.tasks if t not in self.depth]
        self._errors_shown: set[str] = set()
        self._lock = threading.Lock()
        self._watch: WatchThread | None = None
        if follow and not self.view.status.terminal:
            self._watch = client.watch_in_thread(self.update, execution_id)

    # -- state ---------------------------------------------------------------------------------
    def update(self, update: WatchUpdate) -> None:
        """One update of the watch stream (on the watch's thread)."""
        with self._lock:
            self.view = update.execution
        if self.view.status.terminal:
            self.changed_now()
        else:
            self.changed()

    @property
    def status(self) -> str:
        return self.view.status.value

    @property
    def metrics(self) -> dict[str, dict[str, float]]:
        """Task id -> the metrics it reported."""
        return self.view.metrics

    def wait(self, timeout: float | None = None) -> WorkflowExecution:
        """Block until the execution has finished and show its final state."""
        final = self.client.wait_blocking(self.execution_id, timeout)
        if self._watch is not None:
            self._watch.join(timeout=10.0)  # its last update is the store's final record
        with self._lock:
            if not self.view.status.terminal:
                self.view = final
        self.changed_now()
        return self.view

    def result(self, task_id: str) -> TaskResult:
        return self.client.result(self.execution_id, task_id)

    def cancel(self) -> None:
        self.client.cancel(self.execution_id)

    def stop(self) -> None:
        """Stop following (the widget keeps its last state)."""
        if self._watch is not None:
            self._watch.stop()

    # -- rendering -----------------------------------------------------------------------------
    def header(self) -> str:
        view = self.view
        done = sum(1 for t in view.tasks.values() if t.state.terminal)
        _, colour = html.LOOK.get(view.status, ("", "#444"))
        return (
            f'<div class="head">{escape(view.name)} '
            f'<span class="dim">{escape(view.execution_id)}</span></div>'
            f"<div>{html.state(view.status)} &nbsp;{html.bar(view.progress, colour)} "
            f"{done}/{len(view.tasks)} tasks"
            + (f" · {html.duration(view.duration_s)}" if view.duration_s is not None else "")
            + "</div>"
        )

    def tasks_table(self) -> str:
        rows = [task_row(self.view.tasks[t], self.depth.get(t, 0)) for t in self.order]
        return html.table(TASK_COLUMNS, rows, numeric={5, 6})

    def failures(self) -> list[TaskRecord]:
        return [t for t in (self.view.tasks[i] for i in self.order) if t.error]

    def html(self) -> str:
        errors = "".join(
            f"<details><summary>{html.state(t.state)} <b>{escape(t.task_id)}</b>: "
            f"{escape(t.error or '')}</summary>{html.pre(t.traceback or '')}</details>"
            for t in self.failures()
        )
        return html.block(self.header(), self.tasks_table(), errors)

    def text(self) -> str:
        lines = [f"{self.view.execution_id}: {summary_line(self.view)}"]
        for task_id in self.order:
            t = self.view.tasks[task_id]
            metrics = ", ".join(f"{k}={html.number(v)}" for k, v in t.metrics.items())
            lines.append(
                f"  {html.symbol(t.state)} {task_id:<24} {t.state.value:<10} "
                f"{html.duration(t.duration_s):>7}  {metrics}".rstrip()
            )
            if t.error:
                lines.append(f"      error: {t.error}")
        return "\n".join(lines)

    # -- the widget ----------------------------------------------------------------------------
    def build(self) -> Any:
        import ipywidgets as widgets

        self._head = widgets.HTML(html.block(self.header()))
        self._table = widgets.HTML(html.block(self.tasks_table()))
        self._errors = widgets.Accordion(children=[], layout={"display": "none"})
        self._add_errors()
        return widgets.VBox([self._head, self._table, self._errors])

    def redraw(self) -> None:
        self._head.value = html.block(self.header())
        self._table.value = html.block(self.tasks_table())
        self._add_errors()

    def _add_errors(self) -> None:
        """One accordion section per failed task, added once: redrawing the rows must not
        fold a traceback someone has opened."""
        import ipywidgets as widgets

        fresh = [t for t in self.failures() if t.task_id not in self._errors_shown]
        if not fresh:
            return
        children = list(self._errors.children)
        for record in fresh:
            self._errors_shown.add(record.task_id)
            children.append(
                widgets.HTML(html.block(html.pre(record.traceback or record.error or "")))
            )
        self._errors.children = children
        for index, record in enumerate(self.failures()):
            self._errors.set_title(index, f"✘ {record.task_id}: {(record.error or '')[:120]}")
        self._errors.layout.display = None
