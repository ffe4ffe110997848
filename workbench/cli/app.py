"""The `workbench` command."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from workbench.cli.cache_commands import cache_app
from workbench.cli.cluster_commands import cluster_app, orchestrator
from workbench.cli.devcluster_commands import devcluster_app
from workbench.cli.events_commands import events_app
from workbench.cli.hpo_commands import hpo
from workbench.cli.models_commands import models_app, serve
from workbench.cli.output import err, fail, out
from workbench.errors import WorkbenchError

app = typer.Typer(
    name="workbench",
    help="Declare ML workflows in YAML or JSON and run them on Dask.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
datasets_app = typer.Typer(help="Create example datasets.", no_args_is_help=True)
app.add_typer(datasets_app, name="datasets")
app.add_typer(cache_app, name="cache")
app.add_typer(cluster_app, name="cluster")
app.add_typer(events_app, name="events")
app.add_typer(models_app, name="models")
app.add_typer(devcluster_app, name="dev-cluster")
app.command("orchestrator")(orchestrator)
app.command("hpo")(hpo)
app.command("serve")(serve)


EXIT_OK, EXIT_FAILED, EXIT_INVALID, EXIT_INTERRUPTED = 0, 1, 2, 130


@app.command()
def run(
    file: Annotated[Path, typer.Argument(help="A workflow spec (.yaml, .yml or .json).")],
    workers: Annotated[int | None, typer.Option(help="Local Dask workers.", min=1)] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object instead of the live display.")
    ] = False,
    refresh: Annotated[
        bool, typer.Option("--refresh", help="Recompute every task and overwrite its cache entry.")
    ] = False,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Neither read nor write the cache.")
    ] = False,
    profile: Annotated[
        str | None,
        typer.Option("--profile", "-p", help="Submit to a cluster: a profile name or path."),
    ] = None,
) -> None:
    """Run a workflow on a local Dask cluster with a live display, then print a summary.

    With --profile the workflow goes to that cluster's orchestrator instances instead, and the
    command waits for it to finish there.

    Results are reused from the cache when every input of a task is unchanged; see
    `workbench cache explain FILE` for why a task would or would not be reused."""
    from workbench.cli.display import LiveDisplay, render_summary
    from workbench.client.workbench import Workbench
    from workbench.dag.states import WorkflowStatus
    from workbench.tasks.checks import load_workflow

    if refresh and no_cache:
        err.print("error: --refresh and --no-cache exclude each other; give one", style="red")
        raise typer.Exit(EXIT_INVALID)
    mode = "refresh" if refresh else "off" if no_cache else "use"
    try:
        checked = load_workflow(file)
        workbench = Workbench.connect(profile) if profile else Workbench.local(workers=workers)
    except WorkbenchError as exc:
        raise fail(exc) from None
    try:
        if workbench.orchestrator.cluster is not None:
            execution = _run_on_cluster(workbench, checked, mode, quiet=as_json)
        elif as_json:
            execution = workbench.run(checked, cache=mode)
        else:
            display = LiveDisplay(err if not out.is_terminal else out)
            with display:
                execution = workbench.run(checked, on_event=display.on_event, cache=mode)
        for notice in workbench.notices():
            err.print(f"note: {notice}", style="yellow", highlight=False, markup=False)
    except KeyboardInterrupt:
        err.print("interrupted: cancelling the workflow and stopping the cluster…", style="yellow")
        workbench.close()
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except WorkbenchError as exc:
        workbench.close()
        raise fail(exc) from None
    workbench.close()
    if as_json:
        sys.stdout.write(json.dumps(execution.to_summary(), default=str) + "\n")
    else:
        render_summary(out, execution)
    raise typer.Exit(EXIT_OK if execution.status is WorkflowStatus.SUCCEEDED else EXIT_FAILED)


def _run_on_cluster(workbench: Any, checked: Any, mode: str, *, quiet: bool) -> Any:
    """Submit, then follow it live (Kafka events, or the state store where there is no
    Kafka) until it ends."""
    import logging

    from workbench.cli.display import LiveDisplay

    execution_id = workbench.submit_blocking(checked, cache=mode)
    if quiet:
        return workbench.wait_blocking(execution_id)
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # its retries would flood the view
    display = LiveDisplay(err if not out.is_terminal else out)
    display.waiting = f"submitted {execution_id}; waiting for an instance to take it…"
    with display:
        watcher = workbench.watch_in_thread(
            lambda update: display.on_view(update.execution), execution_id
        )
        try:
            return workbench.wait_blocking(execution_id)
        finally:
            watcher.stop()


@app.command()
def validate(
    file: Annotated[Path, typer.Argument(help="A workflow spec (.yaml, .yml or .json).")],
) -> None:
    """Check a workflow spec (structure, graph, parameters, data files) without running it."""
    from workbench.tasks.checks import load_workflow

    try:
        checked = load_workflow(file)
    except WorkbenchError as exc:
        raise fail(exc) from None
    spec = checked.spec
    out.print(
        f"[green]ok[/] {file}: workflow {spec.workflow_id!r}, {len(spec.tasks)} tasks "
        f"in order {' → '.join(checked.order)}",
        highlight=False,
    )


@app.command()
def schema(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to a file instead of stdout.")
    ] = None,
) -> None:
    """Print the JSON Schema of workflow specs (for editor completion and checking)."""
    from workbench.tasks.schema import full_json_schema

    text = json.dumps(full_json_schema(), indent=2)
    if output is None:
        sys.stdout.write(text + "\n")
    else:
        output.write_text(text + "\n", encoding="utf-8")
        err.print(f"wrote {output}")


@app.command()
def tasks() -> None:
    """List the task types this installation knows."""
    from rich.table import Table

    from workbench.tasks.registry import REGISTRY

    table = Table("task type", "status", "description")
    for definition in REGISTRY.definitions():
        status = "available" if definition.available else "not yet available"
        first_line = (definition.unavailable_reason or definition.description).splitlines()
        table.add_row(definition.name, status, first_line[0] if first_line else "")
    out.print(table)


@app.command()
def tui(
    profile: Annotated[
        str | None,
        typer.Option("--profile", "-p", help="Watch a cluster: a profile name or path."),
    ] = None,
) -> None:
    """The operators' terminal UI: instances, workers, workflows and their DAGs, tuning studies,
    models and the live event stream, with actions (submit, cancel, re-run, promote, roll back).

    Without --profile it starts a local workbench (no servers): submit a file from examples/ with
    `s` and watch it run."""
    try:
        from tui.app import run as run_tui
    except ImportError as exc:  # the package is there, one of its dependencies is not
        err.print(f"error: the terminal UI cannot start: {exc}; reinstall workbench", style="red")
        raise typer.Exit(EXIT_INVALID) from None
    try:
        run_tui(profile)
    except WorkbenchError as exc:
        raise fail(exc) from None


@datasets_app.command("fraud")
def make_fraud(
    path: Annotated[Path, typer.Argument(help="Where to write the CSV.")],
    rows: Annotated[int, typer.Option(min=100, help="Number of transactions.")] = 20_000,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same file).")] = 0,
) -> None:
    """Write the synthetic fraud-transactions dataset as CSV (used by the examples)."""
    from workbench.tasks.datasets import write_fraud_csv

    path.parent.mkdir(parents=True, exist_ok=True)
    write_fraud_csv(path, n_rows=rows, seed=seed)
    out.print(f"wrote {rows} transactions to {path}")


def main() -> None:
    app()
