"""This instance's part in a cluster: heartbeats, leader election, and, while it leads,
assignment of executions to instances.

Leadership is a lease. The leader renews it every `renew_interval_ms`; a leader that has not
renewed for `renew_deadline_ms` (shorter than the lease) steps down by itself, and it checks
that deadline before every leader action, so even a process paused past its lease does not act
as leader when it wakes up. Every assignment also carries the fencing token, which the store
checks atomically: whatever the clocks say, a stale leader's write is refused.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
import time
from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import Any

from workbench.config import Settings
from workbench.coordination.base import (
    InstanceInfo,
    LeaderElection,
    Refusal,
    StateStore,
    StoredExecution,
)
from workbench.dag.states import WorkflowStatus
from workbench.events.models import SCHEMA_VERSION, SEQ_EPOCH_SHIFT, Event, EventType
from workbench.execution.base import WorkerInfo

log = logging.getLogger(__name__)


class OutageLog:
    """Warns when a loop's round first fails and says when it works again; in between at most
    every `every_s`, not on every round (a loop polling every 50 ms through a Redis outage
    would write thousands of lines)."""

    def __init__(self, what: str, every_s: float = 10.0) -> None:
        self.what = what
        self.every_s = every_s
        self.failing_since: float | None = None
        self._last = 0.0

    def failed(self, exc: BaseException) -> None:
        now = time.monotonic()
        if self.failing_since is None:
            self.failing_since = self._last = now
            log.warning("%s failed: %s", self.what, exc)
        elif now - self._last >= self.every_s:
            self._last = now
            log.warning(
                "%s still failing after %.0fs: %s", self.what, now - self.failing_since, exc
            )

    def ok(self) -> None:
        if self.failing_since is not None:
            log.warning(
                "%s works again after %.1fs", self.what, time.monotonic() - self.failing_since
            )
            self.failing_since = None


# How often a leader compares the Dask workers with the last look.
WORKERS_EVERY_S = 1.0


class Role(StrEnum):
    FOLLOWER = "follower"
    LEADER = "leader"


class ClusterMember:
    def __init__(
        self,
        instance_id: str,
        settings: Settings,
        store: StateStore,
        election: LeaderElection,
        load: Callable[[], int],
        *,
        clock: Callable[[], float] = time.monotonic,
        emit: Callable[[Event], None] | None = None,
        workers: Callable[[], Awaitable[list[WorkerInfo]]] | None = None,
    ) -> None:
        self.instance_id = instance_id
        self.settings = settings
        self.store = store
        self.election = election
        self._load = load
        self._clock = clock
        self.token: int | None = None
        self._renewed_at = 0.0  # when the last successful renewal (or acquisition) began
        self.started_at = time.time()
        self._tasks: list[asyncio.Task[None]] = []
        self._emit = emit
        self._workers = workers
        self._known_workers: dict[str, WorkerInfo] | None = None
        self._workers_checked = 0.0

    def _cluster_event(
        self, kind: EventType, *, execution_id: str = "", seq: int = 0, **data: Any
    ) -> None:
        if self._emit is None:
            return
        self._emit(
            Event.model_construct(
                schema_version=SCHEMA_VERSION,
                type=kind,
                execution_id=execution_id,
                workflow_id=str(data.pop("workflow_id", self.settings.namespace)),
                task_id=None,
                status=None,
                progress=None,
                message=None,
                metrics={},
                data=data,
                instance_id=self.instance_id,
                seq=seq,
                timestamp=time.time(),
            )
        )

    @property
    def role(self) -> Role:
        return Role.LEADER if self.leading else Role.FOLLOWER

    @property
    def leading(self) -> bool:
        """Leader now: holds a token and renewed recently enough that the lease is surely
        still its own (the deadline is shorter than the lease)."""
        if self.token is None:
            return False
        if self._clock() - self._renewed_at > self.settings.renew_deadline_ms / 1000:
            self._step_down("it could not renew its lease in time")
            return False
        return True

    # -- lifecycle -----------------------------------------------------------------------------
    async def start(self) -> None:
        await self.heartbeat()  # visible to the leader before the first assignment round
        self._cluster_event(EventType.INSTANCE_JOINED, capacity=self.settings.capacity)
        self._tasks = [
            asyncio.create_task(self._heartbeat_loop(), name=f"{self.instance_id}-heartbeat"),
            asyncio.create_task(self._lead_loop(), name=f"{self.instance_id}-lead"),
        ]

    async def stop(self, *, leave: bool = True) -> None:
        """Stop the loops; with `leave`, give leadership up at once and deregister, so the
        others take over without waiting for a lease or a heartbeat to expire."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if leave:
            token, self.token = self.token, None
            try:
                if token is not None:
                    await asyncio.to_thread(self.election.release, token)
                await asyncio.to_thread(self.store.remove_instance, self.instance_id)
            except Exception as exc:  # the lease and heartbeat will expire anyway
                log.warning("%s could not leave the cluster cleanly: %s", self.instance_id, exc)
            self._cluster_event(EventType.INSTANCE_LEFT)

    # -- heartbeats ----------------------------------------------------------------------------
    def info(self) -> InstanceInfo:
        return InstanceInfo(
            instance_id=self.instance_id,
            capacity=self.settings.capacity,
            load=self._load(),
            heartbeat_at=time.time(),
            started_at=self.started_at,
            host=socket.gethostname(),
            pid=os.getpid(),
            degraded=bool(getattr(self.store, "degraded", False)),
        )

    async def heartbeat(self) -> None:
        await asyncio.to_thread(
            self.store.heartbeat, self.info(), self.settings.heartbeat_ttl_ms / 1000
        )

    async def _heartbeat_loop(self) -> None:
        outage = OutageLog(f"{self.instance_id}'s heartbeat")
        while True:
            await asyncio.sleep(self.settings.heartbeat_interval_ms / 1000)
            try:
                await self.heartbeat()
            except Exception as exc:
                outage.failed(exc)
            else:
                outage.ok()

    # -- leadership ----------------------------------------------------------------------------
    async def _lead_loop(self) -> None:
        poll = self.settings.poll_interval_ms / 1000
        outage = OutageLog(f"{self.instance_id}'s leadership round")
        while True:
            try:
                await self._lead_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis away: a leader steps down at its renew deadline
                outage.failed(exc)
                _ = self.leading  # the deadline check, which steps down when it is past
            else:
                outage.ok()
            await asyncio.sleep(poll)

    async def _lead_once(self) -> None:
        if self.token is None:
            started = self._clock()
            token = await asyncio.to_thread(self.election.try_acquire)
            if token is not None:
                self.token, self._renewed_at = token, started
                log.info("%s leads the cluster (fencing token %d)", self.instance_id, token)
                self._cluster_event(EventType.LEADER_ELECTED, token=token, seq=token)
        elif self._clock() - self._renewed_at >= self.settings.renew_interval_ms / 1000:
            started = self._clock()
            if await asyncio.to_thread(self.election.renew, self.token):
                self._renewed_at = started
            else:
                self._step_down("another instance holds the lease")
        if self.leading:
            await self.assign_round()
            await self._watch_workers()

    def _step_down(self, why: str) -> None:
        if self.token is not None:
            log.warning("%s steps down as leader: %s", self.instance_id, why)
        self.token = None

    async def _watch_workers(self) -> None:
        """The leader tells the event stream when Dask workers come and go (once a second)."""
        if self._workers is None or self._clock() - self._workers_checked < WORKERS_EVERY_S:
            return
        self._workers_checked = self._clock()
        now = {w.address: w for w in await self._workers()}
        before, self._known_workers = self._known_workers, now
        if before is None:
            return  # the first look of this leadership: nothing to compare with
        for address in now.keys() - before.keys():
            worker = now[address]
            self._cluster_event(
                EventType.WORKER_JOINED,
                address=address,
                name=worker.name,
                resources=worker.resources,
            )
        for address in before.keys() - now.keys():
            self._cluster_event(EventType.WORKER_LEFT, address=address, name=before[address].name)

    # -- assignment ----------------------------------------------------------------------------
    async def assign_round(self) -> int:
        """Give pending executions, and those of instances that died, to the live instances
        with the most free capacity. Returns how many were assigned."""
        live = {i.instance_id: i for i in await asyncio.to_thread(self.store.instances)}
        if not live:
            return 0
        unfinished: list[StoredExecution] = []
        for status in (WorkflowStatus.PENDING, WorkflowStatus.RUNNING):
            unfinished += await asyncio.to_thread(self.store.list_executions, status=status)
        free = {iid: info.capacity for iid, info in live.items()}
        waiting: list[StoredExecution] = []
        for execution in unfinished:
            if execution.owner in free:
                free[execution.owner] -= execution.capacity_used
            else:  # no owner yet, or an owner whose heartbeat expired
                waiting.append(execution)
        waiting.sort(key=lambda e: e.submitted_at)
        assigned = 0
        for execution in waiting:
            most = max(free.values())
            if most <= 0 and execution.capacity_used:
                continue  # every live instance is full: it waits for capacity
            # Ties go to a random one of them, so light load spreads over every instance.
            target = random.choice([iid for iid, n in free.items() if n == most])
            if not self.leading:
                return assigned
            assert self.token is not None
            result = await asyncio.to_thread(
                self.store.assign,
                execution.execution_id,
                target,
                leader=self.instance_id,
                token=self.token,
            )
            if result.refusal is Refusal.STALE_TOKEN:
                self._step_down("the store refused its fencing token")
                return assigned
            if result.ok:
                free[target] -= execution.capacity_used
                assigned += 1
                epoch = result.epoch or 0
                self._cluster_event(
                    EventType.WORKFLOW_ASSIGNED,
                    execution_id=execution.execution_id,
                    workflow_id=execution.workflow_id,
                    seq=epoch << SEQ_EPOCH_SHIFT,  # first of its epoch: the owner's come after
                    owner=target,
                    epoch=epoch,
                    previous_owner=execution.owner,
                )
                previous = f" (from {execution.owner}, gone)" if execution.owner else ""
                log.info(
                    "%s assigned %s to %s at epoch %s%s",
                    self.instance_id,
                    execution.execution_id,
                    target,
                    result.epoch,
                    previous,
                )
        return assigned
