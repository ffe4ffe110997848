"""The workflow specification: what a user writes in YAML or JSON."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

IDENTIFIER = r"^[A-Za-z_][A-Za-z0-9_.\-]*$"


class TaskType(StrEnum):
    """The built-in task types. Custom types registered with @task_type are accepted too."""

    DATA_PREPROCESSING = "data_preprocessing"
    FEATURE_EXTRACTION = "feature_extraction"
    MODEL_TRAINING = "model_training"
    MODEL_VALIDATION = "model_validation"
    HYPERPARAMETER_TUNING = "hyperparameter_tuning"
    MODEL_DEPLOYMENT = "model_deployment"
    BATCH_INFERENCE = "batch_inference"
    MODEL_EVALUATION = "model_evaluation"


class CacheStrategy(StrEnum):
    NONE = "none"
    MEMORY = "memory"
    REDIS = "redis"
    DISK = "disk"
    HYBRID = "hybrid"


class StrictModel(BaseModel):
    """Unknown fields are errors: a typo in a spec must never be silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class RetryPolicy(StrictModel):
    """Retries of a failed task attempt, with exponential backoff and optional jitter."""

    max_retries: int = Field(0, ge=0, le=100, description="Retries after the first attempt.")
    backoff_base_s: float = Field(1.0, ge=0, description="Delay before the first retry.")
    backoff_max_s: float = Field(60.0, ge=0, description="Upper bound of any delay.")
    jitter: bool = Field(True, description="Add up to backoff_base_s of random delay.")

    @model_validator(mode="after")
    def _max_not_below_base(self) -> RetryPolicy:
        if self.backoff_max_s < self.backoff_base_s:
            raise ValueError("backoff_max_s must be >= backoff_base_s")
        return self

    def delay_s(self, retry_number: int) -> float:
        """The delay before retry number `retry_number` (1-based), without jitter."""
        return float(min(self.backoff_max_s, self.backoff_base_s * 2 ** (retry_number - 1)))


_BYTES = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgtp]?i?b?)\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12, "p": 10**15}


def parse_memory(value: str | int | float) -> int:
    """'4GiB', '512MB', '2g' or a number of bytes -> bytes."""
    if isinstance(value, int | float):
        return int(value)
    match = _BYTES.match(value)
    if not match:
        raise ValueError(f"expected a size such as '512MB' or '4GiB', got {value!r}")
    number, unit = float(match.group(1)), match.group(2).lower()
    base = 1024 if "i" in unit else 1000
    power = "kmgtp".find(unit[:1]) + 1 if unit[:1] in "kmgtp" and unit else 0
    return int(number * base**power)


class Resources(StrictModel):
    """What one attempt of a task needs from the worker that runs it.

    `gpu` and `capabilities` become Dask worker resources, so the task only lands on workers
    started with them (`dask worker --resources "GPU=1"`). `cpu` sets the threads a task may use
    and `memory` is checked against the workers' memory limits at submission.
    """

    cpu: float = Field(1.0, gt=0)
    memory: int | None = Field(None, description="Bytes, or a size string such as '4GiB'.")
    gpu: int = Field(0, ge=0)
    capabilities: dict[str, float] = Field(default_factory=dict)

    @field_validator("memory", mode="before")
    @classmethod
    def _parse_memory(cls, value: Any) -> Any:
        return None if value is None else parse_memory(value)

    @field_validator("capabilities", mode="before")
    @classmethod
    def _names_mean_one(cls, value: Any) -> Any:
        if isinstance(value, list):
            return {name: 1.0 for name in value}
        return value

    @field_validator("capabilities")
    @classmethod
    def _positive(cls, value: dict[str, float]) -> dict[str, float]:
        for name, amount in value.items():
            if not re.match(IDENTIFIER, name) or amount <= 0:
                raise ValueError(f"capability {name!r}: expected a name and an amount > 0")
        return value

    def dask_resources(self) -> dict[str, float]:
        """The abstract resources Dask must reserve on a worker for this task."""
        needed = dict(self.capabilities)
        if self.gpu:
            needed["GPU"] = float(self.gpu)
        return needed


# Frozen, so every task without its own settings can share one instance (10,000-task specs).
DEFAULT_RETRY_POLICY = RetryPolicy()
DEFAULT_RESOURCES = Resources()


class TaskSpec(StrictModel):
    task_id: str = Field(pattern=IDENTIFIER, max_length=128)
    task_type: str = Field(description="A built-in TaskType or a registered custom type.")
    dependencies: list[str] = Field(default_factory=list)
    parameters: dict[str, Any] = Field(default_factory=dict)
    cache_strategy: CacheStrategy | None = Field(
        None, description="Overrides the configured default strategy for this task."
    )
    retry_policy: RetryPolicy = DEFAULT_RETRY_POLICY
    resources: Resources = DEFAULT_RESOURCES
    timeout_s: float | None = Field(None, gt=0, description="Per-attempt time limit.")
    description: str = ""


class WorkflowSpec(StrictModel):
    workflow_id: str = Field(pattern=IDENTIFIER, max_length=128)
    name: str = ""
    description: str = ""
    tasks: list[TaskSpec] = Field(min_length=1)
    global_parameters: dict[str, Any] = Field(default_factory=dict)
    imports: list[str] = Field(
        default_factory=list,
        description="Python modules or .py files (relative to the spec) that register task types.",
    )

    @model_validator(mode="after")
    def _default_name(self) -> WorkflowSpec:
        if not self.name:
            object.__setattr__(self, "name", self.workflow_id)
        return self

    def task(self, task_id: str) -> TaskSpec:
        for task in self.tasks:
            if task.task_id == task_id:
                return task
        raise KeyError(task_id)

    @property
    def task_ids(self) -> list[str]:
        return [task.task_id for task in self.tasks]


class SearchDimension(StrictModel):
    """One entry of a hyperparameter search space."""

    type: Literal["integer", "continuous", "categorical"]
    min: float | None = None
    max: float | None = None
    choices: list[Any] | None = None
    log: bool = False
    step: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _consistent(self) -> SearchDimension:
        if self.type == "categorical":
            if not self.choices:
                raise ValueError("a categorical dimension needs a non-empty 'choices' list")
        else:
            if self.min is None or self.max is None:
                raise ValueError(f"an {self.type} dimension needs 'min' and 'max'")
            if self.min > self.max:
                raise ValueError("'min' must be <= 'max'")
            if self.log and self.min <= 0:
                raise ValueError("a log-scale dimension needs 'min' > 0")
            if (
                self.log
                and self.step is not None
                and not (self.type == "integer" and self.step == 1)
            ):  # Optuna refuses the pair when it samples: say so before any trial
                raise ValueError("a log-scale dimension cannot have a 'step'")
        return self


class HyperparameterConfig(StrictModel):
    """The seed's hyperparameter search shape, plus sampler, pruner and parallelism."""

    search_space: dict[str, SearchDimension] = Field(min_length=1)
    max_trials: int = Field(20, ge=1)
    objective_metric: str
    direction: Literal["maximize", "minimize"] = "maximize"
    sampler: Literal["tpe", "random", "cmaes", "grid"] = "tpe"
    pruner: Literal["median", "hyperband", "none"] = "median"
    n_parallel: int = Field(1, ge=1)
    timeout_s: float | None = Field(None, gt=0)
    seed: int | None = None
    target_tasks: list[str] = Field(default_factory=list)
