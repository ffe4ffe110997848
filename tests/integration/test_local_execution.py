"""Workflows on a real Dask cluster of separate worker processes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.integration.probe_tasks import read_ledger
from workbench.dag.states import TaskState, WorkflowStatus
from workbench.events.models import Event, EventType
from workbench.events.replay import ExecutionViews
from workbench.orchestrator.orchestrator import DistributedOrchestrator

pytestmark = [pytest.mark.integration, pytest.mark.anyio]


def probe(task_id: str, ledger: Path, deps: list[str] | None = None, **params: Any) -> dict:
    task: dict[str, Any] = {
        "task_id": task_id,
        "task_type": "probe",
        "dependencies": deps or [],
        "parameters": {"ledger": str(ledger), **params},
    }
    for key in ("retry_policy", "timeout_s", "resources"):
        if key in params:
            task[key] = task["parameters"].pop(key)
    return task


def workflow(*tasks: dict) -> dict:
    return {
        "workflow_id": "probe_flow",
        "imports": ["tests.integration.probe_tasks"],
        "tasks": list(tasks),
    }


@pytest.fixture
def orchestrator(dask_cluster):
    return DistributedOrchestrator("test", cluster=dask_cluster.scheduler_address)


async def run(orchestrator: DistributedOrchestrator, spec: dict, events: list | None = None):
    if events is not None:
        orchestrator.bus.subscribe(events.append)
    async with orchestrator:
        execution_id = await orchestrator.submit_ml_workflow(spec)
        return await orchestrator.wait_for_execution(execution_id, timeout=120)


async def test_independent_branches_overlap_in_time(orchestrator, tmp_path):
    ledger = tmp_path / "ledger.jsonl"
    spec = workflow(
        probe("root", ledger),
        probe("left", ledger, ["root"], sleep_s=2.5),
        probe("right", ledger, ["root"], sleep_s=2.5),
        probe("join", ledger, ["left", "right"]),
    )
    execution = await run(orchestrator, spec)
    assert execution.status is WorkflowStatus.SUCCEEDED
    spans = {e["task"]: e["at"] for e in read_ledger(ledger) if e["event"] == "start"}
    ends = {e["task"]: e["at"] for e in read_ledger(ledger) if e["event"] == "end"}
    overlap = min(ends["left"], ends["right"]) - max(spans["left"], spans["right"])
    # Run one after the other, two 2.5 s branches overlap by <= 0 s; run together, by most of
    # their length (how soon Dask places the second varies on a loaded two-core machine).
    assert overlap > 0.5, f"branches did not run concurrently (overlap {overlap:.2f}s)"
    # futures fed futures: join saw both branch outputs plus the root's, all summed on workers
    assert execution.tasks["join"].metrics["total"] == pytest.approx(1 + 2 + 2)


async def test_retry_with_backoff_then_success(orchestrator, tmp_path):
    ledger = tmp_path / "ledger.jsonl"
    policy = {"max_retries": 3, "backoff_base_s": 0.4, "backoff_max_s": 5, "jitter": False}
    spec = workflow(probe("flaky", ledger, fail_times=2, retry_policy=policy))
    events: list[Event] = []
    execution = await run(orchestrator, spec, events)
    record = execution.tasks["flaky"]
    assert execution.status is WorkflowStatus.SUCCEEDED
    assert record.attempts == 3
    starts = [e["at"] for e in read_ledger(ledger) if e["event"] == "start"]
    fails = [e["at"] for e in read_ledger(ledger) if e["event"] == "fail"]
    gaps = [starts[1] - fails[0], starts[2] - fails[1]]
    assert gaps[0] >= 0.4 and gaps[1] >= 0.8, f"backoff not exponential: {gaps}"
    retrying = [e for e in events if e.type is EventType.TASK_RETRYING]
    assert [e.data["delay_s"] for e in retrying] == [0.4, 0.8]


async def test_retries_exhausted_fail_the_workflow_with_root_cause(orchestrator, tmp_path):
    ledger = tmp_path / "ledger.jsonl"
    policy = {"max_retries": 1, "backoff_base_s": 0.1, "jitter": True}
    spec = workflow(
        probe("bad", ledger, fail_always=True, retry_policy=policy),
        probe("after", ledger, ["bad"]),
        probe("after_after", ledger, ["after"]),
        probe("other", ledger),
    )
    execution = await run(orchestrator, spec)
    assert execution.status is WorkflowStatus.FAILED
    assert execution.tasks["bad"].state is TaskState.FAILED
    assert execution.tasks["bad"].attempts == 2
    assert execution.tasks["after"].state is TaskState.SKIPPED
    assert execution.tasks["after"].message == "upstream task 'bad' failed"
    assert execution.tasks["after_after"].state is TaskState.SKIPPED
    assert execution.tasks["other"].state is TaskState.SUCCEEDED
    assert execution.error is not None and execution.error.task_id == "bad"
    assert "probe bad failing on attempt 2" in execution.error.message
    assert "Traceback" in (execution.error.traceback or "")
    assert {e["task"] for e in read_ledger(ledger)} == {"bad", "other"}


async def test_timeout_fails_the_attempt_and_stops_the_body(orchestrator, tmp_path):
    ledger = tmp_path / "ledger.jsonl"
    spec = workflow(probe("slow", ledger, sleep_s=30, steps=300, timeout_s=1.0))
    execution = await run(orchestrator, spec)
    record = execution.tasks["slow"]
    assert execution.status is WorkflowStatus.FAILED
    assert "TaskTimeoutError" in (record.error or "")
    assert "timeout_s=1" in (record.error or "")
    assert (record.duration_s or 0) < 10


async def test_gpu_task_routes_to_the_gpu_worker(orchestrator, dask_cluster, tmp_path):
    ledger = tmp_path / "ledger.jsonl"
    spec = workflow(
        probe("prep", ledger),
        *[probe(f"gpu{i}", ledger, ["prep"], resources={"gpu": 1}) for i in range(3)],
    )
    execution = await run(orchestrator, spec)
    assert execution.status is WorkflowStatus.SUCCEEDED
    gpu_address = dask_cluster.workers["gpu-0"].worker_address
    assert {execution.tasks[f"gpu{i}"].worker for i in range(3)} == {gpu_address}


async def test_resource_no_worker_has_fails_at_submission(orchestrator, tmp_path):
    ledger = tmp_path / "ledger.jsonl"
    spec = workflow(
        probe("prep", ledger),
        probe("tpu", ledger, ["prep"], resources={"capabilities": {"TPU": 1}}),
    )
    execution = await run(orchestrator, spec)
    assert execution.status is WorkflowStatus.FAILED
    message = execution.tasks["tpu"].error or ""
    assert "TPU=1" in message and "gpu-0" in message and "cpu-0" in message
    assert execution.tasks["prep"].state is TaskState.SKIPPED
    assert read_ledger(ledger) == []  # nothing ran


async def test_events_cover_every_transition_in_order(orchestrator, tmp_path):
    ledger = tmp_path / "ledger.jsonl"
    spec = workflow(probe("a", ledger, sleep_s=1.0, steps=5), probe("b", ledger, ["a"]))
    events: list[Event] = []
    execution = await run(orchestrator, spec, events)
    mine = [e for e in events if e.execution_id == execution.execution_id]
    assert [e.seq for e in mine] == list(range(1, len(mine) + 1))
    assert mine[0].type is EventType.WORKFLOW_SUBMITTED
    assert mine[-1].type is EventType.WORKFLOW_FINISHED
    a_types = [e.type for e in mine if e.task_id == "a" and e.type != EventType.TASK_PROGRESS]
    assert a_types == [EventType.TASK_QUEUED, EventType.TASK_STARTED, EventType.TASK_SUCCEEDED]
    assert sum(1 for e in mine if e.task_id == "a" and e.type is EventType.TASK_PROGRESS) >= 3
    # A UI's view rebuilt from the events agrees with the orchestrator's record.
    views = ExecutionViews()
    for e in mine:
        views.apply(e)
    view = views.executions[execution.execution_id]
    assert view.status is execution.status
    for tid, record in execution.tasks.items():
        assert view.tasks[tid].state is record.state
        assert view.tasks[tid].duration_s == pytest.approx(record.duration_s, abs=1e-6)
        assert view.tasks[tid].metrics == record.metrics


async def test_cancel_stops_the_workflow(orchestrator, tmp_path):
    ledger = tmp_path / "ledger.jsonl"
    spec = workflow(probe("long", ledger, sleep_s=20, steps=200), probe("next", ledger, ["long"]))
    async with orchestrator:
        execution_id = await orchestrator.submit_ml_workflow(spec)
        import anyio

        await anyio.sleep(1.0)
        await orchestrator.cancel_execution(execution_id)
        execution = orchestrator.get_execution(execution_id)
    assert execution.status is WorkflowStatus.CANCELLED
    assert {t.state for t in execution.tasks.values()} == {TaskState.CANCELLED}


async def test_fetch_result_brings_the_output_from_the_cluster(orchestrator, tmp_path):
    ledger = tmp_path / "ledger.jsonl"
    spec = workflow(probe("a", ledger, value=2.0), probe("b", ledger, ["a"], value=3.0))
    async with orchestrator:
        execution_id = await orchestrator.submit_ml_workflow(spec)
        await orchestrator.wait_for_execution(execution_id)
        result = await orchestrator.fetch_result(execution_id, "b")
    assert result.output == 5.0


async def test_xgboost_on_a_gpu_worker_without_cuda_says_it_ran_on_cpu(
    orchestrator, dask_cluster, tmp_path
):
    """The cluster's GPU worker offers the resource but has no CUDA device: the training task
    lands there and reports, in its metrics and summary, that it ran on the CPU."""
    from workbench.tasks.datasets import write_fraud_csv

    write_fraud_csv(tmp_path / "transactions.csv", n_rows=2000, seed=3)
    spec = {
        "workflow_id": "gpu_flow",
        "tasks": [
            {
                "task_id": "prepare",
                "task_type": "data_preprocessing",
                "parameters": {
                    "dataset_path": str(tmp_path / "transactions.csv"),
                    "target_column": "is_fraud",
                },
            },
            {
                "task_id": "train",
                "task_type": "model_training",
                "dependencies": ["prepare"],
                "parameters": {"algorithm": "xgboost", "n_estimators": 20},
                "resources": {"gpu": 1},
            },
        ],
    }
    execution = await run(orchestrator, spec)
    assert execution.status is WorkflowStatus.SUCCEEDED, execution.error
    train = execution.tasks["train"]
    assert train.worker == dask_cluster.workers["gpu-0"].worker_address
    assert train.metrics["gpu"] == 0.0
    assert train.summary["device"] == "cpu"
    assert "no CUDA device is visible" in train.summary["device_note"]
