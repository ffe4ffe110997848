"""The watcher on a real broker (Tansu) and a real Redis: a synthetic owner commits each
transition to the state store and publishes its event, as an orchestrator instance does, and
watchers follow it: in order, once each, through a broker crash, past malformed messages."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis

from tests.support.kafka_broker import KafkaBroker, create_topic
from workbench.config import Settings
from workbench.coordination.base import StoredExecution
from workbench.coordination.election import RedisLeaderElection
from workbench.coordination.redis_store import RedisStateStore
from workbench.dag.states import WorkflowStatus
from workbench.events.kafka import KafkaPublisher
from workbench.events.kafka_source import KafkaSource
from workbench.events.models import SEQ_EPOCH_SHIFT, Event, EventType
from workbench.events.replay import apply_event
from workbench.events.watch import StoreSnapshots, WatchMode, WatchUpdate, watch
from workbench.events.wire import encode
from workbench.orchestrator.owned import execution_from_store

pytestmark = [pytest.mark.integration, pytest.mark.timeout(30)]

NAMESPACE = "watch-test"
TASKS = ("prepare", "train", "evaluate")


def leader_token(client: redis.Redis) -> int:
    """The fencing token of the lease that "leader" holds, taken on first use."""
    election = RedisLeaderElection(client, "leader", namespace=NAMESPACE, lease_ms=60_000)
    token = election.try_acquire()
    if token is not None:
        return token
    holder = election.holder()  # held already, by "leader" itself
    assert holder is not None and holder[0] == "leader"
    return holder[1]


class Owner:
    """An execution's owner: each step is an event, published, then committed to the store
    (task states as they happen, the workflow's status at start and end): a store that lags
    its events a little, as a real owner's does."""

    def __init__(self, client: redis.Redis, publisher: KafkaPublisher, execution_id: str):
        self.store = RedisStateStore(client, namespace=NAMESPACE)
        self.publisher = publisher
        self.execution_id = execution_id
        spec = {"workflow_id": "wf", "tasks": [{"task_id": t, "task_type": "kind"} for t in TASKS]}
        self.store.create_execution(
            StoredExecution(execution_id, "wf", spec, base_dir="/tmp", submitted_at=time.time())
        )
        result = self.store.assign(
            execution_id, "owner", leader="leader", token=leader_token(client)
        )
        assert result.ok and result.epoch is not None
        self.epoch = result.epoch
        self.record = self.snapshot()
        self.seq = self.epoch << SEQ_EPOCH_SHIFT
        self.published: list[Event] = []

    def snapshot(self) -> Any:
        stored = self.store.get_execution(self.execution_id)
        assert stored is not None
        return execution_from_store(stored)

    def step(self, kind: EventType, task_id: str | None = None, **fields: Any) -> Event:
        self.seq += 1
        event = Event(
            type=kind,
            execution_id=self.execution_id,
            workflow_id="wf",
            task_id=task_id,
            instance_id="owner",
            seq=self.seq,
            timestamp=time.time(),
            **fields,
        )
        apply_event(self.record, event)
        self.publisher.publish(event)
        self.published.append(event)
        if task_id is not None and event.status is not None:
            record = self.record.tasks[task_id].model_dump(mode="json")
            assert self.store.commit_task(self.execution_id, "owner", self.epoch, task_id, record)
        elif kind in (EventType.WORKFLOW_STARTED, EventType.WORKFLOW_FINISHED):
            fields_ = self.record.model_dump(mode="json", exclude={"tasks", "status"})
            status = self.record.status
            assert self.store.commit_execution(
                self.execution_id, "owner", self.epoch, status, fields_
            )
        return event

    def steps_of(self, task_id: str) -> list[Callable[[], Event]]:
        """A task's life: queued, started, progress and a metric while it runs, succeeded."""
        return [
            lambda: self.step(EventType.TASK_QUEUED, task_id, status="submitted"),
            lambda: self.step(
                EventType.TASK_STARTED, task_id, status="running", data={"attempt": 1}
            ),
            lambda: self.step(EventType.TASK_PROGRESS, task_id, progress=0.3, message="round 3"),
            lambda: self.step(EventType.TASK_METRIC, task_id, metrics={"loss": 0.4}),
            lambda: self.step(EventType.TASK_PROGRESS, task_id, progress=0.8, message="round 8"),
            lambda: self.step(
                EventType.TASK_SUCCEEDED, task_id, status="succeeded", metrics={"f1": 0.9}
            ),
        ]

    def all_steps(self) -> list[Callable[[], Event]]:
        steps = [lambda: self.step(EventType.WORKFLOW_STARTED, status="running")]
        for task_id in TASKS:
            steps += self.steps_of(task_id)
        return [*steps, lambda: self.step(EventType.WORKFLOW_FINISHED, status="succeeded")]


class Watcher:
    """`watch` of one execution over Kafka, in a task; its sources and updates kept."""

    def __init__(self, owner: Owner, settings: Settings, **options: float) -> None:
        self.sources: list[KafkaSource] = []
        self.updates: list[WatchUpdate] = []
        snapshots = StoreSnapshots(owner.store, execution_from_store)
        updates = watch(
            snapshots, self._source(settings, owner.execution_id), owner.execution_id, **options
        )
        self.task = asyncio.create_task(self._consume(updates))

    def _source(self, settings: Settings, execution_id: str) -> Callable[[], KafkaSource]:
        def make() -> KafkaSource:
            self.sources.append(KafkaSource(settings, execution_id))
            return self.sources[-1]

        return make

    async def _consume(self, updates: Any) -> None:
        async for update in updates:
            self.updates.append(update)

    def seqs(self) -> list[int]:
        return [u.event.seq for u in self.updates if u.event is not None]

    def modes(self) -> list[WatchMode]:
        """The modes in order, each run of one mode once."""
        modes: list[WatchMode] = []
        for update in self.updates:
            if not modes or modes[-1] is not update.mode:
                modes.append(update.mode)
        return modes

    async def first(self) -> None:
        await self.until(lambda: self.updates, 10, "the snapshot")

    async def until(self, condition: Callable[[], object], timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while not condition():
            if self.task.done():
                self.task.result()  # its error, if it failed
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
            await asyncio.sleep(0.01)


def settings_for(bootstrap: str, topic: str) -> Settings:
    return Settings(
        kafka_bootstrap_servers=bootstrap,
        kafka_topic=topic,
        events_send_timeout_s=0.5,
        events_shutdown_timeout_s=1.0,
    )


async def started_publisher(settings: Settings) -> KafkaPublisher:
    assert settings.kafka_bootstrap_servers is not None
    await create_topic(settings.kafka_bootstrap_servers, settings.kafka_topic)
    publisher = KafkaPublisher(settings)
    assert await publisher.start()
    return publisher


async def drive(steps: list[Callable[[], Event]], pause_s: float = 0.005) -> None:
    for step in steps:
        step()
        await asyncio.sleep(pause_s)


def test_a_watcher_sees_every_transition_in_order_and_ends_equal_to_the_store(
    kafka_broker: KafkaBroker, kafka_topic: str, redis_url: str
) -> None:
    client = redis.Redis.from_url(redis_url)

    async def scenario() -> None:
        settings = settings_for(kafka_broker.bootstrap, kafka_topic)
        publisher = await started_publisher(settings)
        owner = Owner(client, publisher, "exec-1")
        other = Owner(client, publisher, "exec-2")  # on the same topic: filtered out
        watcher = Watcher(owner, settings)
        await watcher.first()
        steps, noise = owner.all_steps(), other.all_steps()
        for step, extra in zip(steps, noise, strict=False):
            step()
            extra()
            await asyncio.sleep(0.005)
        await asyncio.wait_for(watcher.task, 15)
        await publisher.close()

        assert watcher.seqs() == [e.seq for e in owner.published]
        assert {u.execution.execution_id for u in watcher.updates} == {"exec-1"}
        assert watcher.modes() == [WatchMode.LIVE]
        # running tasks showed their progress and metrics as they came
        train = [
            (u.event.type, u.execution.tasks["train"])
            for u in watcher.updates
            if u.event is not None and u.event.task_id == "train"
        ]
        assert [t.progress for kind, t in train if kind is EventType.TASK_PROGRESS] == [0.3, 0.8]
        assert [t.metrics for kind, t in train if kind is EventType.TASK_METRIC] == [{"loss": 0.4}]
        final = watcher.updates[-1].execution
        assert final == owner.snapshot() and final.status is WorkflowStatus.SUCCEEDED

    try:
        asyncio.run(scenario())
    finally:
        client.close()


def test_two_watchers_see_each_event_once_despite_duplicates_on_the_topic(
    kafka_broker: KafkaBroker, kafka_topic: str, redis_url: str
) -> None:
    client = redis.Redis.from_url(redis_url)

    async def scenario() -> None:
        settings = settings_for(kafka_broker.bootstrap, kafka_topic)
        publisher = await started_publisher(settings)
        owner = Owner(client, publisher, "exec-1")
        watchers = [Watcher(owner, settings), Watcher(owner, settings)]
        for watcher in watchers:
            await watcher.first()
        for step in owner.all_steps():
            event = step()
            if event.seq % 3 == 0:  # a redelivery, as a publisher retry or a replay makes
                publisher.publish(event)
            await asyncio.sleep(0.005)
        await asyncio.wait_for(asyncio.gather(*(w.task for w in watchers)), 15)
        await publisher.close()

        expected = [e.seq for e in owner.published]
        final = owner.snapshot()
        for watcher in watchers:
            assert watcher.seqs() == expected
            assert watcher.updates[-1].execution == final

    try:
        asyncio.run(scenario())
    finally:
        client.close()


def test_a_watcher_started_mid_run_gets_the_rest_once_and_ends_equal_to_the_store(
    kafka_broker: KafkaBroker, kafka_topic: str, redis_url: str
) -> None:
    client = redis.Redis.from_url(redis_url)

    async def scenario() -> None:
        settings = settings_for(kafka_broker.bootstrap, kafka_topic)
        publisher = await started_publisher(settings)
        owner = Owner(client, publisher, "exec-1")
        steps = owner.all_steps()
        await drive(steps[:9])
        await asyncio.sleep(0.2)  # on the topic before the watcher: not for it
        late = Watcher(owner, settings)  # a UI opened (or restarted) mid-run
        await late.first()
        snapshot = late.updates[0].execution
        assert snapshot.tasks["prepare"].state == "succeeded"
        assert snapshot.tasks["train"].state == "running"
        await drive(steps[9:])
        await asyncio.wait_for(late.task, 15)
        await publisher.close()

        assert late.seqs() == [e.seq for e in owner.published[9:]]
        assert late.updates[-1].execution == owner.snapshot()

    try:
        asyncio.run(scenario())
    finally:
        client.close()


def test_a_broker_crash_switches_to_polling_and_back_and_the_end_equals_the_store(
    own_kafka_broker: KafkaBroker, kafka_topic: str, redis_url: str
) -> None:
    client = redis.Redis.from_url(redis_url)

    async def scenario() -> None:
        settings = settings_for(own_kafka_broker.bootstrap, kafka_topic)
        publisher = await started_publisher(settings)
        owner = Owner(client, publisher, "exec-1")
        watcher = Watcher(owner, settings, poll_s=0.1, reconnect_s=0.3)
        await watcher.first()
        steps = owner.all_steps()
        await drive(steps[:7])  # started, and prepare done
        await watcher.until(lambda: len(watcher.seqs()) == 7, 10, "the first events")

        await asyncio.to_thread(own_kafka_broker.stop)
        await watcher.until(lambda: WatchMode.POLLING in watcher.modes(), 10, "polling")
        await drive(steps[7:13])  # train runs and succeeds while Kafka is down
        await watcher.until(
            lambda: watcher.updates[-1].execution.tasks["train"].state == "succeeded",
            5,
            "the store's view of train, by polling",
        )
        assert watcher.updates[-1].mode is WatchMode.POLLING

        await asyncio.to_thread(own_kafka_broker.restart)
        await create_topic(own_kafka_broker.bootstrap, kafka_topic)
        await watcher.until(lambda: watcher.modes()[-1] is WatchMode.LIVE, 15, "live again")
        await drive(steps[13:])
        await asyncio.wait_for(watcher.task, 15)
        await publisher.close()

        assert watcher.modes() == [WatchMode.LIVE, WatchMode.POLLING, WatchMode.LIVE]
        seen = watcher.seqs()
        assert seen == sorted(set(seen))  # never a duplicate, never backwards
        assert watcher.updates[-1].execution == owner.snapshot()
        assert owner.snapshot().status is WorkflowStatus.SUCCEEDED

    try:
        asyncio.run(scenario())
    finally:
        client.close()


def test_malformed_messages_on_the_topic_are_skipped_with_a_warning(
    kafka_broker: KafkaBroker, kafka_topic: str, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    client = redis.Redis.from_url(redis_url)

    async def scenario() -> None:
        from aiokafka import AIOKafkaProducer

        settings = settings_for(kafka_broker.bootstrap, kafka_topic)
        publisher = await started_publisher(settings)
        owner = Owner(client, publisher, "exec-1")
        watcher = Watcher(owner, settings)
        await watcher.first()
        raw = AIOKafkaProducer(bootstrap_servers=kafka_broker.bootstrap)
        await raw.start()
        steps = owner.all_steps()
        await drive(steps[:4])
        await watcher.until(lambda: len(watcher.seqs()) == 4, 10, "the first events")
        later = owner.step(EventType.TASK_PROGRESS, "prepare", progress=0.5)
        future_version = encode(later).replace(b'"schema_version":1', b'"schema_version":99')
        for bad in (b"not json", b'{"type": "task.nonsense"}', future_version, b""):
            await raw.send_and_wait(kafka_topic, bad, key=b"exec-1")
        await raw.send_and_wait(kafka_topic, b"\xff\xfe", key=None)  # unkeyed: decoded too
        await raw.stop()
        await drive(steps[4:])
        await asyncio.wait_for(watcher.task, 15)
        await publisher.close()

        assert watcher.seqs() == [e.seq for e in owner.published]
        assert sum(source.skipped for source in watcher.sources) == 5
        assert watcher.updates[-1].execution == owner.snapshot()

    with caplog.at_level(logging.WARNING, logger="workbench.events.kafka_source"):
        try:
            asyncio.run(scenario())
        finally:
            client.close()
    skipped = [r for r in caplog.records if "skipping message" in r.getMessage()]
    assert len(skipped) == 5
    assert any("schema_version 99" in r.getMessage() for r in skipped)
