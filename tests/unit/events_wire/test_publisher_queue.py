"""The publisher's queue policy, without a broker: progress gives way first, everything counts."""

from __future__ import annotations

import asyncio
import ssl
import threading
import time
from pathlib import Path

import pytest

from workbench.config import Settings
from workbench.errors import ProfileError
from workbench.events.kafka import KafkaPublisher, producer_options
from workbench.events.models import Event, EventType
from workbench.events.queue import EventQueue, PublisherStats

_seq = iter(range(1, 10**9))


def event(
    event_type: EventType = EventType.TASK_STARTED,
    execution: str = "e1",
    task: str | None = "t1",
    progress: float | None = None,
) -> Event:
    return Event(
        type=event_type,
        execution_id=execution,
        workflow_id="w",
        task_id=task,
        progress=progress,
        instance_id="i",
        seq=next(_seq),
        timestamp=time.time(),
    )


def progress(task: str = "t1", fraction: float = 0.5, execution: str = "e1") -> Event:
    return event(EventType.TASK_PROGRESS, execution, task, fraction)


def accounted(stats: PublisherStats, queued: int) -> bool:
    settled = stats.published + stats.coalesced + stats.dropped + stats.failed
    return stats.received == settled + queued


def test_below_the_bound_nothing_is_coalesced_and_order_is_kept() -> None:
    queue = EventQueue(10, PublisherStats())
    events = [event(), progress(fraction=0.1), progress(fraction=0.2), event()]
    for item in events:
        queue.put(item)
    assert queue.take(10) == events
    assert queue.stats == PublisherStats(received=4)


def test_take_is_fifo_in_slices() -> None:
    queue = EventQueue(10, PublisherStats())
    events = [event() for _ in range(5)]
    for item in events:
        queue.put(item)
    assert queue.take(2) == events[:2]
    assert queue.take(2) == events[2:4]
    assert queue.take(2) == events[4:]
    assert queue.take(2) == []


def test_when_full_a_progress_replaces_the_queued_one_of_its_task() -> None:
    queue = EventQueue(3, PublisherStats())
    started, old, other = event(), progress("t1", 0.1), event(task="t2")
    for item in (started, old, other):
        queue.put(item)
    new = progress("t1", 0.2)
    queue.put(new)
    # The newer report goes to the back: seq numbers stay ascending per execution.
    assert queue.take(10) == [started, other, new]
    assert queue.stats.coalesced == 1 and queue.stats.dropped == 0


def test_same_task_in_another_execution_is_not_coalesced() -> None:
    queue = EventQueue(2, PublisherStats())
    a, b = progress("t1", 0.1, "e1"), progress("t1", 0.1, "e2")
    queue.put(a)
    queue.put(b)
    c = progress("t1", 0.2, "e2")
    queue.put(c)
    assert queue.take(10) == [a, c]
    assert queue.stats.coalesced == 1


def test_a_superseded_progress_goes_before_the_only_report_of_another_task() -> None:
    queue = EventQueue(3, PublisherStats())
    t1_old, t2_only, t1_new = progress("t1", 0.1), progress("t2", 0.1), progress("t1", 0.2)
    for item in (t1_old, t2_only, t1_new):
        queue.put(item)
    finished = event(EventType.TASK_SUCCEEDED, task="t3")
    queue.put(finished)
    assert queue.take(10) == [t2_only, t1_new, finished]
    assert queue.stats.coalesced == 1 and queue.stats.dropped == 0


def test_a_state_change_pushes_out_the_oldest_progress() -> None:
    queue = EventQueue(3, PublisherStats())
    started, p1, p2 = event(), progress("t1"), progress("t2")
    for item in (started, p1, p2):
        queue.put(item)
    failed = event(EventType.TASK_FAILED)
    queue.put(failed)
    assert queue.take(10) == [started, p2, failed]
    assert queue.stats.dropped == 1 and queue.stats.dropped_state_changes == 0


def test_a_new_progress_pushes_out_the_oldest_progress_of_another_task() -> None:
    queue = EventQueue(2, PublisherStats())
    started, p1 = event(), progress("t1")
    queue.put(started)
    queue.put(p1)
    p2 = progress("t2")
    queue.put(p2)
    assert queue.take(10) == [started, p2]
    assert queue.stats.dropped == 1


