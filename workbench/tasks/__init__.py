"""Task types: the TaskContext seam, the registry and the built-in ML tasks."""

from workbench.tasks.base import NoParameters, TaskContext, TaskDefinition, TaskResult
from workbench.tasks.registry import REGISTRY, TaskRegistry, task_type

__all__ = [
    "REGISTRY",
    "NoParameters",
    "TaskContext",
    "TaskDefinition",
    "TaskRegistry",
    "TaskResult",
    "task_type",
]
