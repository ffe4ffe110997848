"""Cluster mode end to end with a real broker: orchestrator processes publish to Kafka, a
client watches one execution live and ends with exactly what the state store holds."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path

import pytest

from tests.integration.test_local_execution import probe, workflow
from tests.support.cluster import ClusterHarness
from tests.support.kafka_broker import KafkaBroker, create_topic
from workbench.dag.states import TaskState, WorkflowStatus
from workbench.events.models import EventType
from workbench.events.watch import WatchMode, WatchUpdate
from workbench.orchestrator.orchestrator import DistributedOrchestrator
from workbench.orchestrator.owned import execution_from_store
from workbench.orchestrator.watching import watch_sources

pytestmark = pytest.mark.integration

STATE_ORDER = [TaskState.SUBMITTED, TaskState.RUNNING, TaskState.SUCCEEDED]


def test_a_client_watches_a_cluster_run_live(kafka_broker: KafkaBroker, tmp_path: Path) -> None:
    topic = f"events-{secrets.token_hex(4)}"
    asyncio.run(create_topic(kafka_broker.bootstrap, topic))
    ledger = tmp_path / "ledger.jsonl"
    spec = {
        **workflow(
            probe("load", ledger, sleep_s=0.5, value=1.0),
            probe("train", ledger, ["load"], sleep_s=3.0, steps=6, value=2.0),
        ),
        "workflow_id": "watched",
    }
    extra = {"kafka_bootstrap_servers": kafka_broker.bootstrap, "kafka_topic": topic}
    with ClusterHarness(tmp_path / "cluster", instances=2, profile_extra=extra) as cluster:
        assert cluster.settings is not None
        client = DistributedOrchestrator("watcher", settings=cluster.settings, member=False)

        async def run() -> list[WatchUpdate]:
            from workbench.events.watch import watch

            execution_id = await client.submit_ml_workflow(spec)
            snapshots, source = watch_sources(client, execution_id)
            seen = []
            async for update in watch(snapshots, source, execution_id):
                seen.append(update)
            await client.close()
            return seen

        updates = asyncio.run(asyncio.wait_for(run(), 90))
        final = updates[-1].execution
        stored = execution_from_store(cluster.execution(final.execution_id))

    assert final.status is WorkflowStatus.SUCCEEDED
    assert {t: r.state for t, r in final.tasks.items()} == {
        t: r.state for t, r in stored.tasks.items()
    }
    events = [u.event for u in updates if u.event is not None]
    assert all(u.mode is WatchMode.LIVE for u in updates if u.event is not None)
    for task_id in ("load", "train"):
        states = [
            TaskState(e.status) for e in events if e.task_id == task_id and e.status is not None
        ]
        assert [s for s in STATE_ORDER if s in states] == STATE_ORDER, (task_id, states)
        assert states == sorted(states, key=STATE_ORDER.index), (task_id, states)
    running_progress = [
        e for e in events if e.type is EventType.TASK_PROGRESS and e.task_id == "train"
    ]
    assert len(running_progress) >= 3, "progress arrives while the task runs, not only at its end"
    seqs = [e.seq for e in events]
    assert seqs == sorted(seqs) and len(seqs) == len(set(seqs)), "in order, each once"
