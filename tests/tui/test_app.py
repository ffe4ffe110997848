"""The terminal UI driven by Textual's Pilot against a real local workbench: navigation, help
and the command palette, submitting (good and bad files), the DAG of a run, cancelling and
re-running, promoting and rolling back a model, each with what the workbench did checked."""

from __future__ import annotations

from pathlib import Path

import pytest
from sklearn.dummy import DummyClassifier
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, Static

from tests.tui.conftest import drive, text_of, ui_task, until, write_workflow
from tui.app import WorkbenchApp
from tui.backend import Backend
from tui.keys import KEYS
from tui.screens.dialogs import ConfirmDialog, HelpScreen, SubmitDialog
from tui.screens.events import EventsScreen
from tui.screens.execution import ExecutionScreen
from tui.screens.models import ModelsScreen
from tui.screens.overview import OverviewScreen
from tui.screens.tuning import TuningScreen
from tui.screens.workflows import WorkflowsScreen
from tui.widgets import EventLog, LiveTable
from workbench.client.workbench import Workbench
from workbench.dag.states import TaskState, WorkflowStatus

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


def backend_of(workbench: Workbench) -> Backend:
    return Backend(workbench, owns_workbench=False)


def cell_text(table: LiveTable | DataTable[object], row: str, column: str) -> str:
    return str(table.get_cell(row, column))


async def submit(app: WorkbenchApp, pilot: Pilot[None], path: Path) -> None:
    await pilot.press("s")
    await until(pilot, lambda: isinstance(app.screen, SubmitDialog), "the submit dialog")
    app.screen.query_one(Input).value = str(path)
    await pilot.press("enter")


def test_every_screen_is_a_key_away_and_the_help_lists_every_key(workbench: Workbench) -> None:
    async def scenario(app: WorkbenchApp, pilot: Pilot[None]) -> None:
        assert isinstance(app.screen, WorkflowsScreen)
        for key, screen in [
            ("1", OverviewScreen),
            ("3", TuningScreen),
            ("4", ModelsScreen),
            ("5", EventsScreen),
            ("2", WorkflowsScreen),
        ]:
            await pilot.press(key)
            assert isinstance(app.screen, screen), key
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        shown = text_of(app.screen.query_one("#keys", Static))
        for key in KEYS:
            assert key.description in shown
        await pilot.press("escape")
        assert isinstance(app.screen, WorkflowsScreen)

        # The command palette offers the same actions.
        await pilot.press("ctrl+p")
        await pilot.press(*"Tuning")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, TuningScreen), "the tuning screen")

        # The overview shows this process as the leading instance and the local services.
        await pilot.press("1")
        overview = await until(pilot, lambda: app.state.overview, "the overview")
        assert overview.mode == "local" and overview.instances[0].leader
        table = app.screen.query_one("#instances", DataTable)
        await until(pilot, lambda: table.row_count == 1, "the instance row")

    drive(backend_of(workbench), scenario)


def test_a_submitted_workflow_runs_and_its_dag_shows_every_task(
    workbench: Workbench, tmp_path: Path
) -> None:
    spec = write_workflow(
        tmp_path / "flow.json",
        "ui_flow",
        ui_task("load", value=1.0),
        ui_task("train", ["load"], sleep_s=0.5),
        ui_task("score", ["train"]),
    )

    async def scenario(app: WorkbenchApp, pilot: Pilot[None]) -> None:
        await submit(app, pilot, spec)
        await until(pilot, lambda: isinstance(app.screen, WorkflowsScreen), "the dialog closing")
        execution = await until(
            pilot,
            lambda: next(
                (e for e in app.state.executions.values() if e.workflow_id == "ui_flow"), None
            ),
            "the execution",
        )
        run_id = execution.execution_id
        await until(
            pilot,
            lambda: app.state.executions[run_id].status is WorkflowStatus.SUCCEEDED,
            "success",
        )
        await pilot.pause(0.2)
        table = app.screen.query_one(LiveTable)
        assert "succeeded" in cell_text(table, run_id, "status")
        assert cell_text(table, run_id, "tasks") == "3/3"

        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, ExecutionScreen), "the DAG")
        dag = app.screen.query_one(LiveTable)
        await until(pilot, lambda: "└─" in cell_text(dag, "score", "task"), "the graph's depths")
        assert dag.row_count == 3
        for task_id in ("load", "train", "score"):
            assert "succeeded" in cell_text(dag, task_id, "state")
        assert "← train" in cell_text(dag, "score", "task")
        assert "total=3" in cell_text(dag, "score", "metrics")

        await pilot.press("escape", "5")
        log = app.screen.query_one(EventLog)
        await until(
            pilot,
            lambda: any("workflow.finished" in line for line in log.shown()),
            "the finish in the event stream",
        )

    drive(backend_of(workbench), scenario)


