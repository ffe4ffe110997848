"""Event stream figures on this machine, on one Kafka-API broker (Tansu, started here).

    python benchmarks/events.py [--messages 2000] [--events 50000] [--fetch-wait-ms 5]

Raw round trip: one message at a time, aiokafka producer -> broker -> aiokafka consumer
(group-less, on the partition), from `send` until the consumer holds it; p50 and p99. This is
the floor the subscriber's latency is compared with.

Subscriber latency: events stamped as the publisher takes them, received by `KafkaSource` (the
live feed of `watch`) on another thread, at 1,000 and 10,000 events/s; p50 and p99 of the delay,
and p99 against the raw round trip's.

Publisher rate: events one `KafkaPublisher` gets acknowledged per second, fed as fast as its
queue takes them (the feeder waits while half the queue is pending, so nothing is dropped),
and what one `publish()` call costs its caller.

WORKBENCH_TEST_KAFKA=host:port measures another Kafka instead of starting Tansu.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # workbench and tests.support, from a plain checkout

from benchmarks.timing import LatencyRow, row  # noqa: E402
from tests.support.kafka_broker import KafkaBroker, create_topic  # noqa: E402
from workbench.config import Settings  # noqa: E402
from workbench.events.kafka import KafkaPublisher  # noqa: E402
from workbench.events.models import Event, EventType  # noqa: E402

WARMUP = 100


@dataclass(frozen=True)
class Rate:
    events: int
    events_per_s: float
    publish_call_us: float
    dropped: int


@contextlib.contextmanager
def broker_at(bootstrap: str | None) -> Iterator[str]:
    """`bootstrap` as is, or a broker started for the block."""
    if bootstrap is not None:
        yield bootstrap
        return
    with KafkaBroker() as broker:
        yield broker.bootstrap


def measure_raw_round_trip(
    messages: int = 2000, bootstrap: str | None = None, fetch_wait_ms: int = 5
) -> LatencyRow:
    """p50/p99 of one aiokafka produce -> consume round trip, one message in flight."""
    with broker_at(bootstrap) as address:
        result = asyncio.run(_raw_round_trip(address, messages, fetch_wait_ms))
    print(f"raw aiokafka produce -> consume, {messages} messages one at a time")
    print(f"{'':<24}{'p50 ms':>9}{'p99 ms':>9}")
    print(f"{result.name:<24}{result.p50_ms:>9.3f}{result.p99_ms:>9.3f}")
    return result


async def _raw_round_trip(bootstrap: str, messages: int, fetch_wait_ms: int) -> LatencyRow:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

    topic = f"bench.raw.{uuid.uuid4().hex[:8]}"
    await create_topic(bootstrap, topic, partitions=1)
    partition = TopicPartition(topic, 0)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0)
    # The consumer's long poll: how long the broker may hold an empty fetch. A subscriber
    # uses the same setting, so the comparison is like for like.
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, fetch_max_wait_ms=fetch_wait_ms
    )
    await producer.start()
    await consumer.start()
    try:
        consumer.assign([partition])
        await consumer.seek_to_end(partition)
        payload = b"x" * 300  # about one event's JSON
        samples: list[float] = []
        for n in range(WARMUP + messages):
            began = time.perf_counter()
            await producer.send(topic, payload, key=b"exec")
            await consumer.getone(partition)
            if n >= WARMUP:
                samples.append(time.perf_counter() - began)
    finally:
        await consumer.stop()
        await producer.stop()
    return row(f"fetch_max_wait {fetch_wait_ms} ms", [int(x * 1e9) for x in samples])


def measure_publisher_rate(events: int = 50_000, bootstrap: str | None = None) -> Rate:
    """Events/s one KafkaPublisher gets acknowledged, and the cost of one publish() call."""
    with broker_at(bootstrap) as address:
        result = asyncio.run(_publisher_rate(address, events))
    print(f"\nKafkaPublisher, {events:,} state-change events, one execution per 100 events")
    print(f"sustained: {result.events_per_s:,.0f} events/s acknowledged")
    print(f"publish(): {result.publish_call_us:.2f} us per call (the caller's whole cost)")
    if result.dropped:
        print(f"dropped: {result.dropped} (the feeder should have prevented this)")
    return result


async def _publisher_rate(bootstrap: str, count: int) -> Rate:
    topic = f"bench.events.{uuid.uuid4().hex[:8]}"
    await create_topic(bootstrap, topic, partitions=3)
    settings = Settings(kafka_bootstrap_servers=bootstrap, kafka_topic=topic)
    publisher = KafkaPublisher(settings)
    if not await publisher.start():
        raise RuntimeError(f"no Kafka at {bootstrap}")
    events = [
        Event(
            type=EventType.TASK_SUCCEEDED,
            execution_id=f"exec-{n // 100}",
            workflow_id="bench",
            task_id=f"task-{n % 100}",
            status="succeeded",
            metrics={"auc": 0.93, "logloss": 0.21},
            data={"worker": "tcp://10.0.0.7:40123", "duration_s": 1.25},
            instance_id="instance-1",
            seq=n % 100 + 1,
            timestamp=time.time(),
        )
        for n in range(count)
    ]
    high_water = settings.events_queue_size // 2
    in_publish = 0.0
    began = time.perf_counter()
    for n, event in enumerate(events):
        if n % 256 == 0:
            while publisher.pending > high_water:
                await asyncio.sleep(0.0005)
            await asyncio.sleep(0)  # the sender shares this loop, as in an orchestrator
        call = time.perf_counter()
        publisher.publish(event)
        in_publish += time.perf_counter() - call
    while publisher.stats.published + publisher.stats.failed < count:
        await asyncio.sleep(0.001)
    elapsed = time.perf_counter() - began
    await publisher.close()
    stats = publisher.stats
    if stats.published != count:
        print(f"warning: {stats}")
    return Rate(count, stats.published / elapsed, in_publish / count * 1e6, stats.dropped)


def measure_subscriber_latency(
    rates: tuple[int, ...] = (1_000, 10_000), seconds: float = 3.0, bootstrap: str | None = None
) -> list[LatencyRow]:
    """State change -> subscriber: events stamped when published through `KafkaPublisher`,
    received by `KafkaSource` (the live feed `watch` uses) in another thread with its own
    loop, as a UI would; p50/p99 of the delay at each paced rate."""
    rows = []
    with broker_at(bootstrap) as address:
        for rate in rates:
            delays = asyncio.run(_subscriber_latency(address, rate, seconds))
            rows.append(row(f"{rate:,} events/s", [int(d * 1e9) for d in delays]))
    print(f"\nstate change -> subscriber (publisher -> broker -> KafkaSource), {seconds:g} s each")
    print(f"{'rate':<24}{'p50 ms':>9}{'p99 ms':>9}  target p99 <= 50 ms")
    for result in rows:
        verdict = "met" if result.p99_ms <= 50 else "NOT met"
        print(f"{result.name:<24}{result.p50_ms:>9.3f}{result.p99_ms:>9.3f}  {verdict}")
    return rows


async def _subscriber_latency(bootstrap: str, rate: int, seconds: float) -> list[float]:
    import threading

    from workbench.events.kafka_source import KafkaSource

    topic = f"bench.watch.{uuid.uuid4().hex[:8]}"
    await create_topic(bootstrap, topic, partitions=3)
    settings = Settings(kafka_bootstrap_servers=bootstrap, kafka_topic=topic)
    count = int(rate * seconds)
    delays: list[float] = []
    ready, done = threading.Event(), threading.Event()

    def consume() -> None:
        async def run() -> None:
            source = KafkaSource(settings)
            await source.open()
            ready.set()
            async for event in source:
                delays.append(time.time() - event.timestamp)
                if len(delays) >= count:
                    break
            await source.close()

        asyncio.run(run())
        done.set()

    consumer = threading.Thread(target=consume, daemon=True)
    consumer.start()
    ready.wait(30)
    publisher = KafkaPublisher(settings)
    if not await publisher.start():
        raise RuntimeError(f"no Kafka at {bootstrap}")
    began = time.perf_counter()
    for n in range(count):
        due = began + n / rate
        pause = due - time.perf_counter()
        if pause > 0:
            await asyncio.sleep(pause)
        publisher.publish(
            Event(
                type=EventType.TASK_STARTED,
                execution_id=f"exec-{n % 50}",
                workflow_id="bench",
                task_id=f"task-{n}",
                status="running",
                instance_id="instance-1",
                seq=n // 50 + 1,
                timestamp=time.time(),
            )
        )
    await asyncio.to_thread(done.wait, 60)
    await publisher.close()
    return delays


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000, help="Raw round trips timed.")
    parser.add_argument("--events", type=int, default=50_000, help="Events for the rate.")
    parser.add_argument(
        "--fetch-wait-ms", type=int, default=5, help="Consumers' fetch_max_wait_ms."
    )
    args = parser.parse_args()
    if args.fetch_wait_ms < 1:
        # With 0, aiokafka and Tansu were seen to stall (an empty fetch answered at once,
        # again and again, the message never handed over).
        parser.error("--fetch-wait-ms must be at least 1")

    with KafkaBroker() as broker:  # one broker for every section: figures side by side
        print(f"broker: {broker.bootstrap} ({'external' if broker.external else 'Tansu'})\n")
        raw = measure_raw_round_trip(args.messages, broker.bootstrap, args.fetch_wait_ms)
        measure_publisher_rate(args.events, broker.bootstrap)
        for result in measure_subscriber_latency(bootstrap=broker.bootstrap):
            ratio = result.p99_ms / raw.p99_ms
            verdict = "met" if ratio <= 2 else "NOT met"
            print(f"{result.name}: p99 {ratio:.2f}x the raw round trip (target <= 2x: {verdict})")


if __name__ == "__main__":
    main()
