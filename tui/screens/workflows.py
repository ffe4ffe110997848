"""Workflows: every execution with its live status, progress, duration and owner; a filter
(text, or `status:failed`); Enter opens its DAG."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.widgets import Input

from tui import look
from tui.screens.actions import cancel_execution, rerun_execution
from tui.screens.base import LiveScreen
from tui.screens.execution import ExecutionScreen
from tui.widgets import LiveTable

if TYPE_CHECKING:
    from tui.feed import Batch
    from tui.state import LiveState
    from workbench.dag.records import WorkflowExecution

COLUMNS = ("execution", "workflow", "status", "progress", "tasks", "duration", "owner")


class WorkflowsScreen(LiveScreen):
    SCOPE = "workflows"

    def body(self) -> ComposeResult:
        yield Input(placeholder="filter: text, or status:failed  (/ to focus)", id="filter")
        table = LiveTable(id="executions")
        for column in COLUMNS:
            table.add_column(column, key=column)
        yield table

    def on_mount(self) -> None:
        self.query_one(LiveTable).focus()

    # -- drawing -------------------------------------------------------------------------------
    def show(self, state: LiveState, batch: Batch | None) -> None:
        table = self.query_one(LiveTable)
        text = self.query_one("#filter", Input).value.strip().lower()
        wanted = [e for e in state.executions.values() if _matches(e, text)]
        wanted.sort(key=lambda e: e.submitted_at, reverse=True)
        keys = [e.execution_id for e in wanted]
        if keys != table.keys:  # rows came, went or moved: rebuild (cheap: one row per execution)
            cursor = self.selected()
            table.clear()
            for execution in wanted:
                table.add_row(execution.execution_id, self._cells(execution, state))
            if cursor in keys:
                table.move_cursor(row=keys.index(cursor))
            return
        changed = (
            wanted if batch is None else [e for e in wanted if e.execution_id in batch.executions]
        )
        for execution in changed:
            table.update_row(execution.execution_id, self._cells(execution, state))

    def _cells(self, execution: WorkflowExecution, state: LiveState) -> tuple[object, ...]:
        counts = execution.counts()
        done = sum(n for s, n in counts.items() if s.terminal)
        return (
            execution.execution_id,
            execution.name,
            look.state(execution.status),
            look.bar(execution.progress),
            f"{done}/{len(execution.tasks)}",
            look.duration(execution.duration_s),
            state.owner(execution.execution_id),
        )

    def on_input_changed(self) -> None:
        self.show(self.workbench_app.state, None)

    def on_input_submitted(self) -> None:
        self.query_one(LiveTable).focus()

    def selected(self) -> str | None:
        return self.query_one(LiveTable).cursor_key

    # -- actions -------------------------------------------------------------------------------
    def action_focus_filter(self) -> None:
        self.query_one("#filter", Input).focus()

    def on_live_table_row_selected(self, event: LiveTable.RowSelected) -> None:
        self.app.push_screen(ExecutionScreen(event.key))

    def action_open_execution(self) -> None:
        execution_id = self.selected()
        if execution_id is not None:
            self.app.push_screen(ExecutionScreen(execution_id))

    def action_cancel(self) -> None:
        cancel_execution(self, self.selected())

    def action_rerun(self) -> None:
        rerun_execution(self, self.selected())


def _matches(execution: WorkflowExecution, text: str) -> bool:
    """`text`: a filter, lower case; empty matches everything."""
    if not text:
        return True
    if text.startswith("status:"):
        return execution.status.value.startswith(text.removeprefix("status:").strip())
    return text in execution.execution_id.lower() or text in execution.name.lower()
