"""Publishing events to Kafka without ever slowing or failing a workflow.

`KafkaPublisher.publish` only puts the event on a bounded queue (`EventQueue`); a background
task hands batches to aiokafka. When the queue is full, progress goes first: a queued progress
report is replaced by a newer one of the same task (coalesced), then the oldest progress is
dropped, and only then the oldest state change. Every event `publish` received ends up counted
in `stats`: published, coalesced, dropped or failed (or still pending).

aiokafka is imported only when the publisher connects, so `import workbench` stays light.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import threading
import time
from typing import TYPE_CHECKING, Any

from workbench.errors import ProfileError
from workbench.events.models import Event
from workbench.events.queue import EventQueue, PublisherStats, count_dropped
from workbench.events.wire import encode, encode_key

if TYPE_CHECKING:
    from workbench.config import Settings

log = logging.getLogger(__name__)

BATCH_SIZE = 500  # events handed to aiokafka per round: amortises the wait for acks
_ACK_GRACE_S = 0.2  # aiokafka expires a batch on its next retry, 100 ms after the timeout
_RETRY_FIRST_S = 0.1
_RETRY_MAX_S = 5.0
_SASL = ("SASL_PLAINTEXT", "SASL_SSL")
OVERFLOW_REPORT_S = 10.0  # how often an overflowing queue is reported, at most


def producer_options(settings: Settings, client_id: str | None = None) -> dict[str, Any]:
    """AIOKafkaProducer keyword arguments from the settings; ProfileError if they cannot
    work, so a bad profile fails at start-up, not in a retry loop in the background."""
    if not settings.kafka_bootstrap_servers:
        raise ProfileError("kafka_bootstrap_servers is not set: no Kafka to publish events to")
    protocol = settings.kafka_security_protocol
    options: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap_servers,
        "client_id": client_id or "workbench-events",
        "security_protocol": protocol,
        # The producer gives a batch up (fails its futures) after this, a little before the
        # sender stops waiting (_ACK_GRACE_S): what counts as failed has mostly really failed.
        "request_timeout_ms": max(100, int(settings.events_send_timeout_s * 1000)),
        "linger_ms": 2,
        "acks": 1,
    }
    if protocol in ("SSL", "SASL_SSL"):
        cafile = settings.kafka_ssl_cafile
        if cafile is not None and not cafile.is_file():
            raise ProfileError(f"kafka_ssl_cafile {cafile} is not a readable file")
        options["ssl_context"] = ssl.create_default_context(cafile=str(cafile) if cafile else None)
    if protocol in _SASL:
        password = settings.kafka_sasl_password
        if not settings.kafka_sasl_username or password is None:
            raise ProfileError(
                f"kafka_security_protocol {protocol} needs kafka_sasl_username and "
                "kafka_sasl_password"
            )
        options["sasl_mechanism"] = settings.kafka_sasl_mechanism or "PLAIN"
        options["sasl_plain_username"] = settings.kafka_sasl_username
        options["sasl_plain_password"] = password.get_secret_value()
    return options


class KafkaPublisher:
    """Publishes events to `settings.kafka_topic`, keyed by execution id.

    `publish` is safe from any thread and never blocks or raises; `start` and `close` run on
    the event loop that sends. A broker that is down at start or goes away costs dropped or
    failed events (counted), never a stalled caller.
    """

    def __init__(self, settings: Settings, *, client_id: str | None = None) -> None:
        self._overflow_reported_at = -OVERFLOW_REPORT_S
        self._options = producer_options(settings, client_id)
        self._bootstrap = settings.kafka_bootstrap_servers
        self._topic = settings.kafka_topic
        self._send_timeout_s = settings.events_send_timeout_s
        self._shutdown_timeout_s = settings.events_shutdown_timeout_s
        self.stats = PublisherStats()
        self._queue = EventQueue(settings.events_queue_size, self.stats)
        self._lock = threading.Lock()  # guards the queue and stats against other threads
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._wakeup = asyncio.Event()
        self._closing = asyncio.Event()
        self._first_attempt = asyncio.Event()
        self._sender: asyncio.Task[None] | None = None
        self._producer: Any = None  # the AIOKafkaProducer, once one is being started
        self._connected = False
        self._in_flight: list[Event] = []
        self._healthy = True
        self._stopping: asyncio.Future[Any] | None = None

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def pending(self) -> int:
        """Events queued or handed to Kafka but not settled yet."""
        with self._lock:
            return len(self._queue) + len(self._in_flight)

    async def start(self) -> bool:
        """Start sending in the background. Waits for the first connection attempt, at most
        the send timeout, and says whether it connected; if not, it keeps retrying with
        backoff while `publish` keeps queueing."""
        if self._sender is not None:
            return self.connected
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._sender = self._loop.create_task(self._run(), name="workbench-kafka-publisher")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._first_attempt.wait(), self._send_timeout_s)
        return self.connected

    def publish(self, event: Event) -> None:
        """Queue `event` for Kafka. Never blocks, never raises."""
        try:
            with self._lock:
                if self._closed:
                    self.stats.received += 1
                    count_dropped(self.stats, [event])
                    return
                lost = self.stats.coalesced + self.stats.dropped
                self._queue.put(event)
                overflowing = self.stats.coalesced + self.stats.dropped > lost
            if overflowing:
                self._report_overflow()
            self._wake()
        except Exception:  # a display feed must never fail a workflow
            log.exception("could not queue %s event for Kafka", getattr(event, "type", "?"))

    def _report_overflow(self) -> None:
        """Say so when the queue overflows: at once, then at most every OVERFLOW_REPORT_S."""
        now = time.monotonic()
        if now - self._overflow_reported_at >= OVERFLOW_REPORT_S:
            self._overflow_reported_at = now
            log.warning(
                "the event queue is full (Kafka slower than the events): %d progress "
                "reports coalesced, %d events dropped (%d of them state changes) so far",
                self.stats.coalesced,
                self.stats.dropped,
                self.stats.dropped_state_changes,
            )

    async def close(self, timeout: float | None = None) -> None:
        """Send what is queued, within `timeout` (default: events_shutdown_timeout_s) even
        when the broker never answers; what could not be sent by then counts as dropped."""
        if self._closed:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (self._shutdown_timeout_s if timeout is None else timeout)
        with self._lock:
            self._closed = True
        self._closing.set()
        self._wakeup.set()
        if self._sender is not None:
            # Keep a share of the budget for closing the producer's connections.
            flush_until = deadline - min(0.5, (deadline - loop.time()) / 3)
            await asyncio.wait({self._sender}, timeout=max(0.0, flush_until - loop.time()))
            if not self._sender.done():
                self._sender.cancel()
                await asyncio.wait({self._sender}, timeout=max(0.0, deadline - loop.time()))
        with self._lock:
            left = self._queue.clear()
            count_dropped(self.stats, left)
        if left:
            log.warning("closing the Kafka publisher: %d unsent events dropped", len(left))
        await self._stop_producer(deadline)
        log.info("Kafka publisher closed: %s", self.stats)

    # -- the sender task ---------------------------------------------------------------------

    def _wake(self) -> None:
        loop = self._loop
        if loop is None:
            return  # not started: start() drains what is queued
        if threading.get_ident() == self._loop_thread:
            self._wakeup.set()
        else:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nothing to wake
                loop.call_soon_threadsafe(self._wakeup.set)

    async def _run(self) -> None:
        producer = await self._connect()
        if producer is None:
            return
        while True:
            with self._lock:
                batch = self._queue.take(BATCH_SIZE)
                self._in_flight = batch
            if batch:
                await self._send(producer, batch)
                continue
            if self._closing.is_set():
                return
            self._wakeup.clear()
            with self._lock:
                empty = not self._queue
            if empty:  # checked after clear(): a publish in between has set it again
                await self._wakeup.wait()

    async def _connect(self) -> Any:
        """The started producer, retrying with backoff; None if close() came first."""
        from aiokafka import AIOKafkaProducer

        delay = _RETRY_FIRST_S
        while not self._closing.is_set():
            # Held before it starts: a close() that cancels the attempt still stops it.
            self._producer = producer = AIOKafkaProducer(**self._options)
            try:
                await asyncio.wait_for(producer.start(), self._send_timeout_s)
            except Exception as exc:
                self._producer = None
                await _stop_quietly(producer, self._send_timeout_s)
                if not self._first_attempt.is_set():  # once per outage, not every retry
                    log.warning(
                        "Kafka at %s not reachable (%s); events are queued (up to %d) "
                        "and sent once it is",
                        self._bootstrap,
                        str(exc) or type(exc).__name__,
                        self._queue.maxsize,
                    )
            else:
                log.info("publishing events to Kafka %s, topic %s", self._bootstrap, self._topic)
                self._connected = True
                return producer
            finally:
                self._first_attempt.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), delay)
            delay = min(delay * 2, _RETRY_MAX_S)
        return None

    async def _send(self, producer: Any, batch: list[Event]) -> None:
        """Hand `batch` to aiokafka and wait for its acks, all within the send timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._send_timeout_s + _ACK_GRACE_S
        handed: list[asyncio.Future[Any] | None] = []  # None: refused (too big, unencodable)
        error: BaseException | None = None
        settled = False
        try:
            try:
                async with asyncio.timeout_at(deadline):
                    for event in batch:
                        try:
                            value = encode(event)
                            handed.append(
                                await producer.send(self._topic, value, key=encode_key(event))
                            )
                        except Exception as exc:  # this event only; the timeout is not one
                            error = exc
                            handed.append(None)
            except TimeoutError as exc:
                error = exc
            futures = [f for f in handed if f is not None]
            if futures:
                # asyncio.wait, not gather: a future left pending must not be cancelled.
                await asyncio.wait(futures, timeout=max(0.0, deadline - loop.time()))
            settled = True
        finally:
            # Cancelled by close(): what was not acknowledged yet counts as dropped.
            self._settle(batch, handed, error, dropped=not settled)

    def _settle(
        self,
        batch: list[Event],
        handed: list[asyncio.Future[Any] | None],
        error: BaseException | None,
        dropped: bool,
    ) -> None:
        unacked = batch[len(handed) :]  # never handed over: the deadline came first
        for event, future in zip(batch, handed, strict=False):
            if future is None or not future.done():
                unacked.append(event)
                if future is not None:  # aiokafka settles it later: take its error then
                    future.add_done_callback(_outcome)
            elif _outcome(future) is not None:
                unacked.append(event)
                error = error or _outcome(future)
        with self._lock:
            self._in_flight = []
            self.stats.published += len(batch) - len(unacked)
            if dropped:
                count_dropped(self.stats, unacked)
            else:
                self.stats.failed += len(unacked)
        if dropped:
            return
        if unacked:
            if self._healthy:
                log.warning(
                    "Kafka did not take %d of %d events within %.1f s (%s); the workflow "
                    "goes on, subscribers see a gap",
                    len(unacked),
                    len(batch),
                    self._send_timeout_s,
                    error or "no acknowledgement",
                )
            self._healthy = False
        elif not self._healthy:
            log.info("Kafka takes events again")
            self._healthy = True

    async def _stop_producer(self, deadline: float) -> None:
        """Close the producer's connections, by the deadline if it can. aiokafka flushes
        before it closes, and with the broker gone it gives its batches up only after the
        send timeout: then that ends in the background instead of holding up close()."""
        producer, self._producer = self._producer, None
        self._connected = False
        if producer is None:
            return
        stopping = asyncio.ensure_future(producer.stop())
        self._stopping = stopping  # a running task needs a reference
        remaining = max(0.0, deadline - asyncio.get_running_loop().time())
        await asyncio.wait({stopping}, timeout=remaining)
        if not stopping.done():
            log.info("the Kafka producer finishes closing in the background")
        stopping.add_done_callback(_log_stop_failure)


