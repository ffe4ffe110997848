"""Shared test data: the seed workflow and a registry of test task types (the built-in types
live elsewhere and are not needed to test loading and checking)."""

from __future__ import annotations

import copy
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from workbench.tasks.base import TaskContext, TaskDefinition
from workbench.tasks.registry import TaskRegistry

SEED: dict[str, Any] = {
    "workflow_id": "fraud_detection_training",
    "name": "Fraud Detection Model Training",
    "tasks": [
        {
            "task_id": "preprocess_data",
            "task_type": "data_preprocessing",
            "dependencies": [],
            "parameters": {"dataset_path": "/data/transactions.csv"},
            "cache_strategy": "redis",
        },
        {
            "task_id": "train_model",
            "task_type": "model_training",
            "dependencies": ["preprocess_data"],
            "parameters": {"algorithm": "xgboost", "n_estimators": 100},
        },
    ],
}


def seed() -> dict[str, Any]:
    return copy.deepcopy(SEED)


class PrepParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dataset_path: str | None = Field(None, json_schema_extra={"workbench_input_file": True})
    dataset: str | None = None
    test_size: float = Field(0.2, gt=0, lt=1)

    @model_validator(mode="after")
    def _one_source(self) -> PrepParams:
        if (self.dataset_path is None) == (self.dataset is None):
            raise ValueError("give exactly one of 'dataset_path' (a file) or 'dataset' (built-in)")
        return self


class Booster(BaseModel):
    model_config = ConfigDict(extra="forbid")

    depth: int = Field(6, ge=1)


class TrainParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    algorithm: Literal["xgboost", "random_forest", "logistic_regression"]
    n_estimators: int = Field(100, ge=1)
    learning_rate: float | None = Field(None, gt=0)
    booster: Booster = Field(default_factory=Booster)


class InferenceParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dataset_path: str = Field(json_schema_extra={"workbench_input_file": True})
    extra_files: list[str] = Field(
        default_factory=list, json_schema_extra={"workbench_input_file": True}
    )


def _boosted_params() -> type[BaseModel]:
    """A params model whose nested model has the same class name as TrainParams' one."""

    class Booster(BaseModel):
        gamma: float = 0.0

    class BoostedParams(BaseModel):
        booster: Booster = Field(default_factory=Booster)

    return BoostedParams


def _run(ctx: TaskContext) -> None:
    return None


def make_registry() -> TaskRegistry:
    """A registry with the seed's types and a few more, that never loads the built-ins."""
    registry = TaskRegistry()
    registry._plugins_loaded = True
    definitions = [
        TaskDefinition("data_preprocessing", _run, PrepParams, "Load and split a dataset."),
        TaskDefinition("model_training", _run, TrainParams, "Train a model."),
        TaskDefinition("batch_inference", _run, InferenceParams),
        TaskDefinition("boosted", _run, _boosted_params()),
        TaskDefinition("gpu_training", _run, TrainParams, unavailable_reason="needs CUDA"),
    ]
    for definition in definitions:
        registry.register(definition)
    return registry
