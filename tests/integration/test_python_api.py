"""The Python API as the seed shows it, on a real local Dask cluster."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from workbench import DistributedOrchestrator, Workbench
from workbench.dag.states import WorkflowStatus
from workbench.errors import SpecError
from workbench.tasks.datasets import write_fraud_csv

pytestmark = pytest.mark.integration


def seed_workflow(dataset_path: str) -> dict:
    return {
        "workflow_id": "fraud_detection_training",
        "name": "Fraud Detection Model Training",
        "tasks": [
            {
                "task_id": "preprocess_data",
                "task_type": "data_preprocessing",
                "dependencies": [],
                "parameters": {"dataset_path": dataset_path},
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


def test_seed_orchestrator_api_as_written(tmp_path: Path) -> None:
    csv = tmp_path / "transactions.csv"
    write_fraud_csv(csv, n_rows=4000, seed=1)
    workflow = seed_workflow(str(csv))

    async def main() -> None:
        orchestrator = DistributedOrchestrator("instance-1")
        try:
            execution_id = await orchestrator.submit_ml_workflow(workflow)
            execution = await orchestrator.wait_for_execution(execution_id)
            assert execution.status is WorkflowStatus.SUCCEEDED
            result = await orchestrator.fetch_result(execution_id, "train_model")
            predictions = result.output.model.predict(
                result.output.features.data.test.drop(columns=["is_fraud"])
            )
            assert len(predictions) == len(result.output.features.data.test)
        finally:
            await orchestrator.close()

    asyncio.run(main())


def test_seed_workflow_with_missing_file_is_rejected_before_anything_runs() -> None:
    async def main() -> None:
        orchestrator = DistributedOrchestrator("instance-1")
        with pytest.raises(SpecError, match=r"/data/transactions\.csv"):
            await orchestrator.submit_ml_workflow(seed_workflow("/data/transactions.csv"))
        assert not orchestrator.executor.started  # no cluster was even started
        await orchestrator.close()

    asyncio.run(main())


def test_workbench_local_run_and_async_submit(tmp_path: Path) -> None:
    spec = {
        "workflow_id": "iris",
        "tasks": [
            {
                "task_id": "prep",
                "task_type": "data_preprocessing",
                "parameters": {"dataset": "sklearn:iris"},
            },
            {
                "task_id": "train",
                "task_type": "model_training",
                "dependencies": ["prep"],
                "parameters": {"algorithm": "random_forest", "n_estimators": 20},
            },
            {"task_id": "eval", "task_type": "model_evaluation", "dependencies": ["train"]},
        ],
    }
    with Workbench.local(workers=1) as wb:
        events = []
        execution = wb.run(spec, on_event=events.append)
        assert execution.status is WorkflowStatus.SUCCEEDED
        assert execution.metrics["eval"]["accuracy"] > 0.8
        assert events[0].type.value == "workflow.submitted"

        async def from_a_loop() -> WorkflowStatus:
            execution_id = await wb.submit(spec)
            return (await wb.wait(execution_id)).status

        assert asyncio.run(from_a_loop()) is WorkflowStatus.SUCCEEDED
