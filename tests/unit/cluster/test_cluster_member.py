"""Leadership and assignment, driven by hand on the in-memory store: no Redis, no sleeping
for leases (the clock is ours)."""

from __future__ import annotations

import asyncio
import time

from workbench.config import Settings
from workbench.coordination.base import InstanceInfo, StoredExecution
from workbench.coordination.memory_store import MemoryLeaderElection, MemoryStateStore
from workbench.dag.states import WorkflowStatus
from workbench.orchestrator.cluster import ClusterMember, Role


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


SETTINGS = Settings(
    redis_url="redis://unused:1/0",
    lease_ms=2000,
    renew_interval_ms=500,
    renew_deadline_ms=1500,
    heartbeat_ttl_ms=2000,
    capacity=2,
)


def member(store: MemoryStateStore, clock: Clock, name: str, load: int = 0) -> ClusterMember:
    election = MemoryLeaderElection(store.lease, name, lease_ms=SETTINGS.lease_ms)
    return ClusterMember(name, SETTINGS, store, election, lambda: load, clock=clock)


def submit(store: MemoryStateStore, execution_id: str, at: float) -> None:
    store.create_execution(
        StoredExecution(
            execution_id=execution_id,
            workflow_id="wf",
            spec={"workflow_id": "wf", "tasks": []},
            base_dir="/tmp",
            submitted_at=at,
        )
    )


def alive(store: MemoryStateStore, name: str, capacity: int = 2) -> None:
    info = InstanceInfo(name, capacity=capacity, load=0, heartbeat_at=time.time())
    store.heartbeat(info, SETTINGS.heartbeat_ttl_ms / 1000)


def test_one_leader_and_assignment_by_free_capacity() -> None:
    clock = Clock()
    store = MemoryStateStore(clock=clock)
    a, b = member(store, clock, "a"), member(store, clock, "b")
    for name in ("a", "b"):
        alive(store, name)
    for i in range(5):
        submit(store, f"x{i}", at=float(i))

    async def scenario() -> None:
        await a._lead_once()
        await b._lead_once()

    asyncio.run(scenario())
    assert (a.role, b.role) == (Role.LEADER, Role.FOLLOWER)
    owners = [store.get_execution(f"x{i}").owner for i in range(5)]  # type: ignore[union-attr]
    # Capacity 2 each: the four oldest are placed, two per instance; the newest waits.
    assert sorted(o for o in owners if o) == ["a", "a", "b", "b"]
    assert owners[4] is None
    assert store.pending() == ["x4"]


def test_a_leader_that_cannot_renew_in_time_steps_down_before_acting() -> None:
    clock = Clock()
    store = MemoryStateStore(clock=clock)
    a = member(store, clock, "a")
    alive(store, "a")
    asyncio.run(a._lead_once())
    assert a.leading and a.token == 1
    clock.now += 1.6  # past the renew deadline (1.5 s), still inside the lease (2 s)
    assert not a.leading, "it steps down before its lease could have run out"
    assert a.token is None


def test_a_paused_leader_is_refused_and_a_new_one_takes_over() -> None:
    clock = Clock()
    store = MemoryStateStore(clock=clock)
    a, b = member(store, clock, "a"), member(store, clock, "b")
    alive(store, "a")
    asyncio.run(a._lead_once())
    old_token = a.token
    assert old_token is not None
    clock.now += 2.5  # a was paused past its lease
    alive(store, "b")
    asyncio.run(b._lead_once())
    assert b.leading and b.token is not None and b.token > old_token
    submit(store, "late", at=clock.now)
    refused = store.assign("late", "a", leader="a", token=old_token)
    assert not refused.ok and refused.refusal is not None
    assert refused.refusal.value == "stale fencing token"


def test_executions_of_a_dead_instance_are_reassigned_at_a_new_epoch() -> None:
    clock = Clock()
    store = MemoryStateStore(clock=clock)
    a = member(store, clock, "a")
    alive(store, "a")
    alive(store, "gone")
    submit(store, "x", at=0.0)
    asyncio.run(a._lead_once())
    first = store.get_execution("x")
    assert first is not None and first.owner in {"a", "gone"}
    if first.owner == "a":  # make the dead instance the owner, as after a crash
        store.release("x", "a", first.epoch)
        store.remove_instance("a")
        asyncio.run(a.assign_round())
        alive(store, "a")
    owned = store.get_execution("x")
    assert owned is not None and owned.owner == "gone"
    store.commit_execution("x", "gone", owned.epoch, WorkflowStatus.RUNNING, {})
    for _ in range(7):  # 2.8 s: gone's heartbeat expires; a renews and heartbeats as it goes
        clock.now += 0.4
        alive(store, "a")
        asyncio.run(a._lead_once())
    moved = store.get_execution("x")
    assert moved is not None and moved.owner == "a" and moved.epoch == owned.epoch + 1
    late = store.commit_task("x", "gone", owned.epoch, "t", {"state": "succeeded"})
    assert not late.ok, "the zombie owner's commit is refused"


def test_the_leader_tells_the_stream_about_leadership_assignments_and_workers() -> None:
    from workbench.events.models import SEQ_EPOCH_SHIFT, Event, EventType
    from workbench.execution.base import WorkerInfo

    clock = Clock()
    store = MemoryStateStore(clock=clock)
    events: list[Event] = []
    workers = [WorkerInfo("tcp://w1", "w1")]

    async def current_workers() -> list[WorkerInfo]:
        return list(workers)

    election = MemoryLeaderElection(store.lease, "a", lease_ms=SETTINGS.lease_ms)
    a = ClusterMember(
        "a",
        SETTINGS,
        store,
        election,
        lambda: 0,
        clock=clock,
        emit=events.append,
        workers=current_workers,
    )
    alive(store, "a")
    submit(store, "x", at=0.0)
    asyncio.run(a._lead_once())  # leads, assigns x, first look at the workers
    workers.append(WorkerInfo("tcp://gpu", "gpu", resources={"GPU": 1.0}))
    workers.pop(0)
    clock.now += 1.1
    alive(store, "a")
    asyncio.run(a._lead_once())
    kinds = [e.type for e in events]
    assert kinds == [
        EventType.LEADER_ELECTED,
        EventType.WORKFLOW_ASSIGNED,
        EventType.WORKER_JOINED,
        EventType.WORKER_LEFT,
    ]
    assigned = events[1]
    assert assigned.execution_id == "x" and assigned.data["owner"] == "a"
    assert assigned.seq == 1 << SEQ_EPOCH_SHIFT, "first of epoch 1: the owner's events follow"
    assert events[2].data["resources"] == {"GPU": 1.0}
    assert events[3].data["name"] == "w1"
