"""The state store seam: what orchestrator instances share, and the atomic writes on it.

Every write that only the leader may make takes the leader's fencing token; every write that
only an execution's owner may make takes the owner's id and ownership epoch. The store checks
them atomically with the write (a Lua script in Redis), so a paused ex-leader or a zombie owner
can never overwrite the work of whoever replaced it: its write is refused and it learns so.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from workbench.dag.states import WorkflowStatus


class Refusal(StrEnum):
    """Why a guarded write was refused."""

    STALE_TOKEN = "stale fencing token"  # another instance leads now
    NOT_OWNER = "not the owner at this epoch"  # the execution was re-assigned
    FINISHED = "execution already finished"
    UNKNOWN = "no such execution"


@dataclass(frozen=True)
class WriteResult:
    ok: bool
    refusal: Refusal | None = None
    epoch: int | None = None  # assign: the new ownership epoch

    def __bool__(self) -> bool:
        return self.ok


class JobKind(StrEnum):
    """What an execution in the store is: a workflow run, or a hyperparameter study whose
    owner asks for trials (each a workflow execution of its own) until its budget is spent."""

    WORKFLOW = "workflow"
    STUDY = "study"


@dataclass
class StoredExecution:
    """An execution as every instance sees it."""

    execution_id: str
    workflow_id: str
    spec: Mapping[str, Any]  # the workflow spec as submitted (JSON-able)
    base_dir: str  # where the spec's relative paths resolve, on every instance
    cache_mode: str = "use"
    status: WorkflowStatus = WorkflowStatus.PENDING
    owner: str | None = None
    epoch: int = 0  # bumped by every (re-)assignment
    submitted_at: float = 0.0
    cancel_requested: bool = False
    # task id -> TaskRecord as JSON (`TaskRecord.model_dump(mode="json")`), as last committed
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)
    # the WorkflowExecution record's own fields as JSON, without `tasks` (status, times, error)
    record: dict[str, Any] = field(default_factory=dict)
    kind: JobKind = JobKind.WORKFLOW
    # Fixed at submission: a trial run's link to its study (see workbench.hpo.pruning).
    options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def capacity_used(self) -> int:
        """The slots of its owner's capacity it takes. A study takes none: it only waits on
        its trials, which are executions of their own (were it to take a slot, a one-slot
        cluster would wait forever for room to run the study's first trial)."""
        return 0 if self.kind is JobKind.STUDY else 1


@dataclass(frozen=True)
class InstanceInfo:
    instance_id: str
    capacity: int  # executions it runs at once
    load: int  # executions it owns and runs now
    heartbeat_at: float  # its clock, seconds since the epoch
    started_at: float = 0.0
    host: str = ""
    pid: int = 0
    # It lost the store for a while: its commits were buffered (and may still be).
    degraded: bool = False

    @property
    def free(self) -> int:
        return max(0, self.capacity - self.load)


class StateStore(Protocol):
    # -- executions ----------------------------------------------------------------------------
    def create_execution(self, execution: StoredExecution) -> None:
        """Store a new execution (status pending, no owner) and queue it for assignment."""
        ...

    def get_execution(self, execution_id: str) -> StoredExecution | None: ...

    def list_executions(
        self, *, owner: str | None = None, status: WorkflowStatus | None = None
    ) -> list[StoredExecution]: ...

    def pending(self) -> list[str]:
        """Execution ids waiting for an owner, oldest first."""
        ...

    # -- leader-only: checked against the fencing token ----------------------------------------
    def assign(
        self, execution_id: str, instance_id: str, *, leader: str, token: int
    ) -> WriteResult:
        """Make `instance_id` the owner at a new epoch (removing it from pending). Refused
        unless `leader` holds the lease with `token`, or when the execution has finished."""
        ...

    # -- owner-only: checked against owner and epoch -------------------------------------------
    def commit_task(
        self, execution_id: str, owner: str, epoch: int, task_id: str, record: Mapping[str, Any]
    ) -> WriteResult: ...

    def commit_execution(
        self,
        execution_id: str,
        owner: str,
        epoch: int,
        status: WorkflowStatus,
        record: Mapping[str, Any],
    ) -> WriteResult:
        """Commit the execution's status and record fields; a terminal status is final."""
        ...

    def release(self, execution_id: str, owner: str, epoch: int) -> WriteResult:
        """Give an unfinished execution back (graceful shutdown): no owner, pending again."""
        ...

    def request_cancel(self, execution_id: str) -> WriteResult:
        """Anyone may ask; the owner sees the flag and cancels."""
        ...

    # -- instances -----------------------------------------------------------------------------
    def heartbeat(self, info: InstanceInfo, ttl_s: float) -> None:
        """Announce `info`; it disappears from `instances()` after `ttl_s` without another."""
        ...

    def instances(self) -> list[InstanceInfo]:
        """Live instances (heartbeat within their TTL)."""
        ...

    def remove_instance(self, instance_id: str) -> None: ...

    def close(self) -> None: ...


class LeaderElection(Protocol):
    """One lease for the whole cluster. Each acquisition takes a fresh fencing token."""

    instance_id: str

    def try_acquire(self) -> int | None:
        """The new fencing token if this instance now holds the lease, else None."""
        ...

    def renew(self, token: int) -> bool:
        """Extend the lease if this instance still holds it with `token`."""
        ...

    def release(self, token: int) -> bool:
        """Give the lease up at once (graceful hand-over)."""
        ...

    def holder(self) -> tuple[str, int] | None:
        """(instance id, token) of the current holder, or None when nobody holds it."""
        ...
