"""One contract for every state store: in memory and on Redis (a real redis-server).

`Harness` gives a test a store, leader elections on the same lease, and `elapse(s)`: the memory
harness moves its clock, the Redis one sleeps, so the same test expires a lease or a heartbeat
in both. `test_leader_election.py` builds its harness here too. Redis-only behaviour follows
the contract.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import cast

import pytest
import redis

from workbench.coordination.base import (
    InstanceInfo,
    LeaderElection,
    Refusal,
    StateStore,
    StoredExecution,
)
from workbench.coordination.election import RedisLeaderElection
from workbench.coordination.memory_store import (
    MemoryLeaderElection,
    MemoryLease,
    MemoryStateStore,
)
from workbench.coordination.redis_store import RedisStateStore
from workbench.dag.states import WorkflowStatus

KINDS = ["memory", "redis"]
SHORT_MS = 150  # a lease short enough to let run out in a test


class ManualClock:
    """A monotonic clock that moves only when told to."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds


@dataclass
class Harness:
    kind: str
    store: StateStore
    make_election: Callable[[str, int], LeaderElection]
    elapse: Callable[[float], None]  # let this much time pass, as the store sees time

    _lead: tuple[str, int] | None = None

    def election(self, instance_id: str, lease_ms: int = 2000) -> LeaderElection:
        return self.make_election(instance_id, lease_ms)

    def leader(self) -> tuple[str, int]:
        """(instance, token) of a leader "leader" that this test keeps (a 2 s lease)."""
        if self._lead is None:
            token = self.election("leader").try_acquire()
            assert token is not None
            self._lead = ("leader", token)
        return self._lead


def build_harness(request: pytest.FixtureRequest) -> Iterator[Harness]:
    if request.param == "memory":
        clock = ManualClock()
        lease = MemoryLease(clock)
        yield Harness(
            "memory",
            MemoryStateStore(clock=clock, lease=lease),
            lambda instance, ms: MemoryLeaderElection(lease, instance, lease_ms=ms),
            clock.advance,
        )
        return
    client = redis.Redis.from_url(request.getfixturevalue("redis_url"))
    store = RedisStateStore(client)
    try:
        yield Harness(
            "redis",
            store,
            lambda instance, ms: RedisLeaderElection(client, instance, lease_ms=ms),
            time.sleep,
        )
    finally:
        store.close()
        client.close()


@pytest.fixture(params=KINDS)
def harness(request: pytest.FixtureRequest) -> Iterator[Harness]:
    yield from build_harness(request)


@pytest.fixture
def store(harness: Harness) -> StateStore:
    return harness.store


def execution(
    execution_id: str = "e1", submitted_at: float = 1.0, **fields: object
) -> StoredExecution:
    return StoredExecution(
        execution_id=execution_id,
        workflow_id="wf",
        spec={"workflow_id": "wf", "tasks": [{"task_id": "a", "parameters": {"x": 0.1}}]},
        base_dir="/data",
        submitted_at=submitted_at,
        **fields,  # type: ignore[arg-type]
    )


def owned(harness: Harness, execution_id: str = "e1", instance_id: str = "i1") -> int:
    """Create `execution_id` and assign it to `instance_id`; its epoch."""
    harness.store.create_execution(execution(execution_id))
    name, token = harness.leader()
    result = harness.store.assign(execution_id, instance_id, leader=name, token=token)
    assert result.ok and result.epoch is not None
    return result.epoch


# -- executions --------------------------------------------------------------------------------


def test_create_then_get_round_trips_every_field(store: StateStore) -> None:
    made = execution(
        cache_mode="refresh",
        submitted_at=1712345678.123456,
        tasks={"a": {"state": "pending", "attempts": 0}},
        record={"started_at": None, "metrics": {"auc": 0.91234567891234}},
    )
    store.create_execution(made)
    got = store.get_execution("e1")
    assert got == made  # floats exact: no precision lost on the way
    assert got is not None and got.status is WorkflowStatus.PENDING and got.owner is None


def test_create_stores_pending_without_owner_whatever_was_given(store: StateStore) -> None:
    store.create_execution(execution(status=WorkflowStatus.RUNNING, owner="someone"))
    got = store.get_execution("e1")
    assert got is not None and (got.status, got.owner) == (WorkflowStatus.PENDING, None)
    assert store.pending() == ["e1"]


def test_create_twice_is_an_error(store: StateStore) -> None:
    store.create_execution(execution())
    with pytest.raises(ValueError, match="already exists"):
        store.create_execution(execution())


