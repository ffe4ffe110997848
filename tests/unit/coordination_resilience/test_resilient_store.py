"""ResilientStateStore: retries, circuit breaker, buffered commits and their replay."""

from __future__ import annotations

import json
import logging
import threading
from collections import Counter
from collections.abc import Mapping
from typing import Any, cast

import pytest
import redis
import redis.exceptions
from redis.backoff import NoBackoff
from redis.retry import Retry

import tests.support.redis_server as redis_server_module
from tests.support.redis_server import RedisServer
from workbench.coordination.base import (
    InstanceInfo,
    Refusal,
    StateStore,
    StoredExecution,
    WriteResult,
)
from workbench.coordination.resilient import (
    DEFERRED,
    DeferredWrite,
    ResilientStateStore,
    StoreUnavailableError,
)
from workbench.dag.states import WorkflowStatus
from workbench.errors import WorkbenchError


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeStore:
    """A dict-backed StateStore. `down` makes every call raise what redis-py raises when the
    server is gone; `blips` fails that many calls first; `attempts` counts calls that got here;
    `applied` lists commits that landed, in order."""

    def __init__(self) -> None:
        self.executions: dict[str, StoredExecution] = {}
        self.beats: dict[str, InstanceInfo] = {}
        self.applied: list[tuple[str, int]] = []  # (execution id, record["seq"])
        self.attempts = 0
        self.down = False
        self.blips = 0
        self.calls_left: int | None = None  # goes down after this many more calls
        self.lock = threading.Lock()

    def _reach(self) -> None:
        with self.lock:
            self.attempts += 1
            if self.calls_left is not None:
                self.down = self.calls_left <= 0
                self.calls_left -= 1
            if self.blips:
                self.blips -= 1
                raise redis.exceptions.TimeoutError("Timeout reading from socket")
            if self.down:
                raise redis.exceptions.ConnectionError("Error 111 connecting to 127.0.0.1:6379.")

    def add(self, execution_id: str, owner: str = "i1", epoch: int = 1) -> None:
        self.executions[execution_id] = StoredExecution(
            execution_id, "wf", {}, "/", owner=owner, epoch=epoch
        )

    def _check(self, execution_id: str, owner: str, epoch: int) -> WriteResult | None:
        execution = self.executions.get(execution_id)
        if execution is None:
            return WriteResult(ok=False, refusal=Refusal.UNKNOWN)
        if (execution.owner, execution.epoch) != (owner, epoch):
            return WriteResult(ok=False, refusal=Refusal.NOT_OWNER)
        return None

    def create_execution(self, execution: StoredExecution) -> None:
        self._reach()
        self.executions[execution.execution_id] = execution

    def get_execution(self, execution_id: str) -> StoredExecution | None:
        self._reach()
        return self.executions.get(execution_id)

    def list_executions(
        self, *, owner: str | None = None, status: WorkflowStatus | None = None
    ) -> list[StoredExecution]:
        self._reach()
        return [e for e in self.executions.values() if owner in (None, e.owner)]

    def pending(self) -> list[str]:
        self._reach()
        return [e.execution_id for e in self.executions.values() if e.owner is None]

    def assign(
        self, execution_id: str, instance_id: str, *, leader: str, token: int
    ) -> WriteResult:
        self._reach()
        execution = self.executions[execution_id]
        execution.owner, execution.epoch = instance_id, execution.epoch + 1
        return WriteResult(ok=True, epoch=execution.epoch)

    def commit_task(
        self, execution_id: str, owner: str, epoch: int, task_id: str, record: Mapping[str, Any]
    ) -> WriteResult:
        self._reach()
        with self.lock:
            if (refused := self._check(execution_id, owner, epoch)) is not None:
                return refused
            self.executions[execution_id].tasks[task_id] = dict(record)
            self.applied.append((execution_id, record["seq"]))
        return WriteResult(ok=True)

    def commit_execution(
        self,
        execution_id: str,
        owner: str,
        epoch: int,
        status: WorkflowStatus,
        record: Mapping[str, Any],
    ) -> WriteResult:
        self._reach()
        with self.lock:
            if (refused := self._check(execution_id, owner, epoch)) is not None:
                return refused
            self.executions[execution_id].status = status
            self.applied.append((execution_id, record["seq"]))
        return WriteResult(ok=True)

    def release(self, execution_id: str, owner: str, epoch: int) -> WriteResult:
        self._reach()
        refused = self._check(execution_id, owner, epoch)  # falsy: a WriteResult is its ok
        return WriteResult(ok=True) if refused is None else refused

    def request_cancel(self, execution_id: str) -> WriteResult:
        self._reach()
        return WriteResult(ok=True)

    def heartbeat(self, info: InstanceInfo, ttl_s: float) -> None:
        self._reach()
        self.beats[info.instance_id] = info

    def instances(self) -> list[InstanceInfo]:
        self._reach()
        return list(self.beats.values())

    def remove_instance(self, instance_id: str) -> None:
        self._reach()
        self.beats.pop(instance_id, None)

    def close(self) -> None:
        pass


