"""Workflow specs: models, loading from YAML/JSON, graph validation and JSON Schema."""

from workbench.spec.models import (
    CacheStrategy,
    HyperparameterConfig,
    Resources,
    RetryPolicy,
    SearchDimension,
    TaskSpec,
    TaskType,
    WorkflowSpec,
)

__all__ = [
    "CacheStrategy",
    "HyperparameterConfig",
    "Resources",
    "RetryPolicy",
    "SearchDimension",
    "TaskSpec",
    "TaskType",
    "WorkflowSpec",
]
