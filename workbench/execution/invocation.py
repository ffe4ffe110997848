"""What the orchestrator sends to a worker to run one task: small, picklable, self-contained."""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from workbench.pickling import dumps
from workbench.registry.address import RegistryAddress
from workbench.spec.models import Resources, RetryPolicy
from workbench.tasks.base import TaskFunction

# The Dask event topic that carries task reports from workers to orchestrators.
TASK_EVENTS_TOPIC = "workbench.task-events"


@dataclass(frozen=True)
class TaskInvocation:
    execution_id: str
    task_id: str
    task_type: str
    fn: TaskFunction
    params: BaseModel
    global_parameters: Mapping[str, Any]
    resources: Resources
    retry_policy: RetryPolicy
    timeout_s: float | None
    base_dir: str
    dependencies: tuple[str, ...]
    # Tells apart the runs of one execution by successive owners in a cluster ("@2"), so a
    # new owner's tasks never share Dask keys with what the previous owner left behind.
    run_tag: str = ""
    # Where the task writes its files; None: `.workbench/runs/` next to the spec.
    work_root: str | None = None
    # False for a task no other task depends on: its result report is not held back.
    has_dependents: bool = True
    # In a hyperparameter search that prunes: the metric the task reports as it trains.
    intermediate_metric: str | None = None
    # The model registry the orchestrator uses, for tasks that register or load models.
    registry: RegistryAddress | None = None
    # For a task that records where its output came from (model_deployment): the workflow,
    # and once the run's cache plan is known, the cache keys of its upstream results.
    lineage: Mapping[str, Any] | None = None

    @property
    def dask_key(self) -> tuple[str, str]:
        return dask_key(self.execution_id + self.run_tag, self.task_id)


def pack(invocation: TaskInvocation) -> bytes:
    """Pickle once on the orchestrator. The scheduler then relays opaque bytes instead of
    unpickling and re-pickling every invocation; only the worker that runs it unpacks it.
    Functions from modules workers cannot import (a spec's .py imports) go by value."""
    return dumps(invocation)


def unpack(payload: bytes) -> TaskInvocation:
    invocation: TaskInvocation = pickle.loads(payload)
    return invocation


def dask_key(execution_id: str, task_id: str) -> tuple[str, str]:
    """The task id comes first: Dask groups tasks (scheduling heuristics, dashboard) by it."""
    return (task_id, execution_id)
