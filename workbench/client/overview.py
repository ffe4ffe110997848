"""What an operator sees first: the orchestrator instances, the Dask workers grouped by
capability shard, and the health of the services behind them (Redis, Kafka, the scheduler).

One shape for local and cluster mode, read by `workbench cluster status` and the terminal UI.
Every probe has a short timeout and reports a failure as a state, never as an exception: an
overview is most needed when something is down.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from workbench.config import Settings
    from workbench.orchestrator.orchestrator import DistributedOrchestrator

PROBE_TIMEOUT_S = 2.0


class ServiceState(StrEnum):
    OK = "ok"
    DOWN = "down"
    NOT_CONFIGURED = "not configured"  # the profile names none: a local run needs none
    NOT_STARTED = "not started"  # local Dask: it starts with the first task that needs it


@dataclass(frozen=True)
class ServiceHealth:
    name: str  # redis | kafka | scheduler
    state: ServiceState
    detail: str = ""


@dataclass(frozen=True)
class InstanceRow:
    instance_id: str
    leader: bool
    token: int | None  # the leader's fencing token
    heartbeat_age_s: float
    capacity: int
    load: int
    host: str = ""
    pid: int = 0
    degraded: bool = False


@dataclass(frozen=True)
class WorkerRow:
    name: str
    address: str
    threads: int
    resources: dict[str, float] = field(default_factory=dict)
    cpu_percent: float | None = None
    memory_bytes: int | None = None
    memory_limit: int | None = None
    running: int = 0  # tasks executing now
    processing: int = 0  # tasks assigned to it (running or waiting for a thread)

    @property
    def shard(self) -> str:
        """Its capability shard: the resources it offers, or `cpu` when it offers none."""
        if not self.resources:
            return "cpu"
        return ",".join(f"{k}={v:g}" for k, v in sorted(self.resources.items()))


@dataclass(frozen=True)
class ExecutionRow:
    execution_id: str
    owner: str | None
    status: str
    epoch: int


@dataclass(frozen=True)
class Overview:
    mode: str  # local | cluster
    namespace: str
    instances: list[InstanceRow]
    workers: list[WorkerRow]
    services: list[ServiceHealth]
    executions: list[ExecutionRow] = field(default_factory=list)
    taken_at: float = field(default_factory=time.time)

    @property
    def leader(self) -> InstanceRow | None:
        return next((i for i in self.instances if i.leader), None)

    def shards(self) -> dict[str, list[WorkerRow]]:
        grouped: dict[str, list[WorkerRow]] = {}
        for worker in sorted(self.workers, key=lambda w: (w.shard != "cpu", w.shard, w.name)):
            grouped.setdefault(worker.shard, []).append(worker)
        return grouped

    def service(self, name: str) -> ServiceHealth:
        return next(s for s in self.services if s.name == name)

    def to_json(self) -> dict[str, Any]:
        leader = self.leader
        return {
            "mode": self.mode,
            "namespace": self.namespace,
            "leader": {"instance_id": leader.instance_id, "token": leader.token}
            if leader
            else None,
            "instances": [vars(i) for i in self.instances],
            "workers": [{**vars(w), "shard": w.shard} for w in self.workers],
            "services": [
                {"name": s.name, "state": s.state.value, "detail": s.detail} for s in self.services
            ],
            "executions": [vars(e) for e in self.executions],
            "taken_at": self.taken_at,
        }


# -- cluster mode ---------------------------------------------------------------------------------


def cluster_overview(settings: Settings) -> Overview:
    """Instances, leader and executions from Redis; workers from the scheduler; blocking."""
    instances: list[InstanceRow] = []
    executions: list[ExecutionRow] = []
    redis_health = _cluster_records(settings, instances, executions)
    workers, scheduler_health = scheduler_workers(settings.scheduler_address, settings)
    return Overview(
        mode="cluster",
        namespace=settings.namespace,
        instances=instances,
        workers=workers,
        services=[redis_health, kafka_health(settings), scheduler_health],
        executions=executions,
    )


def _cluster_records(
    settings: Settings, instances: list[InstanceRow], executions: list[ExecutionRow]
) -> ServiceHealth:
    from workbench.coordination.election import RedisLeaderElection
    from workbench.errors import WorkbenchError
    from workbench.orchestrator.instance import connect_store

    try:
        client, store = connect_store(settings)
    except WorkbenchError as exc:
        return ServiceHealth("redis", ServiceState.DOWN, str(exc))
    try:
        holder = RedisLeaderElection(client, "status", namespace=settings.namespace).holder()
        now = time.time()
        for info in sorted(store.instances(), key=lambda i: i.instance_id):
            leads = holder is not None and holder[0] == info.instance_id
            instances.append(
                InstanceRow(
                    instance_id=info.instance_id,
                    leader=leads,
                    token=holder[1] if leads and holder else None,
                    heartbeat_age_s=max(0.0, now - info.heartbeat_at),
                    capacity=info.capacity,
                    load=info.load,
                    host=info.host,
                    pid=info.pid,
                    degraded=info.degraded,
                )
            )
        for e in sorted(store.list_executions(), key=lambda e: (e.owner or "", e.submitted_at)):
            executions.append(ExecutionRow(e.execution_id, e.owner, e.status.value, e.epoch))
    except Exception as exc:  # lost between the ping and the reads
        return ServiceHealth("redis", ServiceState.DOWN, f"{type(exc).__name__}: {exc}")
    finally:
        client.close()
    from workbench.cache.redis_backend import mask_url

    return ServiceHealth("redis", ServiceState.OK, mask_url(settings.redis_url or ""))


def scheduler_workers(
    address: str | None, settings: Settings | None = None
) -> tuple[list[WorkerRow], ServiceHealth]:
    """The scheduler's workers; `settings` bring the TLS certificates for a tls:// address."""
    if address is None:
        return [], ServiceHealth(
            "scheduler",
            ServiceState.NOT_CONFIGURED,
            "no scheduler_address in the profile: each instance runs a local cluster",
        )
    from distributed import Client

    from workbench.config import Settings
    from workbench.security import DaskTlsError, client_security

    try:
        # model_construct: a bare address must not fail the TLS checks of the profile's fields
        security = client_security(settings or Settings.model_construct(), address)
    except DaskTlsError as exc:
        return [], ServiceHealth("scheduler", ServiceState.DOWN, str(exc))
    try:
        with Client(
            address, timeout=PROBE_TIMEOUT_S, set_as_default=False, security=security
        ) as client:
            info = client.scheduler_info(n_workers=-1)
            processing = client.processing()
    except (OSError, TimeoutError) as exc:
        return [], ServiceHealth("scheduler", ServiceState.DOWN, f"cannot reach {address}: {exc}")
    return worker_rows(info, processing), ServiceHealth("scheduler", ServiceState.OK, address)


