"""`workbench orchestrator` (run one cluster instance) and `workbench cluster status`."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from workbench.cli.output import err, fail, out
from workbench.errors import ProfileError, WorkbenchError

if TYPE_CHECKING:
    from workbench.client.overview import Overview

cluster_app = typer.Typer(help="Look at a cluster of orchestrator instances.", no_args_is_help=True)

ProfileOption = Annotated[
    str,
    typer.Option("--profile", "-p", help="A cluster profile: a name under clusters/ or a path."),
]


def _cluster_settings(profile: str) -> Any:
    from workbench.config import load_profile

    settings = load_profile(profile)
    if not settings.cluster_mode:
        raise ProfileError(
            f"profile {profile!r} names no redis_url: cluster mode needs Redis (set redis_url in "
            "the profile or WORKBENCH_REDIS_URL)"
        )
    return settings


def orchestrator(
    profile: ProfileOption,
    instance_id: Annotated[
        str | None, typer.Option(help="This instance's id; default: host name and process id.")
    ] = None,
    capacity: Annotated[
        int | None, typer.Option(min=1, help="Executions it runs at once (default: profile's).")
    ] = None,
) -> None:
    """Run one orchestrator instance of a cluster until SIGTERM or Ctrl-C, then hand its work
    back to the others at once (graceful hand-over)."""
    from workbench.orchestrator.orchestrator import DistributedOrchestrator

    try:
        settings = _cluster_settings(profile)
        if capacity is not None:
            settings = settings.model_copy(update={"capacity": capacity})
    except WorkbenchError as exc:
        raise fail(exc) from None
    name = instance_id or f"{socket.gethostname()}-{os.getpid()}"
    logging.basicConfig(
        level=logging.INFO,
        format=f"%(asctime)s {name} %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("distributed").setLevel(logging.WARNING)
    # aiokafka logs every reconnect attempt; the publisher says once when Kafka goes and comes.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        orchestrator = DistributedOrchestrator(name, settings=settings)
        try:
            await orchestrator.start()
            err.print(
                f"instance {name} joined the cluster (capacity {settings.capacity}; "
                f"scheduler {orchestrator.executor.scheduler_address})",
                highlight=False,
            )
            await stop.wait()
            err.print(f"instance {name} is leaving: handing its work back", highlight=False)
        finally:
            await orchestrator.close()

    try:
        asyncio.run(serve())
    except WorkbenchError as exc:
        raise fail(exc) from None


@cluster_app.command()
def status(
    profile: ProfileOption,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Instances (the leader marked, with its fencing token), Dask workers by capability shard,
    executions, and the health of Redis, Kafka and the scheduler."""
    from workbench.client.overview import cluster_overview

    try:
        report = cluster_overview(_cluster_settings(profile))
    except WorkbenchError as exc:
        raise fail(exc) from None
    if as_json:
        sys.stdout.write(json.dumps(report.to_json(), default=str) + "\n")
        return
    print_overview(report)


def print_overview(report: Overview) -> None:
    """The overview as tables: instances, workers by shard, executions, services down."""
    from workbench.client.overview import ServiceState

    instances = Table(
        "instance", "role", "state", "heartbeat age", "capacity", "load", "host", "pid"
    )
    for item in report.instances:
        instances.add_row(
            item.instance_id,
            f"leader (token {item.token})" if item.leader else "member",
            "degraded" if item.degraded else "ok",
            f"{item.heartbeat_age_s:.1f}s",
            str(item.capacity),
            str(item.load),
            item.host,
            str(item.pid),
        )
    out.print(instances)
    workers = Table("shard", "worker", "address", "threads", "running")
    for shard, rows in report.shards().items():
        for worker in rows:
            workers.add_row(
                shard, worker.name, worker.address, str(worker.threads), str(worker.running)
            )
    out.print(workers)
    executions = Table("owner", "execution", "status", "epoch")
    for row in report.executions:
        executions.add_row(row.owner or "-", row.execution_id, row.status, str(row.epoch))
    out.print(executions)
    for service in report.services:
        if service.state is ServiceState.DOWN:
            err.print(f"{service.name}: {service.detail}", style="yellow", highlight=False)