def test_unknown_execution_is_none(store: StateStore) -> None:
    assert store.get_execution("nope") is None


def test_returned_executions_are_copies(store: StateStore) -> None:
    store.create_execution(execution(record={"n": 1}))
    got = store.get_execution("e1")
    assert got is not None
    got.record["n"] = 2
    dict(got.spec)["tasks"].clear()
    again = store.get_execution("e1")
    assert again is not None and again.record == {"n": 1} and again.spec["tasks"]


def test_pending_is_oldest_first_and_ties_by_id(store: StateStore) -> None:
    for execution_id, at in [("c", 3.0), ("b", 1.0), ("a", 2.0), ("a2", 2.0)]:
        store.create_execution(execution(execution_id, submitted_at=at))
    assert store.pending() == ["b", "a", "a2", "c"]
    assert [e.execution_id for e in store.list_executions()] == ["b", "a", "a2", "c"]


def test_list_filters_by_owner_and_status(harness: Harness) -> None:
    store = harness.store
    name, token = harness.leader()
    for n, instance in enumerate(["i1", "i1", "i2", None]):
        store.create_execution(execution(f"e{n}", submitted_at=float(n)))
        if instance is not None:
            assert store.assign(f"e{n}", instance, leader=name, token=token)
    assert store.commit_execution("e0", "i1", 1, WorkflowStatus.RUNNING, {})
    assert store.commit_execution("e1", "i1", 1, WorkflowStatus.SUCCEEDED, {})

    def ids(**filters: object) -> list[str]:
        return [e.execution_id for e in store.list_executions(**filters)]  # type: ignore[arg-type]

    assert ids() == ["e0", "e1", "e2", "e3"]
    assert ids(owner="i1") == ["e0", "e1"]
    assert ids(owner="i1", status=WorkflowStatus.RUNNING) == ["e0"]
    assert ids(owner="i1", status=WorkflowStatus.SUCCEEDED) == ["e1"]
    assert ids(owner="i1", status=WorkflowStatus.PENDING) == []
    assert ids(owner="i2", status=WorkflowStatus.PENDING) == ["e2"]
    assert ids(status=WorkflowStatus.PENDING) == ["e2", "e3"]
    assert ids(owner="nobody") == []


# -- assign: leader-only, fenced ---------------------------------------------------------------


def test_assign_makes_an_owner_at_a_new_epoch(harness: Harness) -> None:
    store = harness.store
    store.create_execution(execution())
    name, token = harness.leader()
    first = store.assign("e1", "i1", leader=name, token=token)
    assert first.ok and first.refusal is None and first.epoch == 1
    got = store.get_execution("e1")
    assert got is not None and (got.owner, got.epoch) == ("i1", 1)
    assert got.status is WorkflowStatus.PENDING  # the owner sets running itself
    assert store.pending() == []
    # re-assignment (the owner died) bumps the epoch again
    assert store.assign("e1", "i2", leader=name, token=token).epoch == 2
    assert [e.execution_id for e in store.list_executions(owner="i2")] == ["e1"]
    assert store.list_executions(owner="i1") == []


def test_assign_of_an_unknown_execution_is_refused(harness: Harness) -> None:
    name, token = harness.leader()
    result = harness.store.assign("nope", "i1", leader=name, token=token)
    assert not result and result.refusal is Refusal.UNKNOWN and result.epoch is None


def test_assign_with_a_token_of_another_acquisition_is_refused(harness: Harness) -> None:
    store = harness.store
    store.create_execution(execution())
    a = harness.election("a", SHORT_MS)
    token_a = a.try_acquire()
    assert token_a is not None
    harness.elapse(SHORT_MS / 1000 * 2)
    token_b = harness.election("b").try_acquire()
    assert token_b is not None and token_b > token_a
    assert store.assign("e1", "i1", leader="a", token=token_a).refusal is Refusal.STALE_TOKEN
    assert store.assign("e1", "i1", leader="b", token=token_a).refusal is Refusal.STALE_TOKEN
    assert store.assign("e1", "i1", leader="a", token=token_b).refusal is Refusal.STALE_TOKEN
    assert store.assign("e1", "i1", leader="b", token=token_b).ok
    assert store.get_execution("e1").epoch == 1  # type: ignore[union-attr]


