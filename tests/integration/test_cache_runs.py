"""The cache in real runs on a real Dask cluster: hits skip task bodies, single flight, refresh,
no-cache, sharing across workflows, and tampered entries that are never unpickled."""

from __future__ import annotations

import asyncio
import logging
import pickle
from pathlib import Path
from typing import Any

import pytest

from tests.integration.probe_tasks import read_ledger
from tests.integration.test_local_execution import probe, workflow
from workbench.cache.fingerprints import FileFingerprints
from workbench.cache.integrity import seal
from workbench.config import Settings
from workbench.dag.states import TaskState, WorkflowStatus
from workbench.events.models import Event, EventType
from workbench.execution.cache_plan import CacheMode, plan_cache
from workbench.orchestrator.orchestrator import DistributedOrchestrator
from workbench.spec.models import CacheStrategy
from workbench.tasks.checks import load_workflow

pytestmark = [pytest.mark.integration, pytest.mark.anyio]


def orchestrator_for(cluster: Any, cache_dir: Path, **settings: Any) -> DistributedOrchestrator:
    return DistributedOrchestrator(
        "test",
        cluster=cluster.scheduler_address,
        settings=Settings(cache_dir=cache_dir, **settings),
    )


def bodies(ledger: Path) -> list[str]:
    """The tasks whose body ran, in order of completion."""
    return [entry["task"] for entry in read_ledger(ledger) if entry["event"] == "end"]


def chain(ledger: Path, value: float = 1.0) -> dict:
    return workflow(
        probe("a", ledger, value=value),
        probe("b", ledger, ["a"], value=10.0),
        probe("c", ledger, ["b"], value=100.0),
    )


async def run_once(
    orch: DistributedOrchestrator, spec: dict, mode: str = "use", events: list | None = None
):
    if events is not None:
        orch.bus.subscribe(events.append)
    execution_id = await orch.submit_ml_workflow(spec, cache=mode)
    return await orch.wait_for_execution(execution_id, timeout=120)


async def test_warm_run_takes_every_result_from_the_cache(dask_cluster, tmp_path):
    ledger = tmp_path / "ledger.jsonl"
    spec = chain(ledger)
    async with orchestrator_for(dask_cluster, tmp_path / "cache") as orch:
        cold = await run_once(orch, spec)
        assert cold.status is WorkflowStatus.SUCCEEDED
        assert bodies(ledger) == ["a", "b", "c"]
    # A new orchestrator (a new process, as far as the cache can tell) on the same disk cache.
    events: list[Event] = []
    orch = orchestrator_for(dask_cluster, tmp_path / "cache")
    try:
        warm = await run_once(orch, spec, events=events)
        assert warm.status is WorkflowStatus.SUCCEEDED
        assert {t.state for t in warm.tasks.values()} == {TaskState.CACHED}
        assert bodies(ledger) == ["a", "b", "c"], "no task body ran again"
        assert not orch.executor.started, "a run served from the cache needs no cluster"
        cached = [e for e in events if e.type is EventType.TASK_CACHED]
        assert sorted(e.task_id or "" for e in cached) == ["a", "b", "c"]
        assert cached[0].data["source_execution"] == cold.execution_id
        assert warm.tasks["c"].metrics == cold.tasks["c"].metrics
        result = await orch.fetch_result(warm.execution_id, "c")
        assert result.output == 111.0
    finally:
        await orch.close()


async def test_a_changed_task_reruns_with_its_cached_inputs(dask_cluster, tmp_path):
    ledger = tmp_path / "ledger.jsonl"
    async with orchestrator_for(dask_cluster, tmp_path / "cache") as orch:
        await run_once(orch, chain(ledger))
        changed = chain(ledger)
        changed["tasks"][1]["parameters"]["value"] = 20.0
        second = await run_once(orch, changed)
        states = {tid: t.state for tid, t in second.tasks.items()}
        assert states == {"a": TaskState.CACHED, "b": TaskState.SUCCEEDED, "c": TaskState.SUCCEEDED}
        assert bodies(ledger) == ["a", "b", "c", "b", "c"]
        # b's input came from the cache, through the cluster: 1 + 20, then + 100.
        assert (await orch.fetch_result(second.execution_id, "c")).output == 121.0


async def test_refresh_recomputes_and_no_cache_leaves_no_trace(dask_cluster, tmp_path):
    ledger = tmp_path / "ledger.jsonl"
    spec = chain(ledger)
    async with orchestrator_for(dask_cluster, tmp_path / "cache") as orch:
        off = await run_once(orch, spec, mode="off")
        assert all(t.state is TaskState.SUCCEEDED for t in off.tasks.values())
        first = await run_once(orch, spec)  # --no-cache wrote nothing: everything runs
        assert all(t.state is TaskState.SUCCEEDED for t in first.tasks.values())
        assert len(bodies(ledger)) == 6
        refreshed = await run_once(orch, spec, mode="refresh")
        assert all(t.state is TaskState.SUCCEEDED for t in refreshed.tasks.values())
        assert len(bodies(ledger)) == 9
        warm = await run_once(orch, spec)
        assert all(t.state is TaskState.CACHED for t in warm.tasks.values())
        assert warm.tasks["a"].summary["cached_from"] == refreshed.execution_id


