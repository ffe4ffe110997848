"""The README's screenshots of `workbench tui`, taken from a real local run.

    python docs/screenshots/capture.py

Starts a local workbench (a Dask cluster in this process) whose cache, registry and task files
are in a temporary folder (the user's, and examples/.workbench, are untouched), runs real work:
a small hyperparameter search, then, while the UI watches, the model lifecycle (register, gate,
promote, deploy) and the fraud workflow; then saves one SVG per screen next to this file.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
HERE = Path(__file__).resolve().parent
SIZE = (150, 42)
TRIALS = 6


async def until(pilot: Any, ready: Callable[[], object], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise TimeoutError(f"the UI did not show {what} in {timeout:g} s")
        await pilot.pause(0.1)
    await pilot.pause(0.3)


async def capture(backend: Any) -> None:
    from textual.widgets import DataTable

    from tui.app import WorkbenchApp
    from tui.widgets import LiveTable

    app = WorkbenchApp(backend, mode="overview")
    async with app.run_test(size=SIZE) as pilot:

        def save(name: str) -> None:
            app.save_screenshot(filename=f"{name}.svg", path=str(HERE))
            print(f"wrote {HERE / name}.svg")

        def rows(selector: str) -> int:
            table = app.screen.query_one(selector)
            assert isinstance(table, DataTable | LiveTable)
            return table.row_count

        # Run while the app watches, so that their events are on the event screen.
        for workflow in ("fraud_lifecycle.yaml", "fraud_detection.yaml"):
            await asyncio.to_thread(backend.workbench.run, EXAMPLES / workflow)

        await until(pilot, lambda: app.state.overview and app.state.overview.workers, "workers")
        save("overview")

        await pilot.press("2")
        await until(pilot, lambda: rows("#executions") > 1, "the executions")
        save("workflows")

        await pilot.press("enter")  # the newest execution: the fraud workflow
        await until(pilot, lambda: getattr(app.screen, "graph", None), "the graph")
        await pilot.press("down", "down")  # train, with its metrics below
        await pilot.pause(0.3)
        save("execution")

        await pilot.press("3")
        await until(pilot, lambda: rows("#trials") >= TRIALS, "the trials")
        save("tuning")

        await pilot.press("4")
        await until(pilot, lambda: rows("#versions") >= 2, "the model versions")
        save("models")

        await pilot.press("5")
        await pilot.pause(0.5)
        save("events")

        await pilot.press("question_mark")
        await pilot.pause(0.3)
        save("help")


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="workbench-screenshots-") as private:
        os.environ["WORKBENCH_CACHE_DIR"] = f"{private}/cache"
        os.environ["WORKBENCH_CACHE_KEY_FILE"] = f"{private}/cache.key"
        os.environ["WORKBENCH_ARTIFACT_ROOT"] = f"{private}/artifacts"  # task files, models
        os.environ.pop("WORKBENCH_REDIS_URL", None)

        import optuna

        from tui.backend import Backend
        from workbench.hpo.optimizer import load_request
        from workbench.tasks.datasets import write_fraud_csv

        data = EXAMPLES / "data" / "transactions.csv"
        if not data.exists():
            data.parent.mkdir(parents=True, exist_ok=True)
            write_fraud_csv(data, n_rows=20_000, seed=0)
        optuna.logging.set_verbosity(optuna.logging.WARNING)

        backend = Backend.open()
        try:
            request = load_request(EXAMPLES / "hpo_config.json")
            config = request.hyperparameter_config.model_copy(update={"max_trials": TRIALS})
            backend.workbench.optimize(request.model_copy(update={"hyperparameter_config": config}))
            backend.workbench.run(EXAMPLES / "fraud_lifecycle.yaml")  # v1; the UI's run is v2
            asyncio.run(capture(backend))
        finally:
            backend.close()


if __name__ == "__main__":  # Dask starts worker processes that import this file
    main()
