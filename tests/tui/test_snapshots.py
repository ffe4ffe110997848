"""Snapshots of every screen of the terminal UI over the recorded backend (fixed data, fixed
clock times in UTC). After a deliberate change of the UI, look at the new pictures and accept
them with `pytest tests/tui/test_snapshots.py --snapshot-update`."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, Protocol

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable

from tests.tui.recorded import RecordedBackend, executions
from tui.app import WorkbenchApp
from tui.screens.dialogs import ConfirmDialog, HelpScreen, SubmitDialog
from tui.screens.execution import ExecutionScreen
from tui.screens.models import ModelsScreen
from tui.screens.tuning import TuningScreen
from tui.widgets import LiveTable

SIZE = (140, 40)
DEADLINE_S = 10.0


class SnapCompare(Protocol):
    def __call__(
        self,
        app: WorkbenchApp,
        press: list[str] = ...,
        terminal_size: tuple[int, int] = ...,
        run_before: Callable[[Pilot[Any]], Awaitable[None]] | None = ...,
    ) -> bool: ...


@pytest.fixture(autouse=True)
def _utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Clock times (events, model versions) print in UTC whatever the machine's zone."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


async def until(pilot: Pilot[Any], ready: Callable[[], bool], what: str) -> None:
    """Let the app work (its thread workers, its redraws) until `ready()`, then settle."""
    deadline = time.monotonic() + DEADLINE_S
    while not ready():
        if time.monotonic() > deadline:
            raise AssertionError(f"the app never showed {what}")
        await pilot.pause(0.05)
    await pilot.pause()


def loaded(pilot: Pilot[Any]) -> bool:
    """The watch has delivered every execution and the overview has been read."""
    app: WorkbenchApp = pilot.app  # type: ignore[assignment]
    return len(app.state.executions) == len(executions()) and app.state.overview is not None


async def live(pilot: Pilot[Any]) -> None:
    await until(pilot, lambda: loaded(pilot), "the executions and the overview")


def app_in(mode: str) -> WorkbenchApp:
    return WorkbenchApp(RecordedBackend(), mode=mode)  # type: ignore[arg-type]


def test_overview(snap_compare: SnapCompare) -> None:
    assert snap_compare(app_in("overview"), terminal_size=SIZE, run_before=live)


def test_workflows(snap_compare: SnapCompare) -> None:
    async def rows_shown(pilot: Pilot[Any]) -> None:
        await live(pilot)
        table = pilot.app.screen.query_one("#executions", LiveTable)
        await until(pilot, lambda: table.row_count == 3, "three rows")

    assert snap_compare(app_in("workflows"), terminal_size=SIZE, run_before=rows_shown)


def test_execution_failed_task(snap_compare: SnapCompare) -> None:
    """The newest execution (the failed one) opened, the cursor on its failed task."""

    async def open_failed_task(pilot: Pilot[Any]) -> None:
        await live(pilot)
        await pilot.press("enter")
        screen = pilot.app.screen
        assert isinstance(screen, ExecutionScreen)
        assert screen.execution_id == "exec-9f8e7d"
        await until(pilot, lambda: bool(screen.graph), "the graph")
        await pilot.press("down", "down")  # prepare, features, train
        await pilot.pause()

    assert snap_compare(app_in("workflows"), terminal_size=SIZE, run_before=open_failed_task)


async def studies_shown(pilot: Pilot[Any]) -> None:
    await live(pilot)
    screen = pilot.app.screen
    assert isinstance(screen, TuningScreen)
    await until(pilot, lambda: screen.query_one("#trials", DataTable).row_count > 0, "trials")


def test_tuning(snap_compare: SnapCompare) -> None:
    assert snap_compare(app_in("tuning"), terminal_size=SIZE, run_before=studies_shown)


async def models_shown(pilot: Pilot[Any]) -> None:
    await live(pilot)
    screen = pilot.app.screen
    assert isinstance(screen, ModelsScreen)
    await until(pilot, lambda: screen.query_one("#versions", DataTable).row_count > 0, "versions")


def test_models(snap_compare: SnapCompare) -> None:
    assert snap_compare(app_in("models"), terminal_size=SIZE, run_before=models_shown)


def test_promote_confirmation(snap_compare: SnapCompare) -> None:
    async def asked(pilot: Pilot[Any]) -> None:
        await models_shown(pilot)
        await pilot.press("p")
        await until(pilot, lambda: isinstance(pilot.app.screen, ConfirmDialog), "the dialog")

    assert snap_compare(app_in("models"), terminal_size=SIZE, run_before=asked)


def test_events(snap_compare: SnapCompare) -> None:
    assert snap_compare(app_in("events"), terminal_size=SIZE, run_before=live)


def test_help(snap_compare: SnapCompare) -> None:
    async def helped(pilot: Pilot[Any]) -> None:
        await live(pilot)
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(pilot.app.screen, HelpScreen), "the help")

    assert snap_compare(app_in("workflows"), terminal_size=SIZE, run_before=helped)


def test_submit_dialog(snap_compare: SnapCompare) -> None:
    async def opened(pilot: Pilot[Any]) -> None:
        await live(pilot)
        await pilot.press("s")
        await until(pilot, lambda: isinstance(pilot.app.screen, SubmitDialog), "the dialog")

    assert snap_compare(app_in("workflows"), terminal_size=SIZE, run_before=opened)
