"""The Event: every state change of a workflow, in one versioned shape for every UI."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

SCHEMA_VERSION = 1
# An execution's events under ownership epoch e are numbered from e << SEQ_EPOCH_SHIFT.
SEQ_EPOCH_SHIFT = 32


def seq_epoch(seq: int) -> int:
    return seq >> SEQ_EPOCH_SHIFT


class EventType(StrEnum):
    WORKFLOW_SUBMITTED = "workflow.submitted"
    WORKFLOW_ASSIGNED = "workflow.assigned"  # cluster: the leader gave it to an instance
    WORKFLOW_STARTED = "workflow.started"
    WORKFLOW_FINISHED = "workflow.finished"
    TASK_QUEUED = "task.queued"
    TASK_STARTED = "task.started"
    TASK_PROGRESS = "task.progress"
    TASK_METRIC = "task.metric"
    TASK_RETRYING = "task.retrying"
    TASK_SUCCEEDED = "task.succeeded"
    TASK_CACHED = "task.cached"
    TASK_FAILED = "task.failed"
    TASK_SKIPPED = "task.skipped"
    TASK_CANCELLED = "task.cancelled"
    TRIAL_STARTED = "trial.started"  # hyperparameter tuning
    TRIAL_FINISHED = "trial.finished"
    MODEL_REGISTERED = "model.registered"  # model registry
    MODEL_TRANSITION = "model.transition"  # a stage or alias moved
    MODEL_VALIDATED = "model.validated"  # gates checked; data holds the report
    MODEL_DEPLOYED = "model.deployed"  # made reachable through a deployment target
    # The cluster itself: execution_id is "" and workflow_id is the cluster's namespace.
    LEADER_ELECTED = "cluster.leader_elected"
    INSTANCE_JOINED = "cluster.instance_joined"
    INSTANCE_LEFT = "cluster.instance_left"
    WORKER_JOINED = "cluster.worker_joined"
    WORKER_LEFT = "cluster.worker_left"

    @property
    def cluster_level(self) -> bool:
        return self.value.startswith("cluster.")

    @property
    def of_workflow(self) -> bool:
        """It moves a workflow execution's view (trial, model and cluster events do not)."""
        return self.value.startswith(("workflow.", "task."))


class Event(BaseModel):
    schema_version: int = SCHEMA_VERSION
    type: EventType
    execution_id: str
    workflow_id: str
    task_id: str | None = None
    status: str | None = None
    progress: float | None = None
    message: str | None = None
    metrics: dict[str, float] = Field(default_factory=dict)
    data: dict[str, Any] = Field(default_factory=dict)
    instance_id: str
    seq: int = Field(
        description="Per-execution sequence number: drop duplicates, notice gaps. It grows by "
        "one per event of one owner; a new owner (a higher ownership epoch) starts at "
        "epoch * 2**32, so it still only grows (see SEQ_EPOCH_SHIFT)."
    )
    timestamp: float
