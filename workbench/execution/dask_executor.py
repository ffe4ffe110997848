"""The Dask implementation of the executor seam."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import traceback
from collections.abc import Sequence
from typing import Any

from workbench.config import Settings
from workbench.execution.base import WorkerEventHandler, WorkerInfo
from workbench.execution.invocation import TASK_EVENTS_TOPIC, TaskInvocation, pack
from workbench.execution.stops import stop_running
from workbench.execution.worker import dump_results, load_result, run_packed_task
from workbench.security import client_security

log = logging.getLogger(__name__)

# Messages the client may queue for the scheduler before submission waits (see drain).
MAX_QUEUED_MESSAGES = 400
# Dask runs higher priorities first among queued tasks.
CHECKPOINT_PRIORITY = 1_000_000


def _result_report(result: Any) -> dict[str, Any]:
    """Runs on a worker: the small part of a TaskResult, when its report was lost."""
    return {"metrics": result.metrics, "artifacts": result.artifacts, "summary": result.summary}


class DaskExecutor:
    """Submits tasks to a Dask cluster: a given scheduler, or a LocalCluster it starts and owns."""

    def __init__(self, settings: Settings | None = None, *, cluster: Any = None) -> None:
        self.settings = settings or Settings()
        self._cluster = cluster  # an already started cluster (tests, notebooks); not owned
        self._owned_cluster: Any = None
        self.client: Any = None
        self._handlers: list[WorkerEventHandler] = []
        self._start_lock: asyncio.Lock | None = None

    @property
    def started(self) -> bool:
        return self.client is not None

    @property
    def scheduler_address(self) -> str | None:
        return None if self.client is None else self.client.scheduler.address

    async def start(self) -> None:
        if self._start_lock is None:
            self._start_lock = asyncio.Lock()
        async with self._start_lock:  # runs start the cluster lazily, possibly several at once
            if self.client is None:
                await self._start()

    async def _start(self) -> None:
        from distributed import Client

        target = self._cluster or self.settings.scheduler_address
        security = None
        if isinstance(target, str):  # a cluster object brings its own security
            security = client_security(self.settings, target)
        if target is None:
            target = self._owned_cluster = await self._start_local_cluster()
        try:
            self.client = await Client(
                target,
                asynchronous=True,
                set_as_default=False,
                timeout=self.settings.connect_timeout_s,
                security=security,
            )
        except OSError as exc:
            await self._close_owned_cluster()
            tls = (
                " With TLS, dask_tls_cert must be signed by a CA the scheduler trusts and "
                "dask_tls_ca_file must be the CA that signed the scheduler's certificate."
                if security is not None
                else ""
            )
            raise ConnectionError(
                f"cannot reach the Dask scheduler at {target}: {str(exc).rstrip('.')}.{tls} "
                "Start one with `dask scheduler`, or fix scheduler_address (WORKBENCH_SCHEDULER_"
                "ADDRESS or the profile; without one, Workbench runs a local cluster)"
            ) from exc
        self.client.subscribe_topic(TASK_EVENTS_TOPIC, self._dispatch)
        self.bulk(False)

    async def _start_local_cluster(self) -> Any:
        from distributed import LocalCluster

        workers = self.settings.workers or max(1, os.cpu_count() or 1)
        return await LocalCluster(
            n_workers=workers,
            threads_per_worker=self.settings.threads_per_worker,
            memory_limit=self.settings.worker_memory_limit,
            processes=True,
            dashboard_address=":0",  # a free port: never collide with another cluster
            asynchronous=True,
        )

    def on_worker_event(self, handler: WorkerEventHandler) -> None:
        self._handlers.append(handler)

    def _dispatch(self, event: tuple[float, dict[str, Any]]) -> None:
        _, message = event
        for handler in self._handlers:
            try:
                handler(message)
            except Exception:
                log.exception("worker event handler failed on %r", message)

    async def workers(self) -> list[WorkerInfo]:
        info = await self.client.scheduler.identity()
        return [
            WorkerInfo(
                address=address,
                name=str(worker.get("name", address)),
                resources=dict(worker.get("resources") or {}),
                memory_limit=worker.get("memory_limit") or None,
                threads=int(worker.get("nthreads", 1)),
            )
            for address, worker in info.get("workers", {}).items()
        ]

    def submit(self, invocation: TaskInvocation, upstream: Sequence[Any]) -> Any:
        return self.client.submit(
            run_packed_task,
            pack(invocation),
            *upstream,
            key=invocation.dask_key,
            resources=invocation.resources.dask_resources() or None,
            pure=False,
        )

    async def fetch_report(self, handle: Any) -> dict[str, Any]:
        report: dict[str, Any] = await self.client.submit(_result_report, handle, pure=False)
        return report

    async def failure(self, handle: Any) -> tuple[str, str]:
        exc = await handle.exception()
        tb = await handle.traceback()
        text = "".join(traceback.format_exception(type(exc), exc, tb))
        return f"{type(exc).__name__}: {exc}", text

    def bulk(self, streaming: bool) -> None:
        """The client's messages to the scheduler leave in batches at most every 10 ms
        (distributed's fixed interval): right while a big graph streams out, but a short
        workflow submitted just after another's results were released waited out most of it
        before its first task left. Outside bulk submissions: every 2 ms, as the scheduler
        batches its own stream to clients."""
        stream = getattr(self.client, "scheduler_comm", None)
        if stream is not None and isinstance(getattr(stream, "interval", None), float):
            stream.interval = BULK_BATCH_INTERVAL_S if streaming else CLIENT_BATCH_INTERVAL_S

    async def drain(self, max_queued: int = MAX_QUEUED_MESSAGES) -> None:
        """Backpressure: wait while too many messages queue for the scheduler, so a big graph
        never sits whole in this process's memory when the scheduler reads slower than we
        submit. Uses the client's batched stream; where a Dask version lacks it, no wait."""
        queued = getattr(getattr(self.client, "scheduler_comm", None), "buffer", None)
        if not isinstance(queued, list):
            return
        while len(queued) > max_queued:
            await asyncio.sleep(0.005)
            queued = getattr(self.client.scheduler_comm, "buffer", [])

    async def seed(self, invocation: TaskInvocation, payload: bytes | memoryview) -> Any:
        # Scattered straight to a worker: the bytes never pass through the scheduler.
        [data] = await self.client.scatter([bytes(payload)], hash=False)
        return self.client.submit(load_result, data, key=invocation.dask_key, pure=False)

    async def fetch_payloads(self, handles: Sequence[Any]) -> list[bytes]:
        # One pickling task per worker that holds some of the results, so a batch of small
        # results costs a message or two, not one each. Dask places each where its inputs
        # are, unless that worker is busy (say, with a long task body): then a free worker
        # fetches them, rather than the run's end waiting behind someone else's task.
        holders = await self.client.who_has(list(handles))
        groups: dict[str | None, list[int]] = {}
        for index, handle in enumerate(handles):
            where = holders.get(handle.key) or [None]
            groups.setdefault(where[0], []).append(index)
        jobs = [
            # Ahead of queued task bodies: a checkpoint is what a failover resumes from.
            self.client.submit(
                dump_results,
                *(handles[i] for i in indexes),
                pure=False,
                priority=CHECKPOINT_PRIORITY,
            )
            for indexes in groups.values()
        ]
        payloads: list[bytes] = [b""] * len(handles)
        for indexes, batch in zip(groups.values(), await self.client.gather(jobs), strict=True):
            for index, payload in zip(indexes, batch, strict=True):
                payloads[index] = payload
        return payloads

    async def cancel(self, handles: Sequence[Any]) -> None:
        if handles:
            await self.client.cancel(list(handles), force=True)
            await self.stop(handles, "its run was cancelled")

    async def stop(self, handles: Sequence[Any], reason: str, worker: str | None = None) -> None:
        if handles:
            await self.client.run(
                stop_running,
                [h.key for h in handles],
                reason,
                workers=None if worker is None else [worker],
                on_error="ignore",
            )

    async def close(self) -> None:
        if self.client is not None:
            client, self.client = self.client, None
            with contextlib.suppress(KeyError, ValueError):
                client.unsubscribe_topic(TASK_EVENTS_TOPIC)
            await client.close()
        await self._close_owned_cluster()

    async def _close_owned_cluster(self) -> None:
        if self._owned_cluster is not None:
            cluster, self._owned_cluster = self._owned_cluster, None
            await cluster.close()


BULK_BATCH_INTERVAL_S = 0.01
CLIENT_BATCH_INTERVAL_S = 0.002
