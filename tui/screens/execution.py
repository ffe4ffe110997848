"""One execution's DAG: every task in topological order, indented by its depth in the graph,
with state, attempts, duration, worker, cache hit, live progress and metrics; below it the
selected task's message, metrics, error and traceback."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll

from tui import look
from tui.screens.actions import cancel_execution, rerun_execution
from tui.screens.base import LiveScreen
from tui.widgets import LiveTable, LiveText
from workbench.spec.graph import depths

if TYPE_CHECKING:
    from tui.feed import Batch
    from tui.state import LiveState
    from workbench.dag.records import TaskRecord, WorkflowExecution

COLUMNS = (
    "task",
    "type",
    "state",
    "attempts",
    "duration",
    "worker",
    "cache",
    "progress",
    "metrics",
)


class ExecutionScreen(LiveScreen):
    SCOPE = "execution"

    def __init__(self, execution_id: str) -> None:
        super().__init__()
        self.execution_id = execution_id
        self.graph: dict[str, list[str]] = {}
        self.depth: dict[str, int] = {}
        self._names: dict[str, Text] = {}  # the task column, by task
        self._shown: dict[str, TaskRecord] = {}  # the record each row shows (records are shared)
        self._detail_of: TaskRecord | None = None  # the record the detail panel shows

    def body(self) -> ComposeResult:
        yield LiveText(id="execution-title")
        table = LiveTable(id="tasks")
        for column in COLUMNS:
            table.add_column(column, key=column)
        yield table
        with VerticalScroll(id="task-detail"):
            yield LiveText(id="task-text")

    def on_mount(self) -> None:
        self.query_one(LiveTable).focus()
        app = self.workbench_app
        app.background(
            "reading the workflow's graph",
            lambda: app.backend.dependencies(self.execution_id),
            self._got_graph,
        )

    def _got_graph(self, graph: dict[str, list[str]]) -> None:
        self.graph, self.depth = graph, depths(graph)
        self._names.clear()
        self._shown.clear()
        self.query_one(LiveTable).clear()
        self.show(self.workbench_app.state, None)

    # -- drawing -------------------------------------------------------------------------------
    def show(self, state: LiveState, batch: Batch | None) -> None:
        if batch is not None and self.execution_id not in batch.executions:
            return
        execution = state.executions.get(self.execution_id)
        if execution is None:
            self.query_one("#execution-title", LiveText).show(
                Text(f"{self.execution_id}: not known")
            )
            return
        self._title(execution, state)
        table = self.query_one(LiveTable)
        if table.row_count != len(execution.tasks):
            table.clear()
            self._shown.clear()
            for record in execution.tasks.values():
                table.add_row(record.task_id, partial(self._cells, record))
                self._shown[record.task_id] = record
        else:
            for task_id, record in execution.tasks.items():
                if self._shown.get(task_id) is not record:  # unchanged records are the same object
                    # Its cells are made only if the row is drawn (or read): not off screen.
                    table.update_row(task_id, partial(self._cells, record))
                    self._shown[task_id] = record
        self._detail(execution)

    def _title(self, execution: WorkflowExecution, state: LiveState) -> None:
        title = Text.assemble(
            (f"{execution.execution_id}  ", "bold"),
            look.state(execution.status),
            "  ",
            look.bar(execution.progress, 20),
            f"  {look.duration(execution.duration_s)}  owner {state.owner(execution.execution_id)}",
        )
        if execution.error is not None:
            title.append(f"\n{execution.error.message}", style="red")
        self.query_one("#execution-title", LiveText).show(title)

    def _task_name(self, task_id: str) -> Text:
        """The task's name, indented by its depth, with its upstream tasks (made once)."""
        name = self._names.get(task_id)
        if name is None:
            depth = self.depth.get(task_id, 0)
            upstream = self.graph.get(task_id, [])
            name = Text("  " * depth + ("└─ " if depth else "") + task_id)
            if upstream:
                name.append(f"  ← {', '.join(upstream)}", style="grey50")
            self._names[task_id] = name
        return name

    def _cells(self, record: TaskRecord) -> tuple[object, ...]:
        return (
            self._task_name(record.task_id),
            record.task_type,
            look.state(record.state),
            str(record.attempts),
            look.duration(record.duration_s),
            self.workbench_app.state.worker_name(record.worker),
            Text("hit", style="bold blue") if record.state.value == "cached" else "-",
            look.bar(1.0 if record.state.succeeded else record.progress, 8),
            look.metrics(record.metrics, shown=3),
        )

    def _detail(self, execution: WorkflowExecution) -> None:
        table = self.query_one(LiveTable)
        if table.row_count == 0:
            return
        record = execution.tasks.get(table.cursor_key or "")
        if record is None or record is self._detail_of:  # records are new objects on change
            return
        self._detail_of = record
        parts = [Text.assemble((record.task_id, "bold"), "  ", look.state(record.state))]
        if record.message:
            parts.append(Text(record.message))
        if record.metrics:
            parts.append(Text("metrics: " + look.metrics(record.metrics, shown=50)))
        if record.error:
            parts.append(Text(f"error: {record.error}", style="bold red"))
        if record.traceback:
            parts.append(Text(record.traceback, style="red"))
        self.query_one("#task-text", LiveText).show(Text("\n").join(parts))

    def on_live_table_row_highlighted(self) -> None:
        execution = self.workbench_app.state.executions.get(self.execution_id)
        if execution is not None:
            self._detail(execution)

    # -- actions -------------------------------------------------------------------------------
    def action_cancel(self) -> None:
        cancel_execution(self, self.execution_id)

    def action_rerun(self) -> None:
        rerun_execution(self, self.execution_id)
