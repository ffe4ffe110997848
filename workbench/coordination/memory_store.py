"""The state store and leader election in one process's memory: tests, and a single instance.

Same semantics as the Redis versions (one contract suite proves both). One lock per object
makes every guarded write atomic; time comes from an injectable monotonic clock, so tests
expire leases and heartbeats by moving the clock instead of sleeping. Values are copied in
and out through JSON, as Redis would store them: a caller never shares a dict with the store.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from workbench.coordination.base import (
    InstanceInfo,
    JobKind,
    Refusal,
    StoredExecution,
    WriteResult,
)
from workbench.coordination.election import DEFAULT_LEASE_MS
from workbench.coordination.keys import check_instance_id
from workbench.dag.states import WorkflowStatus

Clock = Callable[[], float]
OK = WriteResult(ok=True)


def _plain(value: Any) -> Any:
    """A JSON round trip: the caller's objects never alias the store's, and what Redis could
    not store fails here too."""
    return json.loads(json.dumps(value))


def _refused(why: Refusal) -> WriteResult:
    return WriteResult(ok=False, refusal=why)


class MemoryLease:
    """The one leader lease of an in-memory cluster: share it between the store (which checks
    fencing tokens) and every instance's `MemoryLeaderElection`."""

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._holder: tuple[str, int] | None = None
        self._expires_at = 0.0
        self._last_token = 0

    def _current(self) -> tuple[str, int] | None:
        # call with the lock held; an expired lease is no lease, as a Redis key with PX
        if self._holder is not None and self.clock() >= self._expires_at:
            self._holder = None
        return self._holder

    def acquire(self, instance_id: str, lease_ms: int) -> int | None:
        with self._lock:
            if self._current() is not None:
                return None
            self._last_token += 1
            self._holder = (instance_id, self._last_token)
            self._expires_at = self.clock() + lease_ms / 1000
            return self._last_token

    def renew(self, instance_id: str, token: int, lease_ms: int) -> bool:
        with self._lock:
            if self._current() != (instance_id, token):
                return False
            self._expires_at = self.clock() + lease_ms / 1000
            return True

    def release(self, instance_id: str, token: int) -> bool:
        with self._lock:
            if self._current() != (instance_id, token):
                return False
            self._holder = None
            return True

    def holder(self) -> tuple[str, int] | None:
        with self._lock:
            return self._current()

    def holds(self, instance_id: str, token: int) -> bool:
        return self.holder() == (instance_id, token)


class MemoryLeaderElection:
    """`LeaderElection` on a shared `MemoryLease`."""

    def __init__(
        self, lease: MemoryLease, instance_id: str, *, lease_ms: int = DEFAULT_LEASE_MS
    ) -> None:
        if lease_ms <= 0:
            raise ValueError(f"lease_ms must be positive, got {lease_ms}")
        self.instance_id = check_instance_id(instance_id)
        self.lease_ms = lease_ms
        self.lease = lease

    def try_acquire(self) -> int | None:
        return self.lease.acquire(self.instance_id, self.lease_ms)

    def renew(self, token: int) -> bool:
        return self.lease.renew(self.instance_id, token, self.lease_ms)

    def release(self, token: int) -> bool:
        return self.lease.release(self.instance_id, token)

    def holder(self) -> tuple[str, int] | None:
        return self.lease.holder()


