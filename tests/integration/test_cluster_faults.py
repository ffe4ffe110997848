"""Cluster mode under faults, with real processes: orchestrator instances killed (-9), paused
(SIGSTOP) past their lease, Redis stopped and restarted, and a burst of submissions.

What must hold (shared/DESIGN.md, "Cluster mode contracts"): a new leader takes over within
about a lease; a stale leader's writes are refused by its fencing token; a dead owner's
executions are re-assigned at a new epoch and complete with the same outputs; a task whose
completion was committed never runs again; nothing is lost while Redis is away.

Task bodies are counted with the probe ledger (one JSON line per body start and end, written
by the Dask workers), one ledger file per workflow, which also makes every workflow's cache
keys unique (the ledger path is a parameter).
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.integration.probe_tasks import read_ledger
from tests.integration.test_local_execution import probe, workflow
from tests.support.cluster import ClusterHarness, wait_for
from workbench.coordination.base import Refusal, StoredExecution
from workbench.dag.states import TaskState, WorkflowStatus
from workbench.errors import WorkbenchError

Spec = dict[str, Any]  # a workflow spec, as submitted

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

LEASE_S = 2.0


# -- workflows and what they must produce --------------------------------------------------------
def fan_flow(ledger: Path, workflow_id: str, sleep_s: float = 1.0) -> Spec:
    """a -> (b1, b2, b3) -> c: the fan keeps both workers busy while an instance dies."""
    bs = [probe(f"b{i}", ledger, ["a"], sleep_s=sleep_s, value=10.0 * i) for i in (1, 2, 3)]
    tasks = [probe("a", ledger, sleep_s=0.3, value=1.0), *bs]
    tasks.append(probe("c", ledger, ["b1", "b2", "b3"], sleep_s=0.2, value=1000.0))
    return {**workflow(*tasks), "workflow_id": workflow_id}


def chain_flow(ledger: Path, workflow_id: str, sleeps: list[float]) -> Spec:
    """t0 -> t1 -> ...: each adds 10**i to its input."""
    tasks = [
        probe(f"t{i}", ledger, [f"t{i - 1}"] if i else [], sleep_s=s, value=10.0**i)
        for i, s in enumerate(sleeps)
    ]
    return {**workflow(*tasks), "workflow_id": workflow_id}


def expected_outputs(spec: Spec) -> dict[str, float]:
    """What an undisturbed run computes: a probe's output is its value plus its inputs'."""
    outputs: dict[str, float] = {}
    for task in spec["tasks"]:  # listed in dependency order
        inputs = sum(outputs[d] for d in task["dependencies"])
        outputs[task["task_id"]] = task["parameters"]["value"] + inputs
    return outputs


def body_counts(ledger: Path, event: str = "end") -> collections.Counter[str]:
    return collections.Counter(e["task"] for e in read_ledger(ledger) if e["event"] == event)


def committed(execution: StoredExecution) -> set[str]:
    return {tid for tid, r in execution.tasks.items() if TaskState(r["state"]).succeeded}


def check_outputs(cluster: ClusterHarness, execution_id: str, spec: Spec) -> None:
    """Every task's result, fetched by a client from the shared cache (where a committed
    task's checkpoint must be), equals what an undisturbed run computes."""
    want = expected_outputs(spec)
    got, missing = {}, {}
    for tid in want:
        try:
            got[tid] = cluster.workbench.result(execution_id, tid).output
        except WorkbenchError as exc:
            missing[tid] = str(exc)
    assert not missing, (
        f"{execution_id}: tasks committed as succeeded without a checkpoint: {missing}"
    )
    assert got == want, f"{execution_id}: outputs {got}, an undisturbed run gives {want}"


def submit_one_per_instance(
    cluster: ClusterHarness, tmp_path: Path, make: Callable[[Path, str], Spec]
) -> dict[str, tuple[str, Spec, Path]]:
    """Submit one workflow per live instance and wait until each runs on its own instance
    (the leader balances by free capacity). Returns owner -> (execution id, spec, ledger)."""
    count = len(cluster.live())
    submitted = []
    for n in range(count):
        ledger = tmp_path / f"ledger{n}.jsonl"
        spec = make(ledger, f"flow{n}")
        submitted.append((cluster.submit(spec), spec, ledger))

    def owners() -> dict[str, tuple[str, Spec, Path]] | None:
        found = {}
        for item in submitted:
            stored = cluster.execution(item[0])
            if stored.status is not WorkflowStatus.RUNNING or stored.owner is None:
                return None
            found[stored.owner] = item
        return found if len(found) == count else None

    return wait_for(owners, 30, "one running execution per instance", 0.05)


