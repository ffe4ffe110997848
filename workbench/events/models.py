"""The Event: every state change of a workflow, in one versioned shape for every UI."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

SCHEMA_VERSION = 1


class EventType(StrEnum):
    WORKFLOW_SUBMITTED = "workflow.submitted"
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
    seq: int = Field(description="Per-execution sequence number: drop duplicates, notice gaps.")
    timestamp: float
