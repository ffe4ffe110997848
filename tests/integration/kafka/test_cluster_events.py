"""Cluster mode end to end with a real broker: orchestrator processes publish to Kafka, a
client watches one execution live and ends with exactly what the state store holds."""

from __future__ import annotations

import asyncio
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.test_local_execution import probe, workflow
from tests.support.cluster import ClusterHarness
from tests.support.interrupt import ctrl_c_works, interrupt, kill_tree
from tests.support.kafka_broker import KafkaBroker, create_topic
from workbench.dag.states import TaskState, WorkflowStatus
from workbench.events.models import EventType
from workbench.events.watch import WatchMode, WatchUpdate
from workbench.events.wire import decode
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
        command = ["events", "tail", "--json", "--profile", str(cluster.profile_path)]
        tail = subprocess.Popen(
            [sys.executable, "-m", "workbench", *command],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=ctrl_c_works,
        )
        try:
            assert tail.stderr is not None
            assert "following" in tail.stderr.readline(), "the tail is listening"

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
            tailed, _ = interrupt(tail, timeout=20)
        finally:
            kill_tree(tail)  # a run that failed before the tail stopped leaves nothing running
    lines = [decode(line.encode()) for line in tailed.splitlines() if line.strip()]
    ours = [e.type for e in lines if e.execution_id == final.execution_id]
    assert EventType.WORKFLOW_ASSIGNED in ours and ours[-1] is EventType.WORKFLOW_FINISHED
    assert ours.count(EventType.TASK_SUCCEEDED) == 2

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


def test_broker_lost_mid_run_the_run_completes_and_the_watcher_polls_then_goes_live(
    own_kafka_broker: KafkaBroker, tmp_path: Path
) -> None:
    import threading
    import time

    from workbench.events.watch_thread import WatchThread

    topic = f"events-{secrets.token_hex(4)}"
    asyncio.run(create_topic(own_kafka_broker.bootstrap, topic))
    ledger = tmp_path / "ledger.jsonl"
    spec = {
        **workflow(
            probe("warm", ledger, sleep_s=1.0, steps=4, value=1.0),
            probe("long", ledger, ["warm"], sleep_s=8.0, steps=16, value=2.0),
        ),
        "workflow_id": "unbroken",
    }
    extra = {
        "kafka_bootstrap_servers": own_kafka_broker.bootstrap,
        "kafka_topic": topic,
        "events_shutdown_timeout_s": 2.0,
    }
    with ClusterHarness(tmp_path / "cluster", instances=1, profile_extra=extra) as cluster:
        assert cluster.settings is not None
        client = DistributedOrchestrator("watcher", settings=cluster.settings, member=False)
        execution_id = asyncio.run(client.submit_ml_workflow(spec))
        updates: list[WatchUpdate] = []
        changed = threading.Condition()

        def record(update: WatchUpdate) -> None:
            with changed:
                updates.append(update)
                changed.notify_all()

        def wait_until(predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
            with changed:
                assert changed.wait_for(lambda: predicate(updates), timeout), what

        snapshots, source = watch_sources(client, execution_id)
        watcher = WatchThread(
            snapshots, source, record, execution_id, poll_s=0.2, reconnect_s=0.5
        ).start()
        try:
            wait_until(
                lambda us: any(u.event and u.event.task_id == "long" for u in us), 60, "live"
            )
            own_kafka_broker.stop()
            wait_until(lambda us: us[-1].mode is WatchMode.POLLING, 30, "polling")
            polled_at = len(updates)
            time.sleep(1.5)  # the run goes on while the broker is away
            own_kafka_broker.restart()
            wait_until(
                lambda us: any(u.mode is WatchMode.LIVE for u in us[polled_at:]), 30, "live again"
            )
            assert watcher.join(timeout=60), "the watch ends with the execution"
        finally:
            watcher.stop()
        assert watcher.error is None
        stored = cluster.execution(execution_id)
        assert stored.status is WorkflowStatus.SUCCEEDED
        final = updates[-1].execution
        assert final.status is WorkflowStatus.SUCCEEDED
        assert {t: r.state for t, r in final.tasks.items()} == {
            t: r.state for t, r in execution_from_store(stored).tasks.items()
        }
        # The instance's publisher shuts down within its deadline even with queued events.
        own_kafka_broker.stop()
        started = time.monotonic()
        [instance] = list(cluster.instances)
        cluster.terminate(instance)
        assert time.monotonic() - started < 10.0
        asyncio.run(client.close())


def test_workbench_run_feeds_on_event_in_a_cluster(
    kafka_broker: KafkaBroker, tmp_path: Path
) -> None:
    from workbench.client.workbench import Workbench
    from workbench.events.models import Event

    topic = f"events-{secrets.token_hex(4)}"
    asyncio.run(create_topic(kafka_broker.bootstrap, topic))
    ledger = tmp_path / "ledger.jsonl"
    spec = {**workflow(probe("only", ledger, sleep_s=1.0, steps=4)), "workflow_id": "fed"}
    extra = {"kafka_bootstrap_servers": kafka_broker.bootstrap, "kafka_topic": topic}
    with ClusterHarness(tmp_path / "cluster", instances=1, profile_extra=extra) as cluster:
        assert cluster.settings is not None
        seen: list[Event] = []
        orchestrator = DistributedOrchestrator("fed", settings=cluster.settings, member=False)
        with Workbench(orchestrator) as wb:
            execution = wb.run(spec, on_event=seen.append)
    assert execution.status is WorkflowStatus.SUCCEEDED
    kinds = [e.type for e in seen if e.task_id == "only"]
    assert EventType.TASK_STARTED in kinds and EventType.TASK_PROGRESS in kinds