def publish_batch(settings: Settings, events: list[Event], client_id: str) -> int:
    """Send a few events of a change just made (a CLI command, a UI action) to Kafka and return
    how many arrived, within the publisher's own timeouts; blocking, on a loop of its own. A
    broker that is away costs the caller a warning, never the change: it is made already."""
    loggers = [logging.getLogger(n) for n in ("aiokafka", __name__)]
    levels = [logger.level for logger in loggers]
    for logger in loggers:  # the publisher would say it retries in the background: it will not
        logger.setLevel(logging.CRITICAL)

    async def send() -> int:
        publisher = KafkaPublisher(settings, client_id=client_id)
        await publisher.start()
        for event in events:
            publisher.publish(event)
        await publisher.close()
        return publisher.stats.published

    try:
        return asyncio.run(send())
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def _outcome(future: asyncio.Future[Any]) -> BaseException | None:
    """A settled future's error (retrieved: no 'exception never retrieved' noise)."""
    if future.cancelled():
        return asyncio.CancelledError()
    return future.exception()


def _log_stop_failure(stopping: asyncio.Future[Any]) -> None:
    if not stopping.cancelled() and stopping.exception() is not None:
        log.warning("the Kafka producer did not close cleanly: %s", stopping.exception())


async def _stop_quietly(producer: Any, timeout: float) -> None:
    try:
        await asyncio.wait_for(producer.stop(), timeout)
    except Exception as exc:
        log.warning("the Kafka producer did not close cleanly within %.1f s: %s", timeout, exc)