def test_progress_never_pushes_out_a_state_change() -> None:
    queue = EventQueue(2, PublisherStats())
    changes = [event(), event(EventType.TASK_SUCCEEDED)]
    for item in changes:
        queue.put(item)
    queue.put(progress())
    assert queue.take(10) == changes
    assert queue.stats.dropped == 1 and queue.stats.dropped_state_changes == 0


def test_only_a_queue_of_state_changes_loses_one_and_it_is_the_oldest() -> None:
    queue = EventQueue(2, PublisherStats())
    first, second, third = event(), event(), event(EventType.WORKFLOW_FINISHED, task=None)
    for item in (first, second, third):
        queue.put(item)
    assert queue.take(10) == [second, third]
    assert queue.stats.dropped == 1 and queue.stats.dropped_state_changes == 1


def test_the_index_follows_events_taken_from_the_front() -> None:
    queue = EventQueue(2, PublisherStats())
    p1 = progress("t1", 0.1)
    queue.put(p1)
    assert queue.take(1) == [p1]  # in flight now: not coalescible any more
    queue.put(event())
    queue.put(progress("t1", 0.2))
    queue.put(progress("t1", 0.3))
    assert [e.progress for e in queue.take(10)] == [None, 0.3]
    assert queue.stats.coalesced == 1


def test_a_flood_keeps_every_state_change_and_the_newest_progress_per_task() -> None:
    queue = EventQueue(50, PublisherStats())
    changes = []
    for step in range(1000):
        for task in ("a", "b", "c"):
            queue.put(progress(task, step / 1000))
        if step % 50 == 0:
            change = event(EventType.TASK_METRIC, task="a")
            changes.append(change)
            queue.put(change)
    assert len(queue) == 50
    left = queue.clear()
    assert [e for e in left if e.type is not EventType.TASK_PROGRESS] == changes
    newest = {e.task_id: e.progress for e in left if e.type is EventType.TASK_PROGRESS}
    assert newest == {"a": 0.999, "b": 0.999, "c": 0.999}
    assert queue.stats.dropped_state_changes == 0
    assert accounted(queue.stats, queued=0) is False  # clear() hands them back uncounted
    assert accounted(queue.stats, queued=len(left))


def test_every_event_is_accounted_for() -> None:
    queue = EventQueue(7, PublisherStats())
    kinds = [EventType.TASK_PROGRESS, EventType.TASK_STARTED, EventType.TASK_PROGRESS]
    for n in range(500):
        queue.put(event(kinds[n % 3], task=f"t{n % 5}", progress=0.5))
        if n % 11 == 0:
            queue.stats.published += len(queue.take(2))  # what the sender would count
    assert accounted(queue.stats, queued=len(queue))


def test_maxsize_must_be_positive() -> None:
    with pytest.raises(ValueError):
        EventQueue(0, PublisherStats())


# -- the publisher without a broker -------------------------------------------------------------


def settings(**values: object) -> Settings:
    base: dict[str, object] = {
        "kafka_bootstrap_servers": "127.0.0.1:1",  # nothing listens on port 1
        "events_queue_size": 5,
        "events_send_timeout_s": 0.2,
        "events_shutdown_timeout_s": 0.5,
    }
    return Settings(**(base | values))


def test_publish_before_start_and_after_close_never_raises() -> None:
    publisher = KafkaPublisher(settings())
    for _ in range(8):
        publisher.publish(event())
    assert publisher.pending == 5 and publisher.stats.dropped == 3

    async def close() -> None:
        await publisher.close()

    asyncio.run(close())
    publisher.publish(event())
    stats = publisher.stats
    assert (stats.received, stats.dropped, stats.dropped_state_changes) == (9, 9, 9)


def test_publish_does_not_raise_on_a_broken_event() -> None:
    publisher = KafkaPublisher(settings())
    publisher.publish(object())  # type: ignore[arg-type]
    assert publisher.pending == 0


def test_no_broker_start_returns_promptly_and_close_keeps_its_deadline() -> None:
    async def scenario() -> tuple[bool, float, float, PublisherStats]:
        publisher = KafkaPublisher(settings())
        began = time.monotonic()
        connected = await publisher.start()
        started_in = time.monotonic() - began
        for n in range(20):
            publisher.publish(progress(f"t{n % 2}", n / 20))
            publisher.publish(event())
        began = time.monotonic()
        await publisher.close()
        return connected, started_in, time.monotonic() - began, publisher.stats

    connected, started_in, closed_in, stats = asyncio.run(scenario())
    assert not connected
    assert started_in < 0.5
    assert closed_in < 0.5 + 0.2
    assert stats.received == 40 and stats.published == 0
    assert stats.dropped + stats.coalesced == 40


