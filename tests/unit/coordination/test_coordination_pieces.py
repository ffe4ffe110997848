"""Coordination pieces that need no server: key names, argument checks, the in-memory clock,
and Redis errors reaching the caller unchanged (a client pointed at a closed port)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.support.redis_server import free_port
from workbench.coordination.base import InstanceInfo, Refusal, StoredExecution
from workbench.coordination.election import (
    DEFAULT_LEASE_MS,
    RENEW_EVERY_MS,
    STEP_DOWN_AFTER_MS,
    RedisLeaderElection,
    step_down_after_ms,
)
from workbench.coordination.keys import Keys, lease_value, parse_lease_value
from workbench.coordination.memory_store import (
    MemoryLeaderElection,
    MemoryLease,
    MemoryStateStore,
)
from workbench.coordination.redis_store import RedisStateStore
from workbench.dag.states import WorkflowStatus


def test_key_names() -> None:
    keys = Keys("blue")
    assert (keys.leader, keys.leader_token) == ("blue:leader", "blue:leader:token")
    assert (keys.pending, keys.executions, keys.instances) == (
        "blue:pending",
        "blue:executions",
        "blue:instances",
    )
    assert keys.execution("e1") == "blue:exec:e1"
    assert keys.owner("i1") == "blue:owner:i1" and keys.instance("i1") == "blue:instance:i1"
    assert Keys().leader == "workbench:leader"


@pytest.mark.parametrize("namespace", ["", "a b", "a:b", "x" * 65, "ns/1"])
def test_a_namespace_is_checked(namespace: str) -> None:
    with pytest.raises(ValueError, match="namespace"):
        Keys(namespace)


@pytest.mark.parametrize("instance_id", ["i1", "host:8786", "a:b:c", ""])
def test_lease_values_round_trip(instance_id: str) -> None:
    assert parse_lease_value(lease_value(instance_id, 42)) == (instance_id, 42)


def test_lease_timings_leave_room_to_step_down() -> None:
    assert RENEW_EVERY_MS < STEP_DOWN_AFTER_MS < DEFAULT_LEASE_MS
    assert step_down_after_ms(DEFAULT_LEASE_MS) == STEP_DOWN_AFTER_MS
    assert step_down_after_ms(400) == 300


def test_elections_check_their_arguments() -> None:
    lease = MemoryLease()
    with pytest.raises(ValueError, match="lease_ms"):
        MemoryLeaderElection(lease, "a", lease_ms=0)
    with pytest.raises(ValueError, match="instance_id"):
        MemoryLeaderElection(lease, "")
    client = redis.Redis(port=free_port())  # never connects: nothing is sent
    with pytest.raises(ValueError, match="lease_ms"):
        RedisLeaderElection(client, "a", lease_ms=-1)
    with pytest.raises(ValueError, match="namespace"):
        RedisLeaderElection(client, "a", namespace="bad name")
    with pytest.raises(ValueError, match="namespace"):
        RedisStateStore(client, namespace="")


def test_memory_lease_runs_on_its_clock() -> None:
    now = [0.0]
    lease = MemoryLease(lambda: now[0])
    a = MemoryLeaderElection(lease, "a", lease_ms=1000)
    token = a.try_acquire()
    assert token == 1
    now[0] = 0.999
    assert a.holder() == ("a", 1) and a.renew(1)  # now until 1.999
    now[0] = 1.998
    assert lease.holds("a", 1)
    now[0] = 1.999
    assert a.holder() is None and not lease.holds("a", 1)


def test_memory_store_checks_tokens_against_its_own_lease() -> None:
    store = MemoryStateStore()  # its own lease, on the real monotonic clock
    store.create_execution(StoredExecution("e1", "wf", {}, "/"))
    elsewhere = MemoryLeaderElection(MemoryLease(), "leader")  # another cluster's lease
    token = elsewhere.try_acquire()
    assert token is not None
    assert store.assign("e1", "i1", leader="leader", token=token).refusal is Refusal.STALE_TOKEN
    token = MemoryLeaderElection(store.lease, "leader").try_acquire()
    assert token is not None
    assert store.assign("e1", "i1", leader="leader", token=token).epoch == 1


def test_memory_store_rejects_what_redis_could_not_store() -> None:
    store = MemoryStateStore()
    with pytest.raises(TypeError):
        store.create_execution(StoredExecution("e1", "wf", {"when": object()}, "/"))
    assert store.get_execution("e1") is None


# -- Redis errors propagate unchanged ----------------------------------------------------------


@pytest.fixture
def unreachable() -> Iterator[redis.Redis]:
    # no retries: redis-py's default policy would back off for seconds on every call
    client = redis.Redis(port=free_port(), socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0))
    yield client
    client.close()


def calls(client: redis.Redis) -> list[Callable[[], object]]:
    store, election = RedisStateStore(client), RedisLeaderElection(client, "a")
    info = InstanceInfo("a", capacity=1, load=0, heartbeat_at=0.0)
    return [
        lambda: store.create_execution(StoredExecution("e1", "wf", {}, "/")),
        lambda: store.get_execution("e1"),
        lambda: store.list_executions(),
        lambda: store.pending(),
        lambda: store.assign("e1", "i1", leader="a", token=1),
        lambda: store.commit_task("e1", "i1", 1, "t", {}),
        lambda: store.commit_execution("e1", "i1", 1, WorkflowStatus.RUNNING, {}),
        lambda: store.release("e1", "i1", 1),
        lambda: store.request_cancel("e1"),
        lambda: store.heartbeat(info, ttl_s=1),
        lambda: store.instances(),
        lambda: store.remove_instance("a"),
        election.try_acquire,
        lambda: election.renew(1),
        lambda: election.release(1),
        election.holder,
    ]


def test_redis_connection_errors_reach_the_caller_unchanged(unreachable: redis.Redis) -> None:
    for call in calls(unreachable):
        with pytest.raises(redis.exceptions.ConnectionError):
            call()
