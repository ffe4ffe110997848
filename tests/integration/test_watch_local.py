"""`watch` in local mode: the same API on the in-process bus, no servers."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from tests.integration.test_local_execution import probe, workflow
from workbench.dag.states import TaskState, WorkflowStatus
from workbench.events.watch import WatchMode, WatchUpdate, watch
from workbench.orchestrator.orchestrator import DistributedOrchestrator
from workbench.orchestrator.watching import watch_sources

pytestmark = [pytest.mark.integration, pytest.mark.anyio]


async def test_watching_a_local_run(dask_cluster, tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.jsonl"
    spec = workflow(
        probe("a", ledger, sleep_s=0.6, steps=3),
        probe("b", ledger, ["a"], sleep_s=0.6, steps=3),
    )
    orchestrator = DistributedOrchestrator("test", cluster=dask_cluster.scheduler_address)
    async with orchestrator:
        execution_id = await orchestrator.submit_ml_workflow(spec, cache="off")
        snapshots, source = watch_sources(orchestrator, execution_id)
        updates: list[WatchUpdate] = [u async for u in watch(snapshots, source, execution_id)]
        stored = orchestrator.get_execution(execution_id)
    assert updates[0].event is None, "a snapshot first"
    assert all(u.mode is WatchMode.LIVE for u in updates)
    final = updates[-1].execution
    assert final.status is WorkflowStatus.SUCCEEDED is stored.status
    assert {t.state for t in final.tasks.values()} == {TaskState.SUCCEEDED}
    progress = [u.event for u in updates if u.event and u.event.progress is not None]
    assert len(progress) >= 2, "progress while the tasks run"


async def test_a_long_training_reports_at_least_once_a_second(dask_cluster) -> None:
    spec = {
        "workflow_id": "steady",
        "tasks": [
            {
                "task_id": "prepare",
                "task_type": "data_preprocessing",
                "parameters": {"dataset": "synthetic_fraud", "dataset_options": {"n_rows": 20000}},
            },
            {
                "task_id": "train",
                "task_type": "model_training",
                "dependencies": ["prepare"],
                "parameters": {"algorithm": "gradient_boosting", "n_estimators": 150},
            },
        ],
    }
    orchestrator = DistributedOrchestrator("test", cluster=dask_cluster.scheduler_address)
    async with orchestrator:
        execution_id = await orchestrator.submit_ml_workflow(spec, cache="off")
        snapshots, source = watch_sources(orchestrator, execution_id)
        updates = [u async for u in watch(snapshots, source, execution_id)]
    train = [u.event for u in updates if u.event and u.event.task_id == "train"]
    started = next(e.timestamp for e in train if e.status == "running")
    ended = next(e.timestamp for e in train if e.status == "succeeded")
    assert ended - started > 2.0, "long enough to tell"
    reports = [e.timestamp for e in train if e.progress is not None or e.metrics]
    beats = [started, *sorted(t for t in reports if started <= t <= ended), ended]
    gaps = [b - a for a, b in itertools.pairwise(beats)]
    assert max(gaps) <= 1.0, f"longest silence while training: {max(gaps):.2f}s"