def test_a_bad_file_is_refused_in_the_dialog_and_nothing_is_submitted(
    workbench: Workbench, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("workflow_id: w\ntasks:\n  - task_id: a\n    task_type: no_such_type\n")

    async def scenario(app: WorkbenchApp, pilot: Pilot[None]) -> None:
        before = {e.execution_id for e in workbench.orchestrator.list_executions()}
        for path, expected in [
            (tmp_path / "missing.yaml", "missing.yaml"),
            (broken, "no_such_type"),
        ]:
            await submit(app, pilot, path)
            shown = app.screen.query_one("#problem", Static)
            await until(pilot, lambda e=expected, w=shown: e in text_of(w), f"error on {path}")
            assert isinstance(app.screen, SubmitDialog)  # left open to fix the path
            await pilot.press("escape")
        assert {e.execution_id for e in workbench.orchestrator.list_executions()} == before

    drive(backend_of(workbench), scenario)


def test_cancel_asks_first_then_stops_the_run(workbench: Workbench, tmp_path: Path) -> None:
    spec = write_workflow(tmp_path / "slow.json", "ui_slow", ui_task("crawl", sleep_s=60))

    async def scenario(app: WorkbenchApp, pilot: Pilot[None]) -> None:
        run_id = workbench.submit_blocking(spec)
        await until(
            pilot,
            lambda: (
                app.state.executions.get(run_id)
                and app.state.executions[run_id].tasks["crawl"].state is TaskState.RUNNING
            ),
            "the task running",
        )
        table = app.screen.query_one(LiveTable)
        table.move_cursor(row=table.get_row_index(run_id))
        await pilot.press("c")
        await until(pilot, lambda: isinstance(app.screen, ConfirmDialog), "the confirmation")
        await pilot.press("escape")  # no: nothing happens
        await pilot.pause(0.5)
        assert workbench.execution(run_id).status is WorkflowStatus.RUNNING

        await pilot.press("c")
        await until(pilot, lambda: isinstance(app.screen, ConfirmDialog), "the confirmation")
        await pilot.press("y")
        await until(
            pilot,
            lambda: app.state.executions[run_id].status is WorkflowStatus.CANCELLED,
            "the cancellation",
            timeout=30,
        )
        assert workbench.execution(run_id).status is WorkflowStatus.CANCELLED

    drive(backend_of(workbench), scenario)


def test_rerun_takes_what_succeeded_from_the_cache_and_runs_the_failed_part_again(
    workbench: Workbench, tmp_path: Path
) -> None:
    marker = tmp_path / "broken"
    marker.touch()
    spec = write_workflow(
        tmp_path / "flaky.json",
        "ui_flaky",
        ui_task("prepare", value=2.0),
        ui_task("fit", ["prepare"], broken_while=str(marker)),
    )

    async def scenario(app: WorkbenchApp, pilot: Pilot[None]) -> None:
        first = workbench.submit_blocking(spec)
        await until(
            pilot,
            lambda: (
                app.state.executions.get(first)
                and app.state.executions[first].status is WorkflowStatus.FAILED
            ),
            "the failure",
        )
        table = app.screen.query_one(LiveTable)
        table.move_cursor(row=table.get_row_index(first))
        await pilot.press("enter")  # the DAG of the failed run shows the error and traceback
        await until(pilot, lambda: isinstance(app.screen, ExecutionScreen), "the DAG")
        dag = app.screen.query_one(LiveTable)
        dag.move_cursor(row=dag.get_row_index("fit"))
        detail = app.screen.query_one("#task-text", Static)
        await until(pilot, lambda: "is broken while" in text_of(detail), "the error")
        assert "Traceback" in text_of(detail)

        marker.unlink()  # the cause is fixed
        await pilot.press("r")
        second = await until(
            pilot,
            lambda: next(
                (
                    e.execution_id
                    for e in app.state.executions.values()
                    if e.workflow_id == "ui_flaky" and e.execution_id != first
                ),
                None,
            ),
            "the new execution",
        )
        await until(
            pilot,
            lambda: app.state.executions[second].status is WorkflowStatus.SUCCEEDED,
            "the re-run succeeding",
        )
        tasks = workbench.execution(second).tasks
        assert tasks["prepare"].state is TaskState.CACHED
        assert tasks["fit"].state is TaskState.SUCCEEDED

    drive(backend_of(workbench), scenario)


def test_promote_and_rollback_ask_first_and_move_the_registry(workbench: Workbench) -> None:
    with workbench.models() as registry:
        for accuracy in (0.8, 0.9):
            model = DummyClassifier().fit([[0], [1]], [0, 1])
            registry.register("tui_model", model, metrics={"accuracy": accuracy})
        registry.promote("tui_model", 1)

    def stages() -> dict[int, str]:
        with workbench.models() as registry:
            versions = registry.store.list_versions("tui_model")
        return {v.version: v.stage.value for v in versions}

    async def scenario(app: WorkbenchApp, pilot: Pilot[None]) -> None:
        await pilot.press("4")
        screen = app.screen
        assert isinstance(screen, ModelsScreen)
        names = screen.query_one("#names", DataTable)
        await until(pilot, lambda: "tui_model" in screen.entries, "the model")
        names.move_cursor(row=names.get_row_index("tui_model"))
        await until(pilot, lambda: screen.chosen == "tui_model", "the model chosen")
        versions = screen.query_one("#versions", DataTable)
        versions.move_cursor(row=versions.get_row_index("2"))
        await until(pilot, lambda: screen.version == 2, "version 2 chosen")

        await pilot.press("p")
        await until(pilot, lambda: isinstance(app.screen, ConfirmDialog), "the confirmation")
        await pilot.press("escape")
        assert stages() == {1: "production", 2: "none"}

        await pilot.press("p")
        await until(pilot, lambda: isinstance(app.screen, ConfirmDialog), "the confirmation")
        await pilot.press("y")
        await until(pilot, lambda: stages() == {1: "archived", 2: "production"}, "promotion")
        await until(
            pilot,
            lambda: "production" in cell_text(versions, "2", "stage"),
            "the screen showing v2 in production",
        )
        await until(
            pilot,
            lambda: any(e.type.value == "model.transition" for e in app.state.events),
            "the transition in the event stream",
        )

        await pilot.press("b")
        await until(pilot, lambda: isinstance(app.screen, ConfirmDialog), "the confirmation")
        await pilot.press("y")
        await until(pilot, lambda: stages()[1] == "production", "the rollback")

    drive(backend_of(workbench), scenario)
