"""A `StateStore` that rides out Redis outages: retries, a circuit breaker, buffered commits.

`ResilientStateStore(inner)` is itself a `StateStore`. A transient failure (redis-py's
`ConnectionError` or `TimeoutError`, `OSError`) is retried (tenacity: exponential backoff and
jitter, well within a second). After `breaker_fail_max` retried calls in a row failed, a
circuit breaker (pybreaker) makes calls fail fast for `breaker_reset_s`; then one trial call
goes through, and its success closes the breaker. While the store is unreachable:

- owner commits (`commit_task`, `commit_execution`) are buffered in call order and answered
  `DEFERRED` (`ok=True`, `deferred=True`), so running executions go on; beyond `max_buffered`
  waiting commits, a commit raises `StoreUnavailableError` rather than anything being dropped;
- `heartbeat` is skipped (peers see this instance expire, as they should);
- every other call raises `StoreUnavailableError`.

`flush()` replays buffered commits in order; it is also tried at the start of every later call
the breaker lets through, so they land as soon as Redis is back. New commits queue behind
waiting ones: the store sees each execution's commits in the order they were made. A replay
the store refuses (NOT_OWNER: re-assigned meanwhile) is logged and returned, never raised.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, Literal, NoReturn, TypeVar
from urllib.parse import urlsplit, urlunsplit

import pybreaker
import redis.exceptions
from tenacity import (
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)

from workbench.coordination.base import InstanceInfo, StateStore, StoredExecution, WriteResult
from workbench.dag.states import WorkflowStatus
from workbench.errors import WorkbenchError

log = logging.getLogger(__name__)

T = TypeVar("T")

# What an unreachable or overloaded Redis raises. Anything else means the store answered.
TRANSIENT: tuple[type[Exception], ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    OSError,
)


class StoreUnavailableError(WorkbenchError):
    """The state store cannot be reached (or too many commits wait for it)."""

    retryable = True


@dataclass(frozen=True)
class DeferredWrite(WriteResult):
    """A commit accepted while the store is unreachable: buffered, not yet checked by the
    store. It lands (or is refused, see `flush()`) when the store answers again."""

    deferred: bool = True


DEFERRED = DeferredWrite(ok=True)


@dataclass(frozen=True)
class BufferedCommit:
    """An owner commit waiting for the store, replayed exactly as it was called."""

    method: Literal["commit_task", "commit_execution"]
    execution_id: str
    owner: str
    epoch: int
    record: Mapping[str, Any]
    task_id: str | None = None  # commit_task
    status: WorkflowStatus | None = None  # commit_execution

    def apply(self, store: StateStore) -> WriteResult:
        if self.method == "commit_task":
            assert self.task_id is not None
            return store.commit_task(
                self.execution_id, self.owner, self.epoch, self.task_id, self.record
            )
        assert self.status is not None
        return store.commit_execution(
            self.execution_id, self.owner, self.epoch, self.status, self.record
        )

    def describe(self) -> str:
        what = f"task {self.task_id}" if self.task_id is not None else f"status {self.status}"
        return f"{self.method} of {what} in execution {self.execution_id} (epoch {self.epoch})"


class _Unavailable(Exception):
    """Internal: the store did not answer (retries exhausted or breaker open)."""


class _ClockStorage(pybreaker.CircuitMemoryStorage):
    """pybreaker's memory storage, timed by our clock: pybreaker compares `datetime.now()`
    with `opened_at + reset_timeout`, so `opened_at` is reported relative to now by however
    long *our* clock says the breaker has been open. Tests can then travel in time."""

    def __init__(self, clock: Callable[[], float]) -> None:
        super().__init__(pybreaker.STATE_CLOSED)
        self._clock = clock
        self._opened_clock: float | None = None
        self._tz: Any = UTC  # pybreaker 1.2 compares naive UTC datetimes: mirror its kind

    def open_for(self) -> float:
        return 0.0 if self._opened_clock is None else self._clock() - self._opened_clock

    @property
    def opened_at(self) -> datetime | None:
        if self._opened_clock is None:
            return None
        now = datetime.now(UTC).replace(tzinfo=self._tz)
        return now - timedelta(seconds=self.open_for())

    @opened_at.setter
    def opened_at(self, now: datetime) -> None:
        self._opened_clock = self._clock()
        self._tz = now.tzinfo


class _LogTransitions(pybreaker.CircuitBreakerListener):
    def __init__(self, where: str, reset_s: float) -> None:
        self.where, self.reset_s = where, reset_s

    def state_change(self, cb: pybreaker.CircuitBreaker, old: Any, new: Any) -> None:
        if new.name == pybreaker.STATE_OPEN:
            log.warning(
                "%s is unreachable: calls to it fail fast for %.1f s; owner commits are "
                "buffered until it answers",
                self.where,
                self.reset_s,
            )
        elif new.name == pybreaker.STATE_CLOSED:
            log.info("%s answers again", self.where)


def _raise(exc: BaseException) -> NoReturn:
    raise exc


def _noop() -> None: ...


def _where(inner: StateStore) -> str:
    """The store as messages name it: its `url` if it has one, without credentials."""
    url = getattr(inner, "url", None)
    if not isinstance(url, str):
        return f"the state store ({type(inner).__name__})"
    parts = urlsplit(url)
    bare = urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
    return f"{'Redis' if parts.scheme.startswith('redis') else 'the state store'} at {bare}"


class ResilientStateStore:
    """Wraps a `StateStore` with retries, a circuit breaker and buffered owner commits.
    Thread-safe: calls may come from several threads at once."""

    def __init__(
        self,
        inner: StateStore,
        *,
        retry_attempts: int = 3,
        backoff_base_s: float = 0.05,
        backoff_max_s: float = 0.5,
        breaker_fail_max: int = 5,
        breaker_reset_s: float = 2.0,
        max_buffered: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
        name: str | None = None,  # how messages name the store, e.g. "Redis at redis://h:6379"
    ) -> None:
        self._inner = inner
        self._where = name or _where(inner)
        self._reset_s = breaker_reset_s
        self._max_buffered = max_buffered
        self._retrying = Retrying(
            stop=stop_after_attempt(retry_attempts),
            # Exponential, plus jitter so that instances cut off together don't retry in step.
            wait=wait_exponential(multiplier=backoff_base_s, max=backoff_max_s)
            + wait_random(0, backoff_base_s),
            retry=retry_if_exception_type(TRANSIENT),
            reraise=True,
        )
        self._storage = _ClockStorage(clock)
        self._breaker = pybreaker.CircuitBreaker(
            fail_max=breaker_fail_max,
            reset_timeout=breaker_reset_s,
            # An error the store answered with (a bad key, a script error) is no outage.
            exclude=[lambda exc: not isinstance(exc, TRANSIENT)],
            state_storage=self._storage,
            listeners=[_LogTransitions(self._where, breaker_reset_s)],
        )
        self._buffer: deque[BufferedCommit] = deque()
        self._lock = threading.Lock()  # guards _buffer
        self._flush_lock = threading.Lock()  # one flush at a time: replays stay in order

    # -- state ---------------------------------------------------------------------------------
    @property
    def degraded(self) -> bool:
        """True while the breaker is not closed or commits wait to be replayed."""
        return self._breaker.current_state != pybreaker.STATE_CLOSED or bool(self._buffer)

    @property
    def buffered(self) -> int:
        """Owner commits waiting for the store."""
        return len(self._buffer)

    def flush(self) -> list[tuple[BufferedCommit, WriteResult]]:
        """Replay buffered commits in order; return each replayed one with the store's answer
        (refusals included, logged, not raised). Stops at the first commit the store does not
        answer, keeping it and everything after it for a later flush."""
        replayed: list[tuple[BufferedCommit, WriteResult]] = []
        with self._flush_lock, contextlib.suppress(_Unavailable):
            self._drain(replayed)
        return replayed

    # -- executions ----------------------------------------------------------------------------
    def create_execution(self, execution: StoredExecution) -> None:
        self._call("create_execution", partial(self._inner.create_execution, execution))

    def get_execution(self, execution_id: str) -> StoredExecution | None:
        return self._call("get_execution", partial(self._inner.get_execution, execution_id))

    def list_executions(
        self, *, owner: str | None = None, status: WorkflowStatus | None = None
    ) -> list[StoredExecution]:
        fn = partial(self._inner.list_executions, owner=owner, status=status)
        return self._call("list_executions", fn)

    def pending(self) -> list[str]:
        return self._call("pending", self._inner.pending)

    def assign(
        self, execution_id: str, instance_id: str, *, leader: str, token: int
    ) -> WriteResult:
        fn = partial(self._inner.assign, execution_id, instance_id, leader=leader, token=token)
        return self._call("assign", fn)

    def commit_task(
        self, execution_id: str, owner: str, epoch: int, task_id: str, record: Mapping[str, Any]
    ) -> WriteResult:
        commit = BufferedCommit("commit_task", execution_id, owner, epoch, record, task_id=task_id)
        return self._commit(commit)

    def commit_execution(
        self,
        execution_id: str,
        owner: str,
        epoch: int,
        status: WorkflowStatus,
        record: Mapping[str, Any],
    ) -> WriteResult:
        commit = BufferedCommit(
            "commit_execution", execution_id, owner, epoch, record, status=status
        )
        return self._commit(commit)

    def release(self, execution_id: str, owner: str, epoch: int) -> WriteResult:
        return self._call("release", partial(self._inner.release, execution_id, owner, epoch))

    def request_cancel(self, execution_id: str) -> WriteResult:
        return self._call("request_cancel", partial(self._inner.request_cancel, execution_id))

    # -- instances -----------------------------------------------------------------------------
    def heartbeat(self, info: InstanceInfo, ttl_s: float) -> None:
        try:
            self._auto_flush()
            self._guarded(partial(self._inner.heartbeat, info, ttl_s))
        except _Unavailable:
            pass  # without the store there is nobody to tell; peers will see this one expire

    def instances(self) -> list[InstanceInfo]:
        return self._call("instances", self._inner.instances)

    def remove_instance(self, instance_id: str) -> None:
        self._call("remove_instance", partial(self._inner.remove_instance, instance_id))

    def close(self) -> None:
        if self._buffer:
            with contextlib.suppress(_Unavailable):
                self._auto_flush()
            if self._buffer:
                log.warning(
                    "closing with %d commits that never reached %s; they are lost",
                    len(self._buffer),
                    self._where,
                )
        self._inner.close()

    # -- the machinery -------------------------------------------------------------------------
    def _call(self, op: str, fn: Callable[[], T]) -> T:
        """A call that cannot be deferred: it happens now or raises StoreUnavailableError."""
        try:
            self._auto_flush()
            return self._guarded(fn)
        except _Unavailable as exc:
            raise StoreUnavailableError(
                f"{op}: {self._where} is unreachable ({exc}). Running executions continue "
                "and their progress is kept until it returns; check that Redis is up and "
                "reachable from this host, then retry."
            ) from exc.__cause__

    def _commit(self, commit: BufferedCommit) -> WriteResult:
        try:
            self._auto_flush()
            with self._lock:
                if self._buffer:  # earlier commits still wait: this one goes behind them
                    return self._enqueue_locked(commit)
            return self._guarded(partial(commit.apply, self._inner))
        except _Unavailable:
            with self._lock:
                return self._enqueue_locked(commit)

    def _enqueue_locked(self, commit: BufferedCommit) -> WriteResult:
        if len(self._buffer) >= self._max_buffered:
            raise StoreUnavailableError(
                f"{commit.method}: {self._where} has been unreachable for too long: "
                f"{len(self._buffer)} commits wait for it (the limit), so this one is refused. "
                "Bring Redis back; the waiting commits land as soon as it answers."
            )
        # A copy: the caller may reuse its record while this one waits.
        self._buffer.append(replace(commit, record=copy.deepcopy(commit.record)))
        return DEFERRED

    def _auto_flush(self) -> None:
        """Replay waiting commits before anything else, if the breaker lets calls through.
        Raises _Unavailable when they could not all be replayed."""
        if self._buffer and self._breaker_admits():
            with self._flush_lock:
                self._drain([])

    def _drain(self, replayed: list[tuple[BufferedCommit, WriteResult]]) -> None:
        """Replay from the head, appending to `replayed`; _Unavailable if the store stops
        answering. The caller holds _flush_lock. A commit leaves the buffer only once the store
        has answered it, so a commit made meanwhile sees a non-empty buffer and queues behind."""
        while True:
            with self._lock:
                if not self._buffer:
                    return
                commit = self._buffer[0]  # only the flusher removes: the head is stable
            try:
                result = self._guarded(partial(commit.apply, self._inner))
            except _Unavailable:
                raise  # it stays at the head, the rest behind it
            except Exception:
                # The store answered with an error: dropping this commit beats blocking every
                # commit behind it forever.
                log.exception("replaying %s failed; it is dropped", commit.describe())
                result = WriteResult(ok=False)
            else:
                if not result.ok:
                    log.warning(
                        "%s was refused when replayed (%s): made while %s was unreachable",
                        commit.describe(),
                        result.refusal,
                        self._where,
                    )
            with self._lock:
                self._buffer.popleft()
            replayed.append((commit, result))

    def _breaker_admits(self) -> bool:
        if self._breaker.current_state != pybreaker.STATE_OPEN:
            return True
        return self._storage.open_for() >= self._reset_s

    def _guarded(self, fn: Callable[[], T]) -> T:
        """`fn` with retries, through the breaker; _Unavailable if the store did not answer.

        pybreaker holds its lock for the whole of `breaker.call`, which would serialise every
        Redis round trip (and every retry's backoff) across threads. So a closed breaker only
        hears the outcome, through trivial calls, while the real call runs outside its lock:
        still one failure per retried call. An open breaker gets the real call: it fails fast,
        or, once reset_s has passed, makes it the single half-open trial."""
        breaker = self._breaker
        try:
            if breaker.current_state != pybreaker.STATE_CLOSED:
                return breaker.call(self._retry, fn)
            try:
                result = self._retry(fn)
            except TRANSIENT as exc:
                breaker.call(_raise, exc)  # counts the failure; may trip the breaker
                raise  # pragma: no cover (breaker.call re-raised)
            if breaker.fail_counter:
                # A success ends the run of failures. (If another thread tripped the breaker
                # meanwhile, it stays open: its trial will close it.)
                with contextlib.suppress(pybreaker.CircuitBreakerError):
                    breaker.call(_noop)
            return result
        except pybreaker.CircuitBreakerError as exc:
            cause = exc.__context__  # the failure that tripped the breaker, if this call did
            why = f"{type(cause).__name__}: {cause}; " if isinstance(cause, TRANSIENT) else ""
            left = max(0.0, self._reset_s - self._storage.open_for())
            raise _Unavailable(
                f"{why}{breaker.fail_max} calls in a row failed, next try in {left:.1f} s"
            ) from cause
        except TRANSIENT as exc:
            raise _Unavailable(f"{type(exc).__name__}: {exc}") from exc

    def _retry(self, fn: Callable[[], T]) -> T:
        return self._retrying(fn)
