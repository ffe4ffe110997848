"""Actions on an execution, shared by the workflows list and the execution's own screen."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tui.screens.dialogs import ConfirmDialog

if TYPE_CHECKING:
    from tui.screens.base import LiveScreen


def cancel_execution(screen: LiveScreen, execution_id: str | None) -> None:
    app = screen.workbench_app
    execution = app.state.executions.get(execution_id or "")
    if execution is None:
        app.notify("no execution selected", severity="warning")
        return
    if execution.status.terminal:
        app.notify(
            f"{execution.execution_id} has ended ({execution.status.value})", severity="warning"
        )
        return

    def confirmed(yes: bool | None) -> None:
        if yes:
            app.notify(f"cancelling {execution.execution_id}…")
            app.background(
                f"cancelling {execution.execution_id}",
                lambda: app.backend.cancel(execution.execution_id),
                lambda _: app.notify(f"cancelled {execution.execution_id}"),
            )

    app.push_screen(
        ConfirmDialog(
            f"Cancel {execution.execution_id}? Running tasks are stopped.", yes="Cancel it"
        ),
        confirmed,
    )


def rerun_execution(screen: LiveScreen, execution_id: str | None) -> None:
    app = screen.workbench_app
    if execution_id is None:
        app.notify("no execution selected", severity="warning")
        return
    app.background(
        f"re-running {execution_id}",
        lambda: app.backend.rerun(execution_id),
        lambda new_id: app.notify(
            f"re-running as {new_id}: what succeeded comes from the cache, the rest runs again"
        ),
    )
