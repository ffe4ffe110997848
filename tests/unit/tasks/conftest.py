"""Run built-in task functions directly with a TaskContext: no Dask cluster, no orchestrator."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from workbench.spec.models import Resources
from workbench.tasks.base import TaskContext, TaskResult
from workbench.tasks.datasets import synthetic_fraud
from workbench.tasks.registry import REGISTRY

Events = list[tuple[str, dict[str, Any]]]


class Runner:
    """Builds a context the way the executor does (params parsed by the type's model) and
    calls the registered task function; records every event its sink receives."""

    def __init__(self, base_dir: Path) -> None:
        self.base_dir = base_dir
        self.events: Events = []

    def context(
        self,
        task_type: str,
        params: Mapping[str, Any] | None = None,
        inputs: Mapping[str, Any] | None = None,
        *,
        task_id: str | None = None,
        global_parameters: Mapping[str, Any] | None = None,
        cpu: float = 1.0,
        cancel_event: threading.Event | None = None,
    ) -> TaskContext:
        definition = REGISTRY.get(task_type)
        return TaskContext(
            execution_id="test-run",
            task_id=task_id or task_type,
            task_type=task_type,
            params=definition.params.model_validate(dict(params or {})),
            inputs=inputs,
            global_parameters=global_parameters,
            resources=Resources(cpu=cpu),
            base_dir=self.base_dir,
            sink=lambda kind, payload: self.events.append((kind, payload)),
            cancel_event=cancel_event,
        )

    def __call__(
        self,
        task_type: str,
        params: Mapping[str, Any] | None = None,
        inputs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> TaskResult:
        ctx = self.context(task_type, params, inputs, **options)
        fn = REGISTRY.get(task_type).fn
        assert fn is not None
        result = fn(ctx)
        assert isinstance(result, TaskResult)
        return result

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [payload for k, payload in self.events if k == kind]


@pytest.fixture
def run(tmp_path: Path) -> Runner:
    return Runner(tmp_path)


@pytest.fixture(scope="session")
def fraud_frame() -> pd.DataFrame:
    """A small fraud set with enough positives (10%) for stratified splits and 3 folds."""
    return synthetic_fraud(n_rows=600, fraud_rate=0.1, seed=3)


@pytest.fixture(scope="session")
def fraud_csv(tmp_path_factory: pytest.TempPathFactory, fraud_frame: pd.DataFrame) -> Path:
    path = tmp_path_factory.mktemp("data") / "fraud.csv"
    fraud_frame.to_csv(path, index=False)
    return path


@pytest.fixture(scope="session")
def prepared_fraud(tmp_path_factory: pytest.TempPathFactory, fraud_csv: Path) -> TaskResult:
    """data_preprocessing output for the small fraud CSV (shared; tasks never mutate it)."""
    runner = Runner(tmp_path_factory.mktemp("prep"))
    return runner("data_preprocessing", {"dataset_path": str(fraud_csv)})


@pytest.fixture(scope="session")
def prepared_diabetes(tmp_path_factory: pytest.TempPathFactory) -> TaskResult:
    runner = Runner(tmp_path_factory.mktemp("prep"))
    return runner("data_preprocessing", {"dataset": "sklearn:diabetes"})


@pytest.fixture(scope="session")
def prepared_iris(tmp_path_factory: pytest.TempPathFactory) -> TaskResult:
    runner = Runner(tmp_path_factory.mktemp("prep"))
    return runner("data_preprocessing", {"dataset": "sklearn:iris"})


@pytest.fixture(scope="session")
def trained_fraud(tmp_path_factory: pytest.TempPathFactory, prepared_fraud: TaskResult) -> Any:
    """A small xgboost model on the fraud data, trained straight from preprocessing."""
    runner = Runner(tmp_path_factory.mktemp("train"))
    params = {"algorithm": "xgboost", "n_estimators": 20, "max_depth": 3}
    return runner("model_training", params, {"prep": prepared_fraud.output}, task_id="xgb").output


@pytest.fixture
def fast_progress(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let every progress event through (they are throttled to one per 0.1 s otherwise)."""
    monkeypatch.setattr("workbench.tasks.base.PROGRESS_MIN_INTERVAL_S", 0.0)