def test_publish_from_other_threads_is_counted() -> None:
    async def scenario() -> PublisherStats:
        publisher = KafkaPublisher(settings(events_queue_size=10_000))
        await publisher.start()

        def feed() -> None:
            for _ in range(500):
                publisher.publish(event())

        threads = [threading.Thread(target=feed) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        await publisher.close()
        return publisher.stats

    stats = asyncio.run(scenario())
    assert stats.received == 2000 and stats.dropped == 2000


def test_options_pass_security_settings_through(tmp_path: Path) -> None:
    cafile = tmp_path / "ca.pem"
    cafile.write_text(TEST_CA_PEM)
    options = producer_options(
        settings(
            kafka_security_protocol="SASL_SSL",
            kafka_sasl_mechanism="SCRAM-SHA-512",
            kafka_sasl_username="svc",
            kafka_sasl_password="s3cret",
            kafka_ssl_cafile=cafile,
        )
    )
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert options["sasl_plain_username"] == "svc"
    assert options["sasl_plain_password"] == "s3cret"
    assert isinstance(options["ssl_context"], ssl.SSLContext)


def test_plaintext_has_no_tls_or_sasl() -> None:
    options = producer_options(settings())
    assert options["security_protocol"] == "PLAINTEXT"
    assert "ssl_context" not in options and "sasl_mechanism" not in options


@pytest.mark.parametrize(
    ("values", "says"),
    [
        ({"kafka_bootstrap_servers": None}, "kafka_bootstrap_servers is not set"),
        ({"kafka_security_protocol": "SASL_PLAINTEXT"}, "needs kafka_sasl_username"),
        ({"kafka_security_protocol": "SSL", "kafka_ssl_cafile": "/nope.pem"}, "/nope.pem"),
    ],
)
def test_unusable_settings_fail_at_construction(values: dict[str, object], says: str) -> None:
    with pytest.raises(ProfileError, match=says):
        KafkaPublisher(settings(**values))


@pytest.mark.parametrize(
    "values",
    [{"kafka_security_protocol": "plaintext"}, {"kafka_sasl_mechanism": "GSSAPI"}],
)
def test_settings_validate_protocol_and_mechanism(values: dict[str, object]) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        settings(**values)


# A self-signed CA certificate (no key anywhere): all an SSL context needs to load a cafile.
TEST_CA_PEM = """\
-----BEGIN CERTIFICATE-----
MIIBjjCCATWgAwIBAgIUHAwpOJycBlM9X+8sDad41i21R30wCgYIKoZIzj0EAwIw
HDEaMBgGA1UEAwwRd29ya2JlbmNoLXRlc3QtY2EwIBcNMjYxMTI0MjMzMjI0WhgP
MjEyNjEwMzEyMzMyMjRaMBwxGjAYBgNVBAMMEXdvcmtiZW5jaC10ZXN0LWNhMFkw
EwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEW6SkvGqDFRskHAXE5N568VQKBKPFYyPF
PkRFKeAgIb+EeVoOuxI2tRNR7SX3XHQ68M6TtddHjWGg+XTbH/3LdaNTMFEwHQYD
VR0OBBYEFOLRlaVGyhhqicD3PM4Cd7zxTSiKMB8GA1UdIwQYMBaAFOLRlaVGyhhq
icD3PM4Cd7zxTSiKMA8GA1UdEwEB/wQFMAMBAf8wCgYIKoZIzj0EAwIDRwAwRAIg
QtOV951EcQEEZEL+rTjkYn3IWvxg9FrniZFgw79bl3ACID9w7rSeXtUCIDZZ0ioE
x3jmBbXKao+2mUmhrz8Sb/nw
-----END CERTIFICATE-----
"""


def test_an_overflowing_queue_is_reported_at_once_then_sparingly(caplog) -> None:
    publisher = KafkaPublisher(settings())
    with caplog.at_level("WARNING", logger="workbench.events.kafka"):
        for _ in range(50):
            publisher.publish(event())
    reports = [r for r in caplog.records if "event queue is full" in r.getMessage()]
    assert len(reports) == 1, "once, not for each of the 45 dropped events"
    assert "1 events dropped" in reports[0].getMessage()
