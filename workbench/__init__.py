"""Workbench: declare ML workflows in YAML or JSON and run them on Dask.

Heavy modules load on first use, so `import workbench` stays fast.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "connect": "workbench.notebook.session",
    "Workbench": "workbench.client.workbench",
    "DistributedOrchestrator": "workbench.orchestrator.orchestrator",
    "WorkflowSpec": "workbench.spec.models",
    "TaskSpec": "workbench.spec.models",
    "TaskType": "workbench.spec.models",
    "CacheStrategy": "workbench.spec.models",
    "RetryPolicy": "workbench.spec.models",
    "Resources": "workbench.spec.models",
    "HyperparameterConfig": "workbench.spec.models",
    "WorkflowExecution": "workbench.dag.records",
    "TaskRecord": "workbench.dag.records",
    "TaskState": "workbench.dag.states",
    "WorkflowStatus": "workbench.dag.states",
    "TaskContext": "workbench.tasks.base",
    "TaskResult": "workbench.tasks.base",
    "task_type": "workbench.tasks.registry",
    "Event": "workbench.events.models",
    "EventType": "workbench.events.models",
    "WorkbenchError": "workbench.errors",
    "SpecError": "workbench.errors",
    "load_workflow": "workbench.tasks.checks",
}

__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'workbench' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