async def test_two_workflows_share_an_identical_task(dask_cluster, tmp_path):
    ledger = tmp_path / "ledger.jsonl"
    first = workflow(probe("prepare", ledger, value=5.0), probe("x", ledger, ["prepare"]))
    second = {
        **workflow(
            probe("prep_data", ledger, value=5.0), probe("y", ledger, ["prep_data"], value=2)
        ),
        "workflow_id": "another_flow",
    }
    async with orchestrator_for(dask_cluster, tmp_path / "cache") as orch:
        await run_once(orch, first)
        other = await run_once(orch, second)
        assert other.tasks["prep_data"].state is TaskState.CACHED
        assert other.tasks["y"].state is TaskState.SUCCEEDED
        assert bodies(ledger) == ["prepare", "x", "y"]
        assert (await orch.fetch_result(other.execution_id, "y")).output == 7.0


async def test_single_flight_runs_a_shared_task_body_once(dask_cluster, tmp_path):
    ledger = tmp_path / "ledger.jsonl"
    slow = workflow(probe("slow", ledger, sleep_s=1.5, value=3.0))
    async with orchestrator_for(dask_cluster, tmp_path / "cache") as orch:
        ids = await asyncio.gather(*(orch.submit_ml_workflow(slow) for _ in range(3)))
        done = await asyncio.gather(*(orch.wait_for_execution(i, timeout=120) for i in ids))
        assert all(e.status is WorkflowStatus.SUCCEEDED for e in done)
        assert bodies(ledger) == ["slow"], "three executions, one body"
        states = sorted(e.tasks["slow"].state.value for e in done)
        assert states == ["cached", "cached", "succeeded"]


async def test_single_flight_over_redis_between_two_orchestrators(
    dask_cluster, tmp_path, redis_url
):
    ledger = tmp_path / "ledger.jsonl"
    slow = workflow(probe("slow", ledger, sleep_s=1.5, value=3.0))
    one = orchestrator_for(dask_cluster, tmp_path / "c1", redis_url=redis_url)
    two = orchestrator_for(dask_cluster, tmp_path / "c2", redis_url=redis_url)
    async with one, two:
        done = await asyncio.gather(run_once(one, slow), run_once(two, slow))
    assert bodies(ledger) == ["slow"]
    assert sorted(e.tasks["slow"].state.value for e in done) == ["cached", "succeeded"]


class _Trap:
    """Unpickling this creates a file: proof that something unpickled it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.path,))


async def test_tampered_redis_entries_are_never_unpickled(
    dask_cluster, tmp_path, redis_url, caplog
):
    import redis

    ledger = tmp_path / "ledger.jsonl"
    marker = tmp_path / "pwned"
    spec = chain(ledger)
    for task in spec["tasks"]:
        task["cache_strategy"] = "redis"
    settings = Settings(cache_dir=tmp_path / "cache", redis_url=redis_url)
    plans = plan_cache(
        load_workflow(spec), CacheMode.USE, settings.default_cache_strategy, FileFingerprints()
    )
    keys = {tid: plan.key for tid, plan in plans.items()}
    assert all(plan.strategy is CacheStrategy.REDIS for plan in plans.values())
    async with orchestrator_for(dask_cluster, tmp_path / "cache", redis_url=redis_url) as orch:
        await run_once(orch, spec)
        client = redis.Redis.from_url(redis_url)
        trap = pickle.dumps(_Trap(marker))
        entry = f"workbench:cache:entry:{keys['a']}"
        assert client.exists(entry)
        # 1: raw pickle bytes planted over the entry; 2: sealed, but with another secret.
        orch.cache.backend(CacheStrategy.REDIS).put(keys["a"], trap)
        with caplog.at_level(logging.WARNING, logger="workbench.security"):
            again = await run_once(orch, spec)
        assert again.tasks["a"].state is TaskState.SUCCEEDED, "the planted entry was a miss"
        assert not marker.exists()
        assert any("SECURITY" in r.getMessage() for r in caplog.records)
        orch.cache.backend(CacheStrategy.REDIS).put(keys["b"], seal(keys["b"], trap, b"x" * 32))
        third = await run_once(orch, spec)
        assert third.tasks["b"].state is TaskState.SUCCEEDED
        assert not marker.exists()
        client.close()
