"""`workbench dev-cluster up | down | status`: a real cluster on this machine (see
workbench.devcluster for how it is started, found again and stopped)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from workbench.cli.output import err, fail, out
from workbench.devcluster import DEFAULT_FOLDER, DEFAULT_STATE, DevCluster, ProcessState
from workbench.errors import WorkbenchError

devcluster_app = typer.Typer(
    help="A real cluster on this machine: Redis, Kafka, a Dask scheduler with workers and "
    "orchestrator instances, each its own process.",
    no_args_is_help=True,
)

StateOption = Annotated[
    Path, typer.Option("--state", help="The state file `up` wrote (next to its profile).")
]
EXIT_INVALID, EXIT_INTERRUPTED = 2, 130


@devcluster_app.command()
def up(
    workers: Annotated[int, typer.Option(min=0, help="CPU workers (one thread each).")] = 2,
    instances: Annotated[int, typer.Option(min=1, help="Orchestrator instances.")] = 2,
    simulate_gpu: Annotated[
        bool,
        typer.Option(
            "--simulate-gpu",
            help="Add a CPU worker tagged GPU=1, named simulated-gpu-0 (GPU placement "
            "without a GPU).",
        ),
    ] = False,
    profile_out: Annotated[
        Path,
        typer.Option(help="Where to write the profile; the state file and logs go next to it."),
    ] = DEFAULT_FOLDER / "profile.yaml",
    redis: Annotated[
        str | None,
        typer.Option("--redis", help="Use this running Redis (a URL) instead of starting one."),
    ] = None,
    kafka: Annotated[
        str | None,
        typer.Option("--kafka", help="Use this Kafka (HOST:PORT) instead of starting a broker."),
    ] = None,
    no_kafka: Annotated[
        bool, typer.Option("--no-kafka", help="No Kafka: clients follow runs from Redis.")
    ] = False,
    timeout: Annotated[
        float, typer.Option(min=1, help="Seconds to wait for everything to be healthy.")
    ] = 60.0,
) -> None:
    """Start the cluster, detached, and wait until it is healthy; print its profile.

    Workers tagged GPU=1 are added, one per GPU that `nvidia-smi -L` lists."""
    if kafka and no_kafka:
        err.print("error: --kafka and --no-kafka exclude each other; give one", style="red")
        raise typer.Exit(EXIT_INVALID)
    try:
        with err.status("starting the dev cluster…"):
            cluster = DevCluster.up(
                workers=workers,
                instances=instances,
                simulate_gpu=simulate_gpu,
                profile_path=profile_out,
                redis_url=redis,
                kafka=False if no_kafka else kafka or True,
                timeout_s=timeout,
            )
    except KeyboardInterrupt:
        err.print("interrupted: whatever had started was stopped", style="yellow")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except WorkbenchError as exc:
        raise fail(exc) from None
    _print_processes(cluster)
    profile, state = escape(str(cluster.profile_path)), escape(str(cluster.state_path))
    lines = [
        f"[green]dev cluster up[/]: profile {profile}",
        f"  run a workflow:  workbench run examples/fraud_detection.yaml --profile {profile}",
        f"  look at it:      workbench dev-cluster status --state {state}",
        f"  stop it:         workbench dev-cluster down --state {state}",
    ]
    if cluster.state.dashboard:
        lines.append(f"  Dask dashboard:  {cluster.state.dashboard}")
    out.print("\n".join(lines), highlight=False, soft_wrap=True)


@devcluster_app.command()
def down(
    state: StateOption = DEFAULT_STATE,
    grace: Annotated[
        float, typer.Option(min=0, help="Seconds between SIGTERM and SIGKILL.")
    ] = 10.0,
) -> None:
    """Stop exactly what `up` started (instances first) and remove its state file."""
    try:
        cluster = DevCluster.find(state)
        if cluster is None:
            out.print(f"no dev cluster is recorded at {state}: nothing to stop", soft_wrap=True)
            return
        stopped = cluster.down(grace_s=grace)
    except WorkbenchError as exc:
        raise fail(exc) from None
    if stopped:
        names = ", ".join(f"{p.role.value} {p.name} (pid {p.pid})" for p in stopped)
        out.print(f"stopped {len(stopped)} processes: {names}", highlight=False, soft_wrap=True)
    else:
        out.print("nothing was running any more; removed the state file", highlight=False)
    for service in cluster.state.external:
        out.print(f"left alone: {service} (named at `up`, not started by it)", highlight=False)


@devcluster_app.command()
def status(
    state: StateOption = DEFAULT_STATE,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Which of its processes run, then the cluster as `workbench cluster status` shows it."""
    from workbench.cli.cluster_commands import print_overview

    try:
        cluster = DevCluster.attach(state)
        processes = cluster.processes()
        running = any(p.state is ProcessState.RUNNING for p in processes)
        if as_json:
            report = {
                "state_file": str(cluster.state_path),
                "profile": str(cluster.profile_path),
                "processes": [p.to_json() for p in processes],
                "overview": cluster.overview().to_json() if running else None,
            }
            sys.stdout.write(json.dumps(report, default=str) + "\n")
            return
    except WorkbenchError as exc:
        raise fail(exc) from None
    _print_processes(cluster)
    if not running:
        out.print(
            f"none of its processes runs; clean up with: workbench dev-cluster down "
            f"--state {cluster.state_path}",
            highlight=False,
            soft_wrap=True,
        )
        return
    try:
        overview = cluster.overview()
    except WorkbenchError as exc:
        raise fail(exc) from None
    print_overview(overview)


def _print_processes(cluster: DevCluster) -> None:
    table = Table("role", "name", "pid", "port", "state", "log", title="dev cluster processes")
    logs = {Path(p.log).parent for p in cluster.state.processes}
    for item in cluster.processes():
        record = item.record
        style = "green" if item.state is ProcessState.RUNNING else "red"
        table.add_row(
            record.role.value,
            record.name,
            str(record.pid),
            str(record.port or "-"),
            f"[{style}]{item.state.value}[/]",
            Path(record.log).name,
        )
    out.print(table)
    for folder in sorted(logs):
        out.print(f"logs in {folder}", highlight=False, soft_wrap=True)
