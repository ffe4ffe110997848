"""Events from Kafka for `watch`: a consumer of the whole topic that starts at its end.

No consumer group: every watcher reads every partition itself (a UI wants all events, not a
share of them) and commits nothing. aiokafka is imported when the source opens.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from workbench.errors import ProfileError
from workbench.events.kafka import producer_options
from workbench.events.models import Event
from workbench.events.watch import SourceUnavailable
from workbench.events.wire import BadEventError, decode

if TYPE_CHECKING:
    from workbench.config import Settings

log = logging.getLogger(__name__)

# The connection and security options a consumer shares with the producer.
_SHARED_OPTIONS = (
    "bootstrap_servers",
    "client_id",
    "security_protocol",
    "ssl_context",
    "sasl_mechanism",
    "sasl_plain_username",
    "sasl_plain_password",
)
# Tansu holds an empty fetch for the whole wait: a short one keeps getmany responsive.
_FETCH_MAX_WAIT_MS = 5
_POLL_MS = 200  # one getmany call waits at most this long for records


def consumer_options(settings: Settings, client_id: str | None = None) -> dict[str, Any]:
    """AIOKafkaConsumer keyword arguments: the producer's connection and SASL/TLS settings
    (checked the same way: ProfileError when they cannot work), for reading."""
    if not settings.kafka_bootstrap_servers:
        raise ProfileError("kafka_bootstrap_servers is not set: no Kafka to watch events on")
    options = producer_options(settings, client_id or "workbench-watch")
    return {name: value for name, value in options.items() if name in _SHARED_OPTIONS}


class KafkaSource:
    """The events on `settings.kafka_topic` published after `open()`, of one execution or all.

    A message that is not a readable event is skipped with a warning (counted in `skipped`).
    The source raises SourceUnavailable when it cannot connect within `connect_timeout_s`, or
    when, after `probe_after_s` without a record, the broker does not answer a cheap request
    (the partitions' end offsets) within `probe_timeout_s`: aiokafka itself retries a lost
    broker forever, silently to its caller.

    Tansu, the test broker, reports a partition's end as the start of its last batch plus one,
    not the high watermark as Kafka does: a source opened right after a batch of several
    events may still get the later ones of it, which the watcher's forward-only views absorb.
    """

    def __init__(
        self,
        settings: Settings,
        execution_id: str | None = None,
        *,
        client_id: str | None = None,
        connect_timeout_s: float = 5.0,
        probe_after_s: float = 1.0,
        probe_timeout_s: float = 1.5,
    ) -> None:
        self._options = consumer_options(settings, client_id)
        self._bootstrap = settings.kafka_bootstrap_servers
        self._topic = settings.kafka_topic
        self._key = execution_id.encode() if execution_id is not None else None
        self.execution_id = execution_id
        self.connect_timeout_s = connect_timeout_s
        self.probe_after_s = probe_after_s
        self.probe_timeout_s = probe_timeout_s
        self.skipped = 0
        self._consumer: Any = None
        self._ready: deque[Event] = deque()
        self._heard_at = 0.0  # monotonic time of the last sign of a live broker

    async def open(self) -> None:
        from aiokafka import AIOKafkaConsumer

        self._consumer = consumer = AIOKafkaConsumer(
            self._topic,
            **self._options,
            group_id=None,
            enable_auto_commit=False,
            # Only for partitions that appear after open() (the topic grew, or the broker came
            # back empty): everything in them is newer than open(). The others seek to the end.
            auto_offset_reset="earliest",
            fetch_max_wait_ms=_FETCH_MAX_WAIT_MS,
            request_timeout_ms=max(1000, int(self.connect_timeout_s * 1000)),
        )
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                await consumer.start()  # metadata of the topic (a broker may create it here)
                if not consumer.assignment():
                    raise SourceUnavailable(f"Kafka topic {self._topic} has no partitions")
                # Resolved here, not lazily at the first fetch: an event published after
                # open() returns must not fall before the position. An explicit seek, not
                # seek_to_end(): aiokafka lets the reset to "earliest" that start() began
                # win over it.
                ends = await consumer.end_offsets(list(consumer.assignment()))
                for partition, offset in ends.items():
                    consumer.seek(partition, offset)
        except SourceUnavailable:
            await self.close()
            raise
        except Exception as exc:
            await self.close()
            raise SourceUnavailable(
                f"Kafka at {self._bootstrap} not reachable: {str(exc) or type(exc).__name__}"
            ) from exc
        except BaseException:  # cancelled: leave no consumer behind
            await self.close()
            raise
        self._heard_at = time.monotonic()
        log.debug("watching Kafka topic %s at %s", self._topic, self._bootstrap)

    def __aiter__(self) -> KafkaSource:
        return self

    async def __anext__(self) -> Event:
        while not self._ready:
            await self._fetch()
        return self._ready.popleft()

    def drain(self) -> list[Event]:
        events = list(self._ready)
        self._ready.clear()
        return events

    async def close(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is None:
            return
        # In a task of its own: aiokafka's stop() can raise CancelledError from its fetcher
        # when the broker is gone, which must not pass for a cancellation of the caller.
        stopping = asyncio.ensure_future(consumer.stop())
        await asyncio.wait({stopping}, timeout=self.connect_timeout_s)
        if not stopping.done():
            stopping.cancel()
        elif not stopping.cancelled() and stopping.exception() is not None:
            log.debug("the Kafka consumer did not close cleanly: %s", stopping.exception())

    async def _fetch(self) -> None:
        consumer = self._consumer
        if consumer is None:
            raise SourceUnavailable("the Kafka source is not open")
        try:
            batches = await consumer.getmany(timeout_ms=_POLL_MS)
        except Exception as exc:  # aiokafka's own give-ups (authorization, ...)
            raise SourceUnavailable(f"reading Kafka topic {self._topic}: {exc}") from exc
        now = time.monotonic()
        if batches:
            self._heard_at = now
        elif now - self._heard_at >= self.probe_after_s:
            await self._probe()
            self._heard_at = time.monotonic()
        for records in batches.values():
            for record in records:
                event = self._read(record)
                if event is not None:
                    self._ready.append(event)

    def _read(self, record: Any) -> Event | None:
        if self._key is not None and record.key is not None and record.key != self._key:
            return None  # another execution's: not even decoded
        try:
            event = decode(record.value or b"")
        except BadEventError as exc:
            self.skipped += 1
            log.warning(
                "skipping message %s/%d@%d: %s", record.topic, record.partition, record.offset, exc
            )
            return None
        if self.execution_id is not None and event.execution_id != self.execution_id:
            return None
        return event

    async def _probe(self) -> None:
        """SourceUnavailable unless the broker answers for our partitions in time."""
        consumer = self._consumer
        try:
            partitions = list(consumer.assignment())
            request = consumer.end_offsets(partitions) if partitions else consumer.topics()
            await asyncio.wait_for(request, self.probe_timeout_s)
        except Exception as exc:
            raise SourceUnavailable(
                f"Kafka at {self._bootstrap} does not answer: {str(exc) or type(exc).__name__}"
            ) from exc