class MemoryStateStore:
    """`StateStore` in memory. `lease` is the lease `assign` checks tokens against (a new one on
    `clock` by default; hand the same one to the `MemoryLeaderElection`s)."""

    def __init__(self, *, clock: Clock = time.monotonic, lease: MemoryLease | None = None) -> None:
        self.clock = clock
        self.lease = lease if lease is not None else MemoryLease(clock)
        self._lock = threading.Lock()
        self._executions: dict[str, StoredExecution] = {}
        self._instances: dict[str, tuple[InstanceInfo, float]] = {}  # info, expires at

    # -- executions ----------------------------------------------------------------------------
    def create_execution(self, execution: StoredExecution) -> None:
        stored = _copy(execution)
        stored.status, stored.owner = WorkflowStatus.PENDING, None
        with self._lock:
            if execution.execution_id in self._executions:
                raise ValueError(f"execution {execution.execution_id!r} already exists")
            self._executions[execution.execution_id] = stored

    def get_execution(self, execution_id: str) -> StoredExecution | None:
        with self._lock:
            found = self._executions.get(execution_id)
            return None if found is None else _copy(found)

    def list_executions(
        self, *, owner: str | None = None, status: WorkflowStatus | None = None
    ) -> list[StoredExecution]:
        with self._lock:
            chosen = [
                _copy(e)
                for e in self._executions.values()
                if (owner is None or e.owner == owner) and (status is None or e.status == status)
            ]
        return sorted(chosen, key=_submit_order)

    def pending(self) -> list[str]:
        with self._lock:
            waiting = [e for e in self._executions.values() if _is_pending(e)]
        return [e.execution_id for e in sorted(waiting, key=_submit_order)]

    # -- leader-only ---------------------------------------------------------------------------
    def assign(
        self, execution_id: str, instance_id: str, *, leader: str, token: int
    ) -> WriteResult:
        with self._lock:  # the lease is checked under the store's lock: check and write as one
            if not self.lease.holds(leader, token):
                return _refused(Refusal.STALE_TOKEN)
            execution = self._executions.get(execution_id)
            if execution is None:
                return _refused(Refusal.UNKNOWN)
            if execution.status.terminal:
                return _refused(Refusal.FINISHED)
            execution.owner = instance_id
            execution.epoch += 1
            return WriteResult(ok=True, epoch=execution.epoch)

    # -- owner-only ----------------------------------------------------------------------------
    def commit_task(
        self, execution_id: str, owner: str, epoch: int, task_id: str, record: Mapping[str, Any]
    ) -> WriteResult:
        plain = _plain(dict(record))
        with self._lock:
            execution = self._owned(execution_id, owner, epoch)
            if isinstance(execution, Refusal):
                return _refused(execution)
            execution.tasks[task_id] = plain
            return OK

    def commit_execution(
        self,
        execution_id: str,
        owner: str,
        epoch: int,
        status: WorkflowStatus,
        record: Mapping[str, Any],
    ) -> WriteResult:
        plain = _plain(dict(record))
        with self._lock:
            execution = self._owned(execution_id, owner, epoch)
            if isinstance(execution, Refusal):
                return _refused(execution)
            execution.status = WorkflowStatus(status)
            execution.record = plain
            return OK

    def release(self, execution_id: str, owner: str, epoch: int) -> WriteResult:
        with self._lock:
            execution = self._owned(execution_id, owner, epoch)
            if isinstance(execution, Refusal):
                return _refused(execution)
            execution.owner = None  # pending again; its epoch stays until the next assign
            execution.status = WorkflowStatus.PENDING
            return OK

    def request_cancel(self, execution_id: str) -> WriteResult:
        with self._lock:
            execution = self._executions.get(execution_id)
            if execution is None:
                return _refused(Refusal.UNKNOWN)
            if execution.status.terminal:
                return _refused(Refusal.FINISHED)
            execution.cancel_requested = True
            return OK

    def _owned(self, execution_id: str, owner: str, epoch: int) -> StoredExecution | Refusal:
        """The execution if `owner` may write it at `epoch`, else why not (call it locked).
        Who asks is checked before what state it is in, as in the Redis scripts."""
        execution = self._executions.get(execution_id)
        if execution is None:
            return Refusal.UNKNOWN
        if execution.owner != owner or execution.epoch != epoch:
            return Refusal.NOT_OWNER
        if execution.status.terminal:
            return Refusal.FINISHED
        return execution

    # -- instances -----------------------------------------------------------------------------
    def heartbeat(self, info: InstanceInfo, ttl_s: float) -> None:
        if ttl_s <= 0:
            raise ValueError(f"ttl_s must be positive, got {ttl_s}")
        with self._lock:
            self._instances[info.instance_id] = (info, self.clock() + ttl_s)

    def instances(self) -> list[InstanceInfo]:
        now = self.clock()
        with self._lock:
            for instance_id in [i for i, (_, ends) in self._instances.items() if now >= ends]:
                del self._instances[instance_id]
            return sorted((info for info, _ in self._instances.values()), key=_instance_order)

    def remove_instance(self, instance_id: str) -> None:
        with self._lock:
            self._instances.pop(instance_id, None)

    def close(self) -> None:
        pass


def _copy(execution: StoredExecution) -> StoredExecution:
    return replace(
        execution,
        spec=_plain(dict(execution.spec)),
        options=_plain(dict(execution.options)),
        kind=JobKind(execution.kind),
        status=WorkflowStatus(execution.status),
        tasks=_plain(execution.tasks),
        record=_plain(execution.record),
    )


def _is_pending(execution: StoredExecution) -> bool:
    return execution.owner is None and not execution.status.terminal


def _submit_order(execution: StoredExecution) -> tuple[float, str]:
    return execution.submitted_at, execution.execution_id  # as a Redis sorted set orders


def _instance_order(info: InstanceInfo) -> str:
    return info.instance_id