@pytest.fixture
def fake() -> FakeStore:
    store = FakeStore()
    store.add("e1")
    return store


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def resilient(fake: FakeStore, clock: FakeClock, **options: Any) -> ResilientStateStore:
    defaults: dict[str, Any] = {
        "retry_attempts": 3,
        "backoff_base_s": 0.001,  # real sleeps, but tiny
        "backoff_max_s": 0.002,
        "breaker_fail_max": 3,
        "breaker_reset_s": 2.0,
    }
    return ResilientStateStore(fake, clock=clock, **{**defaults, **options})


def commit(store: ResilientStateStore, seq: int, execution_id: str = "e1") -> WriteResult:
    return store.commit_task(execution_id, "i1", 1, f"t{seq}", {"seq": seq})


INFO = InstanceInfo("i1", capacity=4, load=1, heartbeat_at=0.0)


def test_a_transient_failure_is_retried_invisibly(fake: FakeStore, clock: FakeClock) -> None:
    store = resilient(fake, clock)
    fake.blips = 2
    execution = store.get_execution("e1")
    assert execution is not None and execution.execution_id == "e1"
    assert fake.attempts == 3
    assert commit(store, 0) == WriteResult(ok=True)  # landed now, not deferred
    assert not store.degraded


def test_other_errors_pass_through_unretried(fake: FakeStore, clock: FakeClock) -> None:
    store = resilient(fake, clock)
    with pytest.raises(KeyError):
        store.assign("nope", "i2", leader="i1", token=1)
    assert fake.attempts == 1
    assert not store.degraded


def test_breaker_opens_after_fail_max_retried_calls_then_fails_fast(
    fake: FakeStore, clock: FakeClock
) -> None:
    store = resilient(fake, clock)
    fake.down = True
    for _ in range(2):
        with pytest.raises(StoreUnavailableError):
            store.pending()
    assert fake.attempts == 6 and not store.degraded  # a retried call counts once: 2 of 3
    with pytest.raises(StoreUnavailableError, match="3 calls in a row failed"):
        store.pending()
    assert fake.attempts == 9 and store.degraded

    for _ in range(10):  # open: no call reaches the store
        with pytest.raises(StoreUnavailableError, match=r"next try in 2\.0 s"):
            store.pending()
    assert fake.attempts == 9

    clock.advance(2.0)  # half-open: one trial call; it fails, so the breaker opens again
    with pytest.raises(StoreUnavailableError):
        store.pending()
    assert fake.attempts == 12
    with pytest.raises(StoreUnavailableError):
        store.pending()
    assert fake.attempts == 12

    fake.down = False
    clock.advance(2.0)  # a successful trial closes it
    assert store.pending() == []
    assert not store.degraded


def test_a_success_resets_the_failure_count(fake: FakeStore, clock: FakeClock) -> None:
    store = resilient(fake, clock)
    for _ in range(3):
        fake.down = True
        for _ in range(2):
            with pytest.raises(StoreUnavailableError):
                store.instances()
        fake.down = False
        store.instances()
    assert not store.degraded


