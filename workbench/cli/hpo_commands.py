"""`workbench hpo FILE`: a hyperparameter search with a live trial table."""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from workbench.cli.output import err, fail, out
from workbench.errors import WorkbenchError


def hpo(
    file: Annotated[
        Path, typer.Argument(help="A request: workflow_spec (or its file) + hyperparameter_config.")
    ],
    workers: Annotated[int | None, typer.Option(help="Local Dask workers.", min=1)] = None,
    profile: Annotated[
        str | None,
        typer.Option("--profile", "-p", help="Run the study on a cluster: a profile name or path."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Search hyperparameters: every trial a run of the workflow on Dask, with a live table of
    the trials and the best value so far; ends with the best parameters and their importance.

    With --profile the study runs on the cluster's instances (and survives the death of the one
    running it); the table follows the study in the cluster's Redis."""
    from workbench.client.workbench import Workbench
    from workbench.hpo.optimizer import load_request, new_study_name

    try:
        request = load_request(file)
        workbench = Workbench.connect(profile) if profile else Workbench.local(workers=workers)
    except WorkbenchError as exc:
        raise fail(exc) from None
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the table shows the trials
    name = new_study_name(request)
    board = TrialBoard(request.hyperparameter_config.direction)
    follow: Any
    if profile:
        follow = StudyFollower(board, workbench.orchestrator.settings, name)
    else:
        follow = workbench.orchestrator.bus.subscribe(board.on_event)
    try:
        if as_json:
            result = workbench.optimize(request, importances=True, study_name=name)
        else:
            with Live(
                console=err, refresh_per_second=4, get_renderable=board.render, transient=True
            ):
                result = workbench.optimize(request, importances=True, study_name=name)
    except WorkbenchError as exc:
        raise fail(exc) from None
    except KeyboardInterrupt:
        err.print("interrupted", style="yellow")
        raise typer.Exit(130) from None
    finally:
        follow.close()
        workbench.close()
    if as_json:
        sys.stdout.write(json.dumps(result.to_json(), default=str) + "\n")
        return
    board.load(result.trials)
    out.print(board.table(limit=None))
    if result.best_value is None:
        err.print("no trial completed", style="bold red")
        raise typer.Exit(1)
    out.print(f"[bold green]best {result.best_value:.6g}[/] with {_params(result.best_params)}")
    if result.importances:
        shares = "  ".join(f"{k} {v:.0%}" for k, v in result.importances.items())
        out.print(f"parameter importance: {shares}")
    out.print(f"study {result.study_name}", style="dim")


class TrialBoard:
    """The trials as their events arrive (from the orchestrator's thread)."""

    def __init__(self, direction: str) -> None:
        self.direction = direction
        self._rows: dict[int, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def on_event(self, event: Any) -> None:
        if not event.type.value.startswith("trial."):
            return
        with self._lock:
            self._rows.setdefault(event.data["trial"], {}).update(event.data)

    def load(self, trials: list[Any]) -> None:
        """Every trial as the study records it (Trial rows of the optimizer)."""
        with self._lock:
            self._rows = {t.number: dict(t.__dict__) for t in trials}

    def best(self) -> float | None:
        values = [
            r["value"]
            for r in self._rows.values()
            if r.get("value") is not None and r.get("state") == "complete"
        ]
        if not values:
            return None
        return max(values) if self.direction == "maximize" else min(values)

    def table(self, limit: int | None = 20) -> Table:
        table = Table("trial", "parameters", "value", "state", "time", expand=True)
        with self._lock:
            rows = sorted(self._rows.items())
        best = self.best()
        for number, row in rows[-limit:] if limit else rows:
            value = row.get("value")
            style = "bold green" if value is not None and value == best else ""
            table.add_row(
                str(number),
                _params(row.get("params", {})),
                "" if value is None else f"{value:.6g}",
                row.get("state") or "running",
                "" if row.get("duration_s") is None else f"{row['duration_s']:.1f}s",
                style=style,
            )
        return table

    def render(self) -> RenderableType:
        best = self.best()
        with self._lock:
            done = sum(1 for r in self._rows.values() if r.get("state"))
        head = Text(f"{done} trials done", style="bold")
        if best is not None:
            head.append(f"   best so far {best:.6g}", style="green")
        return Group(head, self.table())


class StudyFollower:
    """Keeps the board up to date from the study's storage (in the cluster's Redis): the
    trials run on other instances, whose events this process does not see."""

    def __init__(self, board: TrialBoard, settings: Any, study_name: str) -> None:
        self._board = board
        self._settings = settings
        self._name = study_name
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="study-follower", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        from workbench.hpo.optimizer import all_trials, trial_row
        from workbench.hpo.storage import study_storage

        while not self._stop.wait(0.5):
            try:
                trials = all_trials(study_storage(self._settings, self._name), self._name)
            except Exception:  # not created yet, or Redis briefly away: look again
                continue
            self._board.load([trial_row(t) for t in trials])

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)


def _params(params: dict[str, Any]) -> str:
    return ", ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items()
    )