def test_assign_by_a_leader_whose_lease_expired_is_refused_even_with_no_successor(
    harness: Harness,
) -> None:
    harness.store.create_execution(execution())
    a = harness.election("a", SHORT_MS)
    token = a.try_acquire()
    assert token is not None
    harness.elapse(SHORT_MS / 1000 * 2)
    assert a.holder() is None
    result = harness.store.assign("e1", "i1", leader="a", token=token)
    assert result.refusal is Refusal.STALE_TOKEN
    assert harness.store.pending() == ["e1"]


def test_assign_with_no_lease_at_all_is_refused(harness: Harness) -> None:
    harness.store.create_execution(execution())
    result = harness.store.assign("e1", "i1", leader="a", token=1)
    assert result.refusal is Refusal.STALE_TOKEN


def test_assign_of_a_finished_execution_is_refused(harness: Harness) -> None:
    epoch = owned(harness)
    assert harness.store.commit_execution("e1", "i1", epoch, WorkflowStatus.FAILED, {})
    name, token = harness.leader()
    result = harness.store.assign("e1", "i2", leader=name, token=token)
    assert result.refusal is Refusal.FINISHED
    got = harness.store.get_execution("e1")
    assert got is not None and (got.owner, got.epoch) == ("i1", epoch)


# -- commits: owner-only, fenced by epoch ------------------------------------------------------


def test_the_owner_commits_tasks_and_the_execution(harness: Harness) -> None:
    store = harness.store
    epoch = owned(harness)
    assert store.commit_execution("e1", "i1", epoch, WorkflowStatus.RUNNING, {"started_at": 5.0})
    assert store.commit_task("e1", "i1", epoch, "a", {"state": "running", "attempts": 1})
    assert store.commit_task("e1", "i1", epoch, "b", {"state": "pending"})
    assert store.commit_task("e1", "i1", epoch, "a", {"state": "succeeded", "attempts": 1})
    assert store.commit_execution("e1", "i1", epoch, WorkflowStatus.RUNNING, {"started_at": 6.0})
    got = store.get_execution("e1")
    assert got is not None
    assert got.status is WorkflowStatus.RUNNING and got.record == {"started_at": 6.0}
    # a task record is replaced whole; committing the execution leaves the tasks alone
    assert got.tasks == {"a": {"state": "succeeded", "attempts": 1}, "b": {"state": "pending"}}


def test_commits_by_an_old_epoch_or_another_instance_are_refused(harness: Harness) -> None:
    store = harness.store
    old = owned(harness)
    name, token = harness.leader()
    new = store.assign("e1", "i2", leader=name, token=token).epoch
    assert new == old + 1
    for owner, epoch in [("i1", old), ("i2", old), ("i1", new), ("i3", new)]:
        task = store.commit_task("e1", owner, epoch, "a", {"state": "succeeded"})
        whole = store.commit_execution("e1", owner, epoch, WorkflowStatus.SUCCEEDED, {})
        assert task.refusal is whole.refusal is Refusal.NOT_OWNER, (owner, epoch)
        assert store.release("e1", owner, epoch).refusal is Refusal.NOT_OWNER
    got = store.get_execution("e1")
    assert got is not None and got.tasks == {} and got.status is WorkflowStatus.PENDING
    assert store.commit_task("e1", "i2", new, "a", {"state": "succeeded"})


def test_commits_to_an_unknown_execution_are_refused(store: StateStore) -> None:
    assert store.commit_task("nope", "i1", 1, "a", {}).refusal is Refusal.UNKNOWN
    refused = store.commit_execution("nope", "i1", 1, WorkflowStatus.RUNNING, {})
    assert refused.refusal is Refusal.UNKNOWN
    assert store.release("nope", "i1", 1).refusal is Refusal.UNKNOWN


def test_a_terminal_status_is_final(harness: Harness) -> None:
    store = harness.store
    epoch = owned(harness)
    assert store.commit_execution("e1", "i1", epoch, WorkflowStatus.SUCCEEDED, {"ok": True})
    for status in WorkflowStatus:
        again = store.commit_execution("e1", "i1", epoch, status, {"ok": False})
        assert again.refusal is Refusal.FINISHED
    assert store.commit_task("e1", "i1", epoch, "a", {}).refusal is Refusal.FINISHED
    assert store.release("e1", "i1", epoch).refusal is Refusal.FINISHED
    assert store.request_cancel("e1").refusal is Refusal.FINISHED
    got = store.get_execution("e1")
    assert got is not None and got.status is WorkflowStatus.SUCCEEDED and got.record == {"ok": True}
    assert got.owner == "i1" and not got.cancel_requested and store.pending() == []
    assert store.list_executions(owner="i1", status=WorkflowStatus.RUNNING) == []