def kill_an_owner_mid_workflow(tmp_path: Path, *, leader: bool) -> None:
    """Three instances, one fan workflow each; kill -9 the leader (or a non-leader) once its
    workflow has committed its first task, then check takeover, re-assignment and outputs."""
    with ClusterHarness(tmp_path, instances=3) as cluster:
        old_leader, old_token = cluster.wait_leader()
        running = submit_one_per_instance(cluster, tmp_path, fan_flow)
        victim = old_leader if leader else min(i for i in running if i != old_leader)
        execution_id = running[victim][0]
        wait_for(lambda: "a" in committed(cluster.execution(execution_id)), 30, "task a committed")

        killed_at, killed_wall = time.monotonic(), time.time()
        cluster.kill(victim)
        at_kill = {eid: committed(cluster.execution(eid)) for eid, _, _ in running.values()}
        assert "a" in at_kill[execution_id]
        victim_ledger = read_ledger(running[victim][2])
        ended = {e["task"] for e in victim_ledger if e["event"] == "end" and e["at"] < killed_wall}
        lagging = sorted(ended - at_kill[execution_id])
        print(
            f"committed at the kill: {sorted(at_kill[execution_id])}; ended but not yet "
            f"committed (checkpoint pending): {lagging}"
        )

        if leader:
            new_leader, new_token = cluster.wait_leader(10, other_than=victim)
            took_over = time.monotonic() - killed_at
            print(f"new leader {new_leader} (token {new_token}) {took_over:.2f} s after kill -9")
            assert new_token > old_token
            assert took_over < 3 * LEASE_S, f"took {took_over:.2f} s (lease {LEASE_S} s)"

        def reassigned() -> StoredExecution | None:
            stored = cluster.execution(execution_id)
            return stored if stored.owner not in (None, victim) else None

        moved = wait_for(reassigned, 15, f"{execution_id} re-assigned")
        print(
            f"{execution_id} moved {victim} -> {moved.owner} at epoch {moved.epoch}, "
            f"{time.monotonic() - killed_at:.2f} s after the kill"
        )
        assert moved.epoch >= 2

        done = cluster.wait_finished([eid for eid, _, _ in running.values()], 60)
        for owner, (eid, flow, flow_ledger) in running.items():
            final = done[eid]
            assert final.status is WorkflowStatus.SUCCEEDED, (eid, final.record, cluster.logs())
            assert committed(final) == set(expected_outputs(flow))
            assert final.owner != victim
            if eid != execution_id:
                assert final.epoch == 1, f"{eid} of live {owner} was never re-assigned"
            check_outputs(cluster, eid, flow)
            ends = body_counts(flow_ledger)
            assert set(ends) == set(expected_outputs(flow))
            twice = {t: n for t, n in ends.items() if n > 1}
            # Committed before the kill: checkpointed, so a new owner takes it from the cache.
            assert not (twice.keys() & at_kill[eid]), (
                f"{eid}: tasks committed before the kill ran again: {twice}"
            )
            if twice:
                print(f"{eid}: in flight at the kill, ran again (allowed): {twice}")
        assert victim not in {i.instance_id for i in cluster.live()}


# -- the tests -----------------------------------------------------------------------------------
def test_kill_9_of_the_leader_mid_workflow(tmp_path: Path) -> None:
    kill_an_owner_mid_workflow(tmp_path, leader=True)


def test_kill_9_of_a_non_leader_owner_mid_workflow(tmp_path: Path) -> None:
    kill_an_owner_mid_workflow(tmp_path, leader=False)