def test_commits_during_an_outage_are_buffered_then_replayed_in_order(
    fake: FakeStore, clock: FakeClock
) -> None:
    store = resilient(fake, clock)
    assert commit(store, 0).ok
    fake.down = True
    results = [commit(store, seq) for seq in range(1, 6)]
    results.append(store.commit_execution("e1", "i1", 1, WorkflowStatus.SUCCEEDED, {"seq": 6}))
    assert all(result is DEFERRED and result.ok for result in results)
    assert isinstance(results[0], DeferredWrite) and results[0].deferred
    assert store.buffered == 6 and store.degraded
    attempts = fake.attempts

    fake.down = False  # back, but the breaker is still open: nothing is tried yet
    with pytest.raises(StoreUnavailableError):
        store.get_execution("e1")
    assert fake.attempts == attempts and store.buffered == 6

    clock.advance(2.0)  # the next call replays the buffer first, then runs
    execution = store.get_execution("e1")
    assert execution is not None and execution.status == WorkflowStatus.SUCCEEDED
    assert [seq for _, seq in fake.applied] == list(range(7))
    assert store.buffered == 0 and not store.degraded
    assert commit(store, 7) == WriteResult(ok=True)  # and commits go straight through again


def test_a_commit_made_before_the_breaker_opens_is_buffered_too(
    fake: FakeStore, clock: FakeClock
) -> None:
    store = resilient(fake, clock, breaker_fail_max=100)
    fake.down = True
    assert commit(store, 0) is DEFERRED  # retries exhausted, breaker still closed
    fake.down = False
    assert commit(store, 1) == WriteResult(ok=True)  # the buffered one is replayed first
    assert fake.applied == [("e1", 0), ("e1", 1)]


def test_a_refused_replay_is_reported_not_raised(
    fake: FakeStore, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    store = resilient(fake, clock)
    fake.add("e2")
    fake.down = True
    commit(store, 0)
    commit(store, 1, execution_id="e2")
    fake.executions["e1"].owner = "i2"  # re-assigned while this instance was cut off
    fake.executions["e1"].epoch = 2
    fake.down = False
    clock.advance(2.0)

    with caplog.at_level(logging.WARNING, logger="workbench.coordination.resilient"):
        replayed = store.flush()
    assert [(c.execution_id, r) for c, r in replayed] == [
        ("e1", WriteResult(ok=False, refusal=Refusal.NOT_OWNER)),
        ("e2", WriteResult(ok=True)),
    ]
    assert replayed[0][0].task_id == "t0"
    assert "refused when replayed" in caplog.text and "execution e1" in caplog.text
    assert fake.applied == [("e2", 1)]
    assert store.buffered == 0 and not store.degraded


def test_a_flush_cut_short_keeps_the_rest_in_order(fake: FakeStore, clock: FakeClock) -> None:
    store = resilient(fake, clock)
    fake.down = True
    for seq in range(5):
        commit(store, seq)
    clock.advance(2.0)
    fake.down, fake.calls_left = False, 2  # answers two replays, then is gone again
    assert [c.task_id for c, _ in store.flush()] == ["t0", "t1"]
    assert store.buffered == 3 and store.degraded

    commit(store, 5)  # queues behind the rest
    fake.down, fake.calls_left = False, None
    clock.advance(2.0)
    assert [c.task_id for c, _ in store.flush()] == ["t2", "t3", "t4", "t5"]
    assert [seq for _, seq in fake.applied] == list(range(6))
    assert store.flush() == []


def test_a_replay_the_store_answers_with_an_error_is_dropped_not_stuck(
    fake: FakeStore,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = resilient(fake, clock)
    fake.down = True
    for seq in range(3):
        commit(store, seq)
    fake.down = False
    clock.advance(2.0)
    original = fake.commit_task

    def commit_task(execution_id: str, owner: str, epoch: int, task_id: str, record: Any) -> Any:
        if task_id == "t1":
            raise redis.exceptions.ResponseError("ERR bad record")
        return original(execution_id, owner, epoch, task_id, record)

    monkeypatch.setattr(fake, "commit_task", commit_task)
    replayed = store.flush()
    assert [(c.task_id, r.ok) for c, r in replayed] == [("t0", True), ("t1", False), ("t2", True)]
    assert "replaying commit_task of task t1 in execution e1 (epoch 1) failed" in caplog.text
    assert store.buffered == 0 and not store.degraded


def test_a_buffered_record_is_a_copy(fake: FakeStore, clock: FakeClock) -> None:
    store = resilient(fake, clock)
    fake.down = True
    record: dict[str, Any] = {"seq": 0, "metrics": {"auc": 0.5}}
    store.commit_task("e1", "i1", 1, "train", record)
    record["metrics"]["auc"] = 0.9  # the caller reuses its dict
    fake.down = False
    clock.advance(2.0)
    store.flush()
    assert fake.executions["e1"].tasks["train"]["metrics"] == {"auc": 0.5}


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.get_execution("e1"),
        lambda s: s.list_executions(owner="i1"),
        lambda s: s.pending(),
        lambda s: s.instances(),
        lambda s: s.assign("e1", "i2", leader="i1", token=1),
        lambda s: s.release("e1", "i1", 1),
        lambda s: s.request_cancel("e1"),
        lambda s: s.create_execution(StoredExecution("e9", "wf", {}, "/")),
        lambda s: s.remove_instance("i2"),
    ],
)
def test_reads_and_other_writes_raise_a_clear_error(
    fake: FakeStore, clock: FakeClock, call: Any
) -> None:
    store = resilient(fake, clock)
    fake.down = True
    with pytest.raises(StoreUnavailableError) as caught:
        call(store)
    message = str(caught.value)
    assert isinstance(caught.value, WorkbenchError) and caught.value.retryable
    assert "the state store (FakeStore) is unreachable (ConnectionError: Error 111" in message
    assert "running executions continue and their progress is kept" in message.lower()
    assert caught.value.__cause__ is not None