def test_ownership_is_checked_before_finished(harness: Harness) -> None:
    """A zombie owner learns it lost the execution, whatever became of it since."""
    store = harness.store
    old = owned(harness)
    name, token = harness.leader()
    new = store.assign("e1", "i2", leader=name, token=token).epoch
    assert new is not None
    assert store.commit_execution("e1", "i2", new, WorkflowStatus.CANCELLED, {})
    assert store.commit_task("e1", "i1", old, "a", {}).refusal is Refusal.NOT_OWNER


# -- release and cancel ------------------------------------------------------------------------


def test_release_puts_it_back_in_pending_and_the_next_assign_bumps_the_epoch(
    harness: Harness,
) -> None:
    store = harness.store
    store.create_execution(execution("early", submitted_at=0.5))
    store.create_execution(execution("late", submitted_at=9.0))
    epoch = owned(harness)  # e1, submitted at 1.0
    assert store.commit_execution("e1", "i1", epoch, WorkflowStatus.RUNNING, {})
    assert store.commit_task("e1", "i1", epoch, "a", {"state": "succeeded"})
    assert store.pending() == ["early", "late"]

    assert store.release("e1", "i1", epoch)
    got = store.get_execution("e1")
    assert got is not None
    assert (got.owner, got.epoch, got.status) == (None, epoch, WorkflowStatus.PENDING)
    assert got.tasks == {"a": {"state": "succeeded"}}  # the next owner resumes from these
    assert store.pending() == ["early", "e1", "late"]  # back in its place, by submit time
    assert store.list_executions(owner="i1") == []
    # released: the old owner may not write any more, not even at its epoch
    assert store.commit_task("e1", "i1", epoch, "b", {}).refusal is Refusal.NOT_OWNER
    assert store.release("e1", "i1", epoch).refusal is Refusal.NOT_OWNER

    name, token = harness.leader()
    again = store.assign("e1", "i2", leader=name, token=token)
    assert again.epoch == epoch + 1 and store.pending() == ["early", "late"]


def test_request_cancel_sets_the_flag(harness: Harness) -> None:
    store = harness.store
    store.create_execution(execution("waiting"))
    epoch = owned(harness)
    assert store.request_cancel("waiting") and store.request_cancel("e1")
    assert store.request_cancel("e1")  # asking twice is fine
    assert store.request_cancel("nope").refusal is Refusal.UNKNOWN
    for execution_id in ("waiting", "e1"):
        got = store.get_execution(execution_id)
        assert got is not None and got.cancel_requested
    assert store.commit_execution("e1", "i1", epoch, WorkflowStatus.CANCELLED, {})


# -- no lost update ----------------------------------------------------------------------------


def test_concurrent_commits_by_the_owner_all_land(harness: Harness) -> None:
    store = harness.store
    epoch = owned(harness)
    threads_n, tasks_n = 8, 25
    start = threading.Barrier(threads_n + 1)
    refused: list[object] = []

    def commit_tasks(worker: int) -> None:
        start.wait()
        for n in range(tasks_n):
            record = {"state": "succeeded", "worker": worker, "n": n}
            if not store.commit_task("e1", "i1", epoch, f"t{worker}-{n}", record):
                refused.append((worker, n))

    def commit_records() -> None:
        start.wait()
        for n in range(tasks_n):
            if not store.commit_execution("e1", "i1", epoch, WorkflowStatus.RUNNING, {"n": n}):
                refused.append(("record", n))

    threads = [threading.Thread(target=commit_tasks, args=(w,)) for w in range(threads_n)]
    threads.append(threading.Thread(target=commit_records))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert refused == []
    got = store.get_execution("e1")
    assert got is not None and len(got.tasks) == threads_n * tasks_n
    assert got.tasks["t3-7"] == {"state": "succeeded", "worker": 3, "n": 7}
    assert got.record == {"n": tasks_n - 1}


# -- instances ---------------------------------------------------------------------------------


def instance(instance_id: str, load: int = 0) -> InstanceInfo:
    return InstanceInfo(instance_id, capacity=4, load=load, heartbeat_at=1.7e9 + 0.123456)


