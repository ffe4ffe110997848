"""The Kafka publisher against a real broker (Tansu): order per execution, a broker that
dies and comes back, and bad messages on the topic."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import pytest

from tests.support.kafka_broker import KafkaBroker, create_topic
from workbench.config import Settings
from workbench.events.kafka import KafkaPublisher
from workbench.events.models import Event, EventType
from workbench.events.queue import PublisherStats
from workbench.events.wire import BadEventError, decode, encode, encode_key

pytestmark = [pytest.mark.integration, pytest.mark.timeout(30)]

LIFECYCLE = [
    EventType.TASK_QUEUED,
    EventType.TASK_STARTED,
    EventType.TASK_PROGRESS,
    EventType.TASK_METRIC,
    EventType.TASK_PROGRESS,
    EventType.TASK_SUCCEEDED,
]


class Events:
    """Events with a running sequence number per execution, as the orchestrator numbers them."""

    def __init__(self) -> None:
        self.seq: dict[str, int] = defaultdict(int)

    def make(self, execution: str, event_type: EventType, task: str = "train") -> Event:
        self.seq[execution] += 1
        return Event(
            type=event_type,
            execution_id=execution,
            workflow_id="wf",
            task_id=task,
            progress=0.5 if event_type is EventType.TASK_PROGRESS else None,
            metrics={"auc": 0.9} if event_type is EventType.TASK_METRIC else {},
            instance_id="instance-a",
            seq=self.seq[execution],
            timestamp=time.time(),
        )


def kafka_settings(bootstrap: str, topic: str, **values: Any) -> Settings:
    return Settings(kafka_bootstrap_servers=bootstrap, kafka_topic=topic, **values)


async def consume(bootstrap: str, topic: str, wanted: int, timeout_s: float = 10.0) -> list[Any]:
    """Records of `topic` from the beginning, group-less, until `wanted` came or time is up."""
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    records: list[Any] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(records) < wanted and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=200)
            for batch in batches.values():
                records.extend(batch)
    finally:
        await consumer.stop()
    return records


async def wait_for(condition: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.02)


def settled(stats: PublisherStats) -> int:
    return stats.published + stats.coalesced + stats.dropped + stats.failed


def by_execution(records: Iterable[Any]) -> dict[str, list[Any]]:
    grouped: dict[str, list[Any]] = defaultdict(list)
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        grouped[record.key.decode()].append(record)
    return grouped


def test_events_of_three_executions_arrive_in_order_per_execution(
    kafka_broker: KafkaBroker, kafka_topic: str
) -> None:
    async def scenario() -> tuple[list[Event], list[Any], PublisherStats]:
        await create_topic(kafka_broker.bootstrap, kafka_topic, partitions=3)
        publisher = KafkaPublisher(kafka_settings(kafka_broker.bootstrap, kafka_topic))
        assert await publisher.start()
        events, sent = Events(), []
        for round_ in range(50):  # interleaved, as concurrent executions publish
            for execution in ("exec-a", "exec-b", "exec-c"):
                event = events.make(execution, LIFECYCLE[round_ % len(LIFECYCLE)], f"t{round_}")
                sent.append(event)
                publisher.publish(event)
            await asyncio.sleep(0)
        await publisher.close()
        return sent, await consume(kafka_broker.bootstrap, kafka_topic, len(sent)), publisher.stats

    sent, records, stats = asyncio.run(scenario())
    assert stats == PublisherStats(received=150, published=150)
    grouped = by_execution(records)
    assert sorted(grouped) == ["exec-a", "exec-b", "exec-c"]
    for execution, its_records in grouped.items():
        assert len({r.partition for r in its_records}) == 1, "one execution, one partition"
        received = [decode(r.value) for r in its_records]
        assert [e.seq for e in received] == list(range(1, 51))
        assert received == [e for e in sent if e.execution_id == execution]


def test_a_dead_broker_never_blocks_publish_and_close_keeps_its_deadline(
    own_kafka_broker: KafkaBroker, kafka_topic: str
) -> None:
    shutdown_s = 1.5

    async def scenario() -> tuple[float, float, PublisherStats, int]:
        settings = kafka_settings(
            own_kafka_broker.bootstrap,
            kafka_topic,
            events_queue_size=200,
            events_send_timeout_s=0.5,
            events_shutdown_timeout_s=shutdown_s,
        )
        publisher = KafkaPublisher(settings)
        assert await publisher.start()
        events = Events()
        for _ in range(20):
            publisher.publish(events.make("exec-a", EventType.TASK_STARTED))
        await wait_for(lambda: publisher.stats.published == 20, 10, "the first events")

        own_kafka_broker.stop()
        slowest = 0.0
        for n in range(3000):
            event = events.make("exec-a", LIFECYCLE[n % len(LIFECYCLE)], f"t{n % 7}")
            began = time.perf_counter()
            publisher.publish(event)
            slowest = max(slowest, time.perf_counter() - began)
            if n % 100 == 0:
                await asyncio.sleep(0.01)  # let the sender run into the dead broker
        began = time.monotonic()
        await publisher.close()
        return slowest, time.monotonic() - began, publisher.stats, publisher.pending

    slowest, closed_in, stats, pending = asyncio.run(scenario())
    # Immediate: far below the send timeout (0.5 s) a blocking publish would take.
    assert slowest < 0.05, f"publish() took {slowest * 1000:.1f} ms"
    assert closed_in < shutdown_s + 0.25
    assert stats.received == 3020 and stats.published == 20
    assert settled(stats) == stats.received and pending == 0
    assert stats.dropped > 0 and stats.coalesced > 0


def test_after_a_restart_later_events_arrive(
    own_kafka_broker: KafkaBroker, kafka_topic: str
) -> None:
    async def scenario() -> tuple[list[Event], list[Any], PublisherStats]:
        bootstrap = own_kafka_broker.bootstrap
        await create_topic(bootstrap, kafka_topic)
        settings = kafka_settings(bootstrap, kafka_topic, events_send_timeout_s=0.5)
        publisher = KafkaPublisher(settings)
        assert await publisher.start()
        events = Events()
        publisher.publish(events.make("exec-a", EventType.WORKFLOW_STARTED))
        await wait_for(lambda: publisher.stats.published == 1, 10, "the first event")

        own_kafka_broker.stop()
        for _ in range(5):
            publisher.publish(events.make("exec-a", EventType.TASK_STARTED))
        await wait_for(lambda: publisher.pending == 0, 10, "the outage to be noticed")
        own_kafka_broker.restart()  # empty: in-memory topics are gone
        await create_topic(bootstrap, kafka_topic)

        later: list[Event] = []
        deadline = time.monotonic() + 15
        while publisher.stats.published < 1 + 3 and time.monotonic() < deadline:
            event = events.make("exec-a", EventType.TASK_PROGRESS)
            later.append(event)
            publisher.publish(event)
            await asyncio.sleep(0.1)
        await publisher.close()
        records = await consume(bootstrap, kafka_topic, publisher.stats.published - 1)
        return later, records, publisher.stats

    later, records, stats = asyncio.run(scenario())
    assert stats.published >= 4, stats
    assert settled(stats) == stats.received
    arrived = [decode(r.value) for r in by_execution(records)["exec-a"]]
    seqs = [e.seq for e in arrived]
    assert seqs == sorted(seqs), "in order"
    delivered_later = [e for e in arrived if e.seq >= later[0].seq]
    assert len(delivered_later) >= 3
    assert delivered_later == later[-len(delivered_later) :], "the newest events, in order"
    # Events sent into the outage count as failed; one in flight when the broker came back
    # may still have arrived (never out of order): at most those.
    assert len(arrived) - len(delivered_later) <= stats.failed


def test_a_broker_down_at_start_is_connected_to_when_it_comes_up(
    own_kafka_broker: KafkaBroker, kafka_topic: str
) -> None:
    async def scenario() -> tuple[bool, float, list[Any], PublisherStats]:
        bootstrap = own_kafka_broker.bootstrap
        own_kafka_broker.stop()
        publisher = KafkaPublisher(kafka_settings(bootstrap, kafka_topic))
        began = time.monotonic()
        connected = await publisher.start()
        started_in = time.monotonic() - began
        events = Events()
        for event_type in LIFECYCLE:
            publisher.publish(events.make("exec-a", event_type))
        own_kafka_broker.restart()
        await create_topic(bootstrap, kafka_topic)
        await wait_for(lambda: publisher.stats.published == len(LIFECYCLE), 15, "delivery")
        await publisher.close()
        records = await consume(bootstrap, kafka_topic, len(LIFECYCLE))
        return connected, started_in, records, publisher.stats

    connected, started_in, records, stats = asyncio.run(scenario())
    assert not connected and started_in < 1.0
    assert [decode(r.value).type for r in records] == LIFECYCLE
    assert stats == PublisherStats(received=len(LIFECYCLE), published=len(LIFECYCLE))


def test_malformed_messages_on_the_topic_decode_as_errors(
    kafka_broker: KafkaBroker, kafka_topic: str
) -> None:
    good = Events().make("exec-a", EventType.TASK_SUCCEEDED)
    bad = [
        b"{not json",
        b"",
        b'{"schema_version": 99, "type": "task.teleported"}',
        b'{"schema_version": 1, "type": "task.started"}',
        b"\x00\x01\x02",
    ]

    async def scenario() -> list[Any]:
        from aiokafka import AIOKafkaProducer

        await create_topic(kafka_broker.bootstrap, kafka_topic, partitions=1)
        producer = AIOKafkaProducer(bootstrap_servers=kafka_broker.bootstrap)
        await producer.start()
        try:
            for value in [*bad, encode(good)]:
                await producer.send_and_wait(kafka_topic, value, key=encode_key(good))
        finally:
            await producer.stop()
        return await consume(kafka_broker.bootstrap, kafka_topic, len(bad) + 1)

    records = asyncio.run(scenario())
    assert len(records) == len(bad) + 1
    errors = []
    for record in records[:-1]:
        with pytest.raises(BadEventError) as caught:
            decode(record.value)
        errors.append(str(caught.value))
    assert "not a JSON event" in errors[0]
    assert "unknown schema_version 99" in errors[2]
    assert "missing field 'execution_id'" in errors[3]
    assert decode(records[-1].value) == good