def test_the_message_names_the_redis_url_without_its_password(
    fake: FakeStore, clock: FakeClock
) -> None:
    fake.url = "redis://:s3cret@redis.internal:6379/2"  # type: ignore[attr-defined]
    store = resilient(fake, clock)
    fake.down = True
    with pytest.raises(StoreUnavailableError) as caught:
        store.pending()
    assert "pending: Redis at redis://redis.internal:6379/2 is unreachable" in str(caught.value)
    assert "s3cret" not in str(caught.value)

    named = resilient(fake, clock, name="Redis at redis://state:6379/0")
    with pytest.raises(StoreUnavailableError, match="Redis at redis://state:6379/0 is unreachable"):
        named.pending()


def test_heartbeat_during_an_outage_is_skipped(fake: FakeStore, clock: FakeClock) -> None:
    store = resilient(fake, clock)
    fake.down = True
    for _ in range(5):
        store.heartbeat(INFO, ttl_s=10)  # neither raises nor waits for retries
    assert fake.attempts == 9  # 3 retried heartbeats opened the breaker; the rest failed fast
    fake.down = False
    clock.advance(2.0)
    store.heartbeat(INFO, ttl_s=10)
    assert fake.beats == {"i1": INFO}


def test_a_heartbeat_flushes_the_buffer_when_the_store_returns(
    fake: FakeStore, clock: FakeClock
) -> None:
    store = resilient(fake, clock)
    fake.down = True
    commit(store, 0)
    fake.down = False
    clock.advance(2.0)
    store.heartbeat(INFO, ttl_s=10)
    assert fake.applied == [("e1", 0)] and not store.degraded


def test_the_buffer_is_bounded(fake: FakeStore, clock: FakeClock) -> None:
    store = resilient(fake, clock, max_buffered=3)
    fake.down = True
    for seq in range(3):
        assert commit(store, seq) is DEFERRED
    with pytest.raises(StoreUnavailableError, match=r"3 commits wait for it \(the limit\)"):
        commit(store, 3)
    assert store.buffered == 3
    fake.down = False
    clock.advance(2.0)
    assert commit(store, 4).ok
    assert [seq for _, seq in fake.applied] == [0, 1, 2, 4]