class HolderSampler:
    """Reads the lease holder every `interval` seconds on a thread, until stopped."""

    def __init__(self, cluster: ClusterHarness, interval: float = 0.02) -> None:
        self.election = cluster.election("sampler")
        self.interval = interval
        self.samples: list[tuple[float, tuple[str, int] | None]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> HolderSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.samples.append((time.monotonic(), self.election.holder()))


def test_a_paused_leader_is_replaced_and_fenced_off(tmp_path: Path) -> None:
    with ClusterHarness(tmp_path, instances=3) as cluster, HolderSampler(cluster) as sampler:
        old_leader, old_token = cluster.wait_leader()
        paused_at = time.monotonic()
        cluster.pause(old_leader)
        new_leader, new_token = cluster.wait_leader(10, other_than=old_leader)
        print(
            f"{new_leader} leads (token {new_token}) {time.monotonic() - paused_at:.2f} s "
            f"after SIGSTOP of {old_leader} (token {old_token})"
        )
        assert new_token > old_token

        # Work goes on without the paused instance, which is no longer live.
        wait_for(
            lambda: old_leader not in {i.instance_id for i in cluster.live()},
            5,
            f"{old_leader}'s heartbeat to expire",
        )
        ledger = tmp_path / "ledger.jsonl"
        spec = chain_flow(ledger, "while_paused", [0.3, 0.3])
        execution_id = cluster.submit(spec)
        owned = wait_for(
            lambda: cluster.execution(execution_id).owner, 10, "the new leader to assign it"
        )
        assert owned != old_leader
        before = cluster.execution(execution_id)

        # The paused leader's token is stale: the store refuses its writes.
        refused = cluster.store.assign(execution_id, old_leader, leader=old_leader, token=old_token)
        assert not refused.ok and refused.refusal is Refusal.STALE_TOKEN
        after = cluster.execution(execution_id)
        assert (after.owner, after.epoch) == (before.owner, before.epoch)

        time.sleep(max(0.0, paused_at + LEASE_S + 1.5 - time.monotonic()))  # well past the lease
        cluster.resume(old_leader)
        log = cluster.instances[old_leader]
        wait_for(lambda: "steps down as leader" in log.log(), 5, f"{old_leader} to step down")
        cluster.wait_live([old_leader], 10)  # it rejoins as a follower
        finished = cluster.wait_finished([execution_id], 30)[execution_id]
        assert finished.status is WorkflowStatus.SUCCEEDED
        assert finished.epoch == 1, "never re-assigned: the woken ex-leader assigns nothing"
        check_outputs(cluster, execution_id, spec)
        time.sleep(0.5)  # a few more samples with the old leader awake
        assert cluster.leader() == (new_leader, new_token)

    samples = [holder for _, holder in sampler.samples if holder is not None]
    assert len(sampler.samples) > 100, len(sampler.samples)
    tokens = [token for _, token in samples]
    assert tokens == sorted(tokens), "the fencing token never goes back"
    holders_by_token = collections.defaultdict(set)
    for holder, token in samples:
        holders_by_token[token].add(holder)
    assert all(len(h) == 1 for h in holders_by_token.values()), holders_by_token
    first_new = samples.index((new_leader, new_token))
    assert (old_leader, old_token) not in samples[first_new:], "the old leader came back"
    print(f"{len(sampler.samples)} samples of the lease holder: {dict(holders_by_token)}")


def test_redis_down_for_10_s_loses_nothing(tmp_path: Path) -> None:
    with ClusterHarness(tmp_path, instances=2, persistent_redis=True) as cluster:
        flows = submit_one_per_instance(
            cluster, tmp_path, lambda ledger, wid: chain_flow(ledger, wid, [0.5, 2, 2, 2, 0.5])
        )
        ids = [eid for eid, _, _ in flows.values()]
        wait_for(
            lambda: all("t0" in committed(cluster.execution(i)) for i in ids), 30, "t0 committed"
        )
        cluster.redis.stop()
        down_at = time.monotonic()
        time.sleep(10)
        cluster.redis.start()  # same port, same append-only file
        print(f"Redis was down for {time.monotonic() - down_at:.1f} s")

        done = cluster.wait_finished(ids, 60)
        for eid, spec, ledger in flows.values():
            final = done[eid]
            assert final.status is WorkflowStatus.SUCCEEDED, (eid, final.record, cluster.logs())
            assert committed(final) == set(expected_outputs(spec))
            ends = body_counts(ledger)
            assert set(ends) == set(expected_outputs(spec))
            print(
                f"{eid}: owner {final.owner}, epoch {final.epoch}, task bodies ended {dict(ends)}"
            )
            check_outputs(cluster, eid, spec)
        time.sleep(1)  # nothing changes its mind after the end
        assert all(cluster.execution(i).status is WorkflowStatus.SUCCEEDED for i in ids)


def test_thirty_workflows_at_once_run_exactly_once_spread_over_instances(tmp_path: Path) -> None:
    with ClusterHarness(tmp_path, instances=3, capacity=4) as cluster:
        flows = {}
        for n in range(30):
            ledger = tmp_path / f"ledger{n:02d}.jsonl"
            spec = chain_flow(ledger, f"burst{n:02d}", [0.05, 0.05])
            flows[cluster.submit(spec)] = (spec, ledger)
        started = time.monotonic()
        done = cluster.wait_finished(flows, 90)
        print(f"30 workflows finished {time.monotonic() - started:.1f} s after the last submit")

        split = collections.Counter(e.owner for e in done.values())
        print(f"executions per instance: {dict(sorted(split.items()))}")
        for eid, (spec, ledger) in flows.items():
            final = done[eid]
            assert final.status is WorkflowStatus.SUCCEEDED, (eid, final.record, cluster.logs())
            assert final.epoch == 1, f"{eid} was re-assigned"
            tasks = set(expected_outputs(spec))
            assert body_counts(ledger, "start") == dict.fromkeys(tasks, 1), eid
            assert body_counts(ledger) == dict.fromkeys(tasks, 1), eid
            check_outputs(cluster, eid, spec)
        assert set(split) == {"i1", "i2", "i3"}, f"not spread over all three: {split}"
