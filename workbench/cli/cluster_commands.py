"""`workbench orchestrator` (run one cluster instance) and `workbench cluster status`."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import sys
import time
from typing import Annotated, Any

import typer
from rich.table import Table

from workbench.cli.output import err, fail, out
from workbench.errors import ProfileError, WorkbenchError

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
    """Instances (the leader marked, with its fencing token), Dask workers, executions."""
    try:
        report = _status(_cluster_settings(profile))
    except WorkbenchError as exc:
        raise fail(exc) from None
    if as_json:
        sys.stdout.write(json.dumps(report, default=str) + "\n")
        return
    instances = Table(
        "instance", "role", "state", "heartbeat age", "capacity", "load", "host", "pid"
    )
    for item in report["instances"]:
        role = f"leader (token {report['leader']['token']})" if item["leader"] else "member"
        instances.add_row(
            item["instance_id"],
            role,
            "degraded" if item["degraded"] else "ok",
            f"{item['heartbeat_age_s']:.1f}s",
            str(item["capacity"]),
            str(item["load"]),
            item["host"],
            str(item["pid"]),
        )
    out.print(instances)
    workers = Table("worker", "address", "threads", "resources")
    for worker in report["workers"]:
        resources = ", ".join(f"{k}={v:g}" for k, v in worker["resources"].items())
        workers.add_row(worker["name"], worker["address"], str(worker["threads"]), resources)
    out.print(workers)
    executions = Table("owner", "execution", "status", "epoch")
    for item in report["executions"]:
        executions.add_row(
            item["owner"] or "-", item["execution_id"], item["status"], str(item["epoch"])
        )
    out.print(executions)
    if report["workers_error"]:
        err.print(f"Dask scheduler: {report['workers_error']}", style="yellow", highlight=False)


def _status(settings: Any) -> dict[str, Any]:
    from workbench.coordination.election import RedisLeaderElection
    from workbench.orchestrator.instance import connect_store

    client, store = connect_store(settings)
    try:
        holder = RedisLeaderElection(client, "status", namespace=settings.namespace).holder()
        now = time.time()
        instances = [
            {
                "instance_id": info.instance_id,
                "leader": holder is not None and holder[0] == info.instance_id,
                "heartbeat_age_s": max(0.0, now - info.heartbeat_at),
                "capacity": info.capacity,
                "load": info.load,
                "host": info.host,
                "pid": info.pid,
                "degraded": info.degraded,
            }
            for info in sorted(store.instances(), key=lambda i: i.instance_id)
        ]
        executions = [
            {
                "execution_id": e.execution_id,
                "owner": e.owner,
                "status": e.status.value,
                "epoch": e.epoch,
            }
            for e in sorted(store.list_executions(), key=lambda e: (e.owner or "", e.submitted_at))
        ]
    finally:
        client.close()
    workers, workers_error = _dask_workers(settings.scheduler_address)
    return {
        "leader": {"instance_id": holder[0], "token": holder[1]} if holder else None,
        "instances": instances,
        "workers": workers,
        "workers_error": workers_error,
        "executions": executions,
    }


def _dask_workers(address: str | None) -> tuple[list[dict[str, Any]], str | None]:
    if address is None:
        return [], "no scheduler_address in the profile (each instance runs a local cluster)"
    from distributed import Client

    try:
        with Client(address, timeout=3, set_as_default=False) as client:
            info = client.scheduler_info()
    except (OSError, TimeoutError) as exc:
        return [], f"cannot reach {address}: {exc}"
    return [
        {
            "address": addr,
            "name": str(w.get("name", addr)),
            "threads": int(w.get("nthreads", 1)),
            "resources": dict(w.get("resources") or {}),
        }
        for addr, w in info.get("workers", {}).items()
    ], None