def test_concurrent_commits_during_an_outage_are_replayed_exactly_once(
    fake: FakeStore, clock: FakeClock
) -> None:
    store = resilient(fake, clock)
    threads, per_thread = 8, 100
    for n in range(threads):
        fake.add(f"x{n}")
    fake.down = True
    barrier = threading.Barrier(threads)

    def committer(n: int) -> None:
        barrier.wait()
        for seq in range(per_thread):
            commit(store, seq, execution_id=f"x{n}")
            if n == 0 and seq == per_thread // 2:
                fake.down = False  # the store returns mid-way: later commits go straight in
                clock.advance(2.0)

    workers = [threading.Thread(target=committer, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    # A call that saw the outage just before the store came back may have opened the breaker
    # again at the advanced time: let that reset pass too, as real time would.
    clock.advance(2.0)
    flushers = [threading.Thread(target=store.flush) for _ in range(4)]
    for flusher in flushers:
        flusher.start()
    for flusher in flushers:
        flusher.join()

    assert store.buffered == 0 and not store.degraded
    assert all(count == 1 for count in Counter(fake.applied).values())
    for n in range(threads):  # each thread's commits landed in the order it made them
        assert [seq for eid, seq in fake.applied if eid == f"x{n}"] == list(range(per_thread))


# -- against a real redis-server that goes away and comes back ---------------------------------


class MiniRedisStore:
    """Just the StateStore calls the outage test makes, over plain redis-py (no retries of
    its own: the wrapper owns those)."""

    def __init__(self, port: int) -> None:
        self.url = f"redis://127.0.0.1:{port}/0"
        self.client = redis.Redis(
            port=port,
            socket_connect_timeout=0.5,
            socket_timeout=0.5,
            retry=Retry(NoBackoff(), 0),
            decode_responses=True,
        )

    def commit_task(
        self, execution_id: str, owner: str, epoch: int, task_id: str, record: Mapping[str, Any]
    ) -> WriteResult:
        pipe = self.client.pipeline()
        pipe.hset(f"exec:{execution_id}:tasks", task_id, json.dumps(dict(record)))
        pipe.rpush(f"exec:{execution_id}:log", f"{task_id}:{record['seq']}")
        pipe.execute()
        return WriteResult(ok=True)

    def get_execution(self, execution_id: str) -> StoredExecution | None:
        tasks = self.client.hgetall(f"exec:{execution_id}:tasks")
        if not tasks:
            return None
        decoded = {str(key): json.loads(value) for key, value in tasks.items()}
        return StoredExecution(execution_id, "wf", {}, "/", tasks=decoded)

    def close(self) -> None:
        self.client.close()


@pytest.mark.integration
def test_commits_made_while_redis_is_down_land_when_it_returns(
    monkeypatch: pytest.MonkeyPatch, clock: FakeClock
) -> None:
    first = RedisServer().__enter__()
    port = first.port
    inner = MiniRedisStore(port)
    store = ResilientStateStore(
        cast(StateStore, inner),
        retry_attempts=2,
        backoff_base_s=0.01,
        backoff_max_s=0.02,
        breaker_fail_max=2,
        breaker_reset_s=1.0,
        clock=clock,
    )
    try:
        assert store.commit_task("e1", "i1", 1, "load", {"seq": 0}) == WriteResult(ok=True)
        first.__exit__(None, None, None)  # redis-server terminated; it kept nothing

        for seq, task in enumerate(["train", "train", "evaluate"], start=1):
            assert store.commit_task("e1", "i1", 1, task, {"seq": seq}) is DEFERRED
        assert store.buffered == 3 and store.degraded
        with pytest.raises(StoreUnavailableError, match=f"Redis at {inner.url} is unreachable"):
            store.get_execution("e1")

        monkeypatch.setattr(redis_server_module, "free_port", lambda: port)
        with RedisServer() as second:  # a new, empty server on the same port
            assert second.port == port
            clock.advance(1.0)
            execution = store.get_execution("e1")  # replays the buffer, then reads
            assert execution is not None
            assert execution.tasks == {"train": {"seq": 2}, "evaluate": {"seq": 3}}
            assert inner.client.lrange("exec:e1:log", 0, -1) == [
                "train:1",
                "train:2",
                "evaluate:3",
            ]
            assert store.buffered == 0 and not store.degraded
            store.close()
    finally:
        first.__exit__(None, None, None)
