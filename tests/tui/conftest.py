"""The terminal UI's tests: a real local workbench (a Dask LocalCluster of one worker process)
shared by the module, and a way to drive the app with Textual's Pilot."""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from textual.pilot import Pilot
from textual.widgets import Static

from tui.app import WorkbenchApp
from tui.backend import Backend, prepare_processes
from workbench.client.workbench import Workbench

Scenario = Callable[[WorkbenchApp, Pilot[None]], Awaitable[None]]


@pytest.fixture(scope="module")
def workbench() -> Iterator[Workbench]:
    prepare_processes()
    with Workbench.local(workers=1, threads_per_worker=2) as wb:
        yield wb


def drive(backend: Backend, scenario: Scenario, size: tuple[int, int] = (150, 45)) -> None:
    async def main() -> None:
        app = WorkbenchApp(backend)
        async with app.run_test(size=size) as pilot:
            await scenario(app, pilot)

    try:
        asyncio.run(main())
    finally:
        backend.stop_watch()


async def until(
    pilot: Pilot[None], check: Callable[[], Any], what: str, timeout: float = 60
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await pilot.pause(0.1)


def text_of(widget: Static) -> str:
    """What a Static shows, as plain text (its content may be a Rich table or group)."""
    console = Console(width=200, file=io.StringIO(), record=True)
    console.print(widget.content)
    return console.export_text()


def ui_task(task_id: str, deps: list[str] | None = None, **params: Any) -> dict[str, Any]:
    return {
        "task_id": task_id,
        "task_type": "ui_probe",
        "dependencies": deps or [],
        "parameters": params,
    }


def write_workflow(path: Path, workflow_id: str, *tasks: dict[str, Any]) -> Path:
    spec = {"workflow_id": workflow_id, "imports": ["tests.tui.flaky_tasks"], "tasks": list(tasks)}
    path.write_text(json.dumps(spec), encoding="utf-8")
    return path