def worker_rows(info: Mapping[str, Any], processing: Mapping[str, Any]) -> list[WorkerRow]:
    """Rows from the scheduler's identity (`scheduler_info`) and its `processing` map."""
    rows = []
    for address, worker in info.get("workers", {}).items():
        metrics = worker.get("metrics") or {}
        rows.append(
            WorkerRow(
                name=str(worker.get("name", address)),
                address=address,
                threads=int(worker.get("nthreads", 1)),
                resources=dict(worker.get("resources") or {}),
                cpu_percent=metrics.get("cpu"),
                memory_bytes=metrics.get("memory"),
                memory_limit=worker.get("memory_limit") or None,
                running=int(metrics.get("executing", 0)),
                processing=len(processing.get(address, ())),
            )
        )
    return sorted(rows, key=lambda w: w.name)


def kafka_health(settings: Settings) -> ServiceHealth:
    """Whether a bootstrap server accepts connections (the watchers say whether events flow)."""
    servers = settings.kafka_bootstrap_servers
    if not servers:
        return ServiceHealth(
            "kafka", ServiceState.NOT_CONFIGURED, "no kafka_bootstrap_servers: no live feed"
        )
    problems = []
    for server in servers.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            with socket.create_connection((host or "localhost", int(port)), PROBE_TIMEOUT_S):
                return ServiceHealth("kafka", ServiceState.OK, server.strip())
        except (OSError, ValueError) as exc:
            problems.append(f"{server.strip()}: {exc}")
    return ServiceHealth("kafka", ServiceState.DOWN, "; ".join(problems))


# -- local mode ------------------------------------------------------------------------------------


async def local_overview(orchestrator: DistributedOrchestrator) -> Overview:
    """This process as the one instance, and its local Dask cluster once it has started."""
    settings = orchestrator.settings
    executions = orchestrator.list_executions()
    running = sum(1 for e in executions if not e.status.terminal)
    instance = InstanceRow(
        instance_id=orchestrator.instance_id,
        leader=True,
        token=None,
        heartbeat_age_s=0.0,
        capacity=settings.capacity,
        load=running,
        host=socket.gethostname(),
        pid=os.getpid(),
    )
    executor = orchestrator.executor
    workers: list[WorkerRow] = []
    if not getattr(executor, "started", False):
        scheduler = ServiceHealth(
            "scheduler", ServiceState.NOT_STARTED, "starts with the first task that needs it"
        )
    else:
        try:
            client = executor.client
            info, processing = await asyncio.wait_for(
                asyncio.gather(
                    client.scheduler.identity(n_workers=-1), client.scheduler.processing()
                ),
                PROBE_TIMEOUT_S,
            )
            workers = worker_rows(info, processing)
            scheduler = ServiceHealth("scheduler", ServiceState.OK, str(executor.scheduler_address))
        except (OSError, TimeoutError) as exc:
            scheduler = ServiceHealth("scheduler", ServiceState.DOWN, str(exc))
    redis = ServiceHealth("redis", ServiceState.NOT_CONFIGURED, "local mode: no server needed")
    return Overview(
        mode="local",
        namespace=settings.namespace,
        instances=[instance],
        workers=workers,
        services=[redis, kafka_health(settings), scheduler],
        executions=[
            ExecutionRow(e.execution_id, orchestrator.instance_id, e.status.value, 0)
            for e in executions
        ],
    )