def test_heartbeats_announce_instances(store: StateStore) -> None:
    assert store.instances() == []
    store.heartbeat(instance("b"), ttl_s=10)
    full = InstanceInfo("a", 8, 3, 1.7e9, started_at=1.6e9, host="node-1", pid=42)
    store.heartbeat(full, ttl_s=10)
    assert store.instances() == [full, instance("b")]
    store.heartbeat(instance("b", load=2), ttl_s=10)  # the latest announcement wins
    assert store.instances()[1].load == 2 and store.instances()[1].free == 2


def test_an_instance_without_heartbeat_disappears_after_its_ttl(harness: Harness) -> None:
    store = harness.store
    store.heartbeat(instance("quiet"), ttl_s=0.4)
    store.heartbeat(instance("steady"), ttl_s=0.4)
    harness.elapse(0.25)
    store.heartbeat(instance("steady"), ttl_s=0.4)  # renewed: 0.4 s from now
    harness.elapse(0.25)
    assert [i.instance_id for i in store.instances()] == ["steady"]
    harness.elapse(0.5)
    assert store.instances() == []
    store.heartbeat(instance("quiet"), ttl_s=10)  # it may come back
    assert [i.instance_id for i in store.instances()] == ["quiet"]


def test_remove_instance_takes_effect_at_once(store: StateStore) -> None:
    store.heartbeat(instance("a"), ttl_s=10)
    store.heartbeat(instance("b"), ttl_s=10)
    store.remove_instance("a")
    store.remove_instance("never-seen")
    assert [i.instance_id for i in store.instances()] == ["b"]


def test_a_heartbeat_needs_a_positive_ttl(store: StateStore) -> None:
    with pytest.raises(ValueError, match="ttl_s"):
        store.heartbeat(instance("a"), ttl_s=0)


# -- Redis only --------------------------------------------------------------------------------


def test_redis_namespaces_do_not_see_each_other(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    blue, green = RedisStateStore(client, "blue"), RedisStateStore(client, namespace="green")
    blue.create_execution(execution())
    blue.heartbeat(instance("a"), ttl_s=10)
    token = RedisLeaderElection(client, "leader", namespace="blue").try_acquire()
    assert token is not None
    assert green.get_execution("e1") is None and green.pending() == []
    assert green.instances() == [] and green.list_executions() == []
    # blue's leader leads blue only
    assert green.assign("e1", "i1", leader="leader", token=token).refusal is Refusal.STALE_TOKEN
    assert RedisLeaderElection(client, "other", namespace="green").try_acquire() == 1
    assert blue.assign("e1", "i1", leader="leader", token=token).ok
    namespaces = {key.split(b":")[0] for key in cast("list[bytes]", client.keys("*"))}
    assert namespaces == {b"blue", b"green"}
    client.close()


def test_redis_key_layout(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    store = RedisStateStore(client)
    store.create_execution(execution("e1"))
    store.create_execution(execution("e2", submitted_at=2.0))
    token = RedisLeaderElection(client, "leader").try_acquire()
    assert token is not None
    assert store.assign("e1", "i1", leader="leader", token=token).epoch == 1
    assert store.commit_task("e1", "i1", 1, "a", {"state": "running"})
    store.heartbeat(instance("i1"), ttl_s=10)
    assert client.get("workbench:leader") == f"leader:{token}".encode()
    assert client.zrange("workbench:pending", 0, -1, withscores=True) == [(b"e2", 2.0)]
    assert client.zrange("workbench:executions", 0, -1) == [b"e1", b"e2"]
    assert client.smembers("workbench:owner:i1") == {b"e1"}
    assert client.smembers("workbench:instances") == {b"i1"}
    assert 0 < client.pttl("workbench:instance:i1") <= 10_000
    fields = client.hgetall("workbench:exec:e1")
    assert fields[b"owner"] == b"i1" and fields[b"epoch"] == b"1"
    assert fields[b"task:a"] == b'{"state":"running"}'
    client.close()


def test_redis_store_works_with_decoded_responses(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    store = RedisStateStore(client)
    election = RedisLeaderElection(client, "host:8786")  # ids may contain ':'
    token = election.try_acquire()
    assert token is not None and election.holder() == ("host:8786", token)
    store.create_execution(execution())
    assert store.assign("e1", "i1", leader="host:8786", token=token).epoch == 1
    store.heartbeat(instance("i1"), ttl_s=10)
    got = store.get_execution("e1")
    assert got is not None and got.owner == "i1" and store.instances() == [instance("i1")]
    assert store.pending() == [] and [e.execution_id for e in store.list_executions()] == ["e1"]
    client.close()
