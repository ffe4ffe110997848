"""Cluster mode across hosts: every server in its own network namespace, and partitions.

Seven hosts on one bridge (tests/support/netns.py): redis, broker (Tansu), scheduler,
worker-1, worker-2, orch-1 and orch-2, each server bound to its host's address and reached at
it. The test process stays in the root namespace and reaches them through the bridge, as a
client on another machine would. Three phases, one cluster:

1. a fan workflow runs to success with tasks on both worker hosts; its events reach the broker;
2. the leader's host is cut off the network while it owns a running chain: the other instance
   takes the lease and the chain and finishes it; healed, the old leader rejoins as a follower
   and changes nothing (failover times are printed);
3. a follower is cut off Redis only (it still reaches the workers) while it owns a running
   chain: it runs the chain to its end and buffers its commits meanwhile, the leader gives the
   chain to the other instance; healed, the follower's late commits are replayed and refused
   (fencing by ownership epoch) and the finished record does not change.

Where namespaces cannot be made (not root, no iproute2) the test says so loudly: it fails
under CI (the CI runs as root and must run it), and skips elsewhere.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_cluster_faults import (
    body_counts,
    chain_flow,
    check_outputs,
    committed,
    expected_outputs,
    fan_flow,
    submit_one_per_instance,
)
from tests.support import netns
from tests.support.cluster import (
    REPO_ROOT,
    ClusterHarness,
    InstanceProcess,
    wait_for,
)
from tests.support.kafka_broker import tansu_binary, wait_until_serving
from tests.support.redis_server import NOT_INSTALLED
from workbench.coordination.base import Refusal, StoredExecution
from workbench.dag.states import WorkflowStatus

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

HOSTS = ("redis", "broker", "scheduler", "worker-1", "worker-2", "orch-1", "orch-2")
REDIS_PORT, KAFKA_PORT, SCHEDULER_PORT = 6379, 9092, 8786  # each host has its own ports
TOPIC = "workbench.multihost"
LEASE_S = 2.0


# -- the lab -------------------------------------------------------------------------------------
@pytest.fixture
def lab() -> Iterator[netns.Lab]:
    reason = netns.unavailable_reason()
    if reason is None:
        try:
            with netns.Lab(HOSTS) as built:
                yield built
            return
        except netns.NetnsUnavailable as exc:
            reason = str(exc)
    message = f"MULTI-HOST TEST NOT RUN: cannot make network namespaces here: {reason}"
    if os.environ.get("CI"):
        pytest.fail(f"{message} (CI must run it: run the suite as root)", pytrace=False)
    pytest.skip(f"{message} (run as root to test partitions between hosts)")


# -- the cluster on it ---------------------------------------------------------------------------
@dataclass
class Remote:
    """A server on a lab host, as ClusterHarness's checks look at it."""

    url: str
    log_path: Path

    @property
    def address(self) -> str:
        return self.url


class NetnsInstance(InstanceProcess):
    """`workbench orchestrator` on the lab host named like the instance."""

    def __init__(
        self, lab: netns.Lab, instance_id: str, profile: Path, log_path: Path, env: dict[str, str]
    ) -> None:
        self.lab = lab
        super().__init__(instance_id, profile, log_path, env)

    def spawn(
        self, command: list[str], log_path: Path, env: Mapping[str, str]
    ) -> subprocess.Popen[bytes]:
        return self.lab.popen(self.instance_id, command, log_path, env=dict(env), cwd=REPO_ROOT)


class MultiHostCluster(ClusterHarness):
    """ClusterHarness's checks (store, leader, wait_*, client) over servers on lab hosts; the
    orchestrator instances are `orch-1` and `orch-2`, on the hosts of those names."""

    def __init__(self, root: Path, lab: netns.Lab) -> None:
        super().__init__(root, instances=0, start_timeout=60.0)
        self.lab = lab
        # Stand-ins for RedisProcess and DaskProcess: what the inherited checks read of them.
        redis_url = f"redis://{lab.address('redis')}:{REDIS_PORT}/0"
        scheduler = f"tcp://{lab.address('scheduler')}:{SCHEDULER_PORT}"
        self.redis = Remote(redis_url, root / "redis.log")  # type: ignore[assignment]
        self.dask = Remote(scheduler, root / "scheduler.log")  # type: ignore[assignment]
        self.bootstrap = f"{lab.address('broker')}:{KAFKA_PORT}"
        self.profile_extra = {"kafka_bootstrap_servers": self.bootstrap, "kafka_topic": TOPIC}

    def __enter__(self) -> MultiHostCluster:
        try:
            self._start_servers()
            self.write_profile()
            self.start_instance("orch-1")
            self.start_instance("orch-2")
            self.wait_live(["orch-1", "orch-2"], timeout=self.start_timeout)
        except BaseException:
            self.close(failed=True)
            raise
        return self

    def close(self, *, failed: bool = False) -> None:
        if failed:
            print(self.logs(), file=sys.stderr)
        if self._workbench is not None:
            self._workbench.close()
            self._workbench = None
        if self._client is not None:
            self._client.close()
            self._client, self._store = None, None
        self.lab.close()  # every server and instance, with the namespaces they ran in

    def _start_servers(self) -> None:
        """Start every server on its host at once, then wait until each answers from here."""
        lab, env, root = self.lab, self.env("server"), self.root
        redis_server = shutil.which("redis-server")
        if redis_server is None:
            raise RuntimeError(NOT_INSTALLED)
        (root / "redis").mkdir(exist_ok=True)
        redis_argv = [
            *(redis_server, "--bind", lab.address("redis"), "--port", str(REDIS_PORT)),
            *("--save", "", "--appendonly", "no", "--protected-mode", "no"),
            *("--dir", str(root / "redis"), "--logfile", str(self.redis.log_path)),
        ]
        lab.popen("redis", redis_argv, root / "redis-stdout.log")
        kafka_url = f"tcp://{self.bootstrap}"  # advertised too: what metadata tells clients
        tansu_argv = [
            *(tansu_binary(), "broker", "--listener-url", kafka_url),
            *("--advertised-listener-url", kafka_url, "--storage-engine", "memory://tansu/"),
        ]
        lab.popen("broker", tansu_argv, root / "tansu.log")
        dask = str(Path(sys.executable).parent / "dask")
        scheduler_argv = [dask, "scheduler", "--host", lab.address("scheduler")]
        scheduler_argv += ["--port", str(SCHEDULER_PORT), "--no-dashboard"]
        lab.popen("scheduler", scheduler_argv, self.dask.log_path, env=env, cwd=REPO_ROOT)
        for worker in ("worker-1", "worker-2"):
            worker_argv = [
                *(dask, "worker", self.dask.address, "--host", lab.address(worker)),
                *("--name", worker, "--nthreads", "1", "--no-nanny", "--no-dashboard"),
                *("--preload", "workbench.execution.worker"),  # warm, as in ClusterHarness
            ]
            lab.popen(worker, worker_argv, root / f"{worker}.log", env=env, cwd=REPO_ROOT)
        wait_for(self._redis_answers, 15, "redis-server on its host")
        wait_until_serving(self.bootstrap, 20)
        asyncio.run(create_topic(self.bootstrap, TOPIC))
        self._wait_workers(2, 60)

    def _redis_answers(self) -> bool:
        import redis

        try:
            return bool(self.client.ping())
        except redis.exceptions.ConnectionError:
            return False

    def _wait_workers(self, count: int, timeout: float) -> None:
        from distributed import Client

        with Client(self.dask.address, timeout=timeout) as client:
            client.wait_for_workers(count, timeout=timeout)

    def start_instance(
        self, instance_id: str | None = None, *, capacity: int | None = None
    ) -> InstanceProcess:
        assert instance_id in self.lab.hosts, instance_id
        log_path = self.root / f"{instance_id}.log"
        instance = NetnsInstance(
            self.lab, instance_id, self.profile_path, log_path, self.env(instance_id)
        )
        self.instances[instance_id] = instance
        return instance


async def create_topic(bootstrap: str, topic: str) -> None:
    from tests.support.kafka_broker import create_topic as create

    await create(bootstrap, topic, partitions=1)


async def event_count(bootstrap: str, execution_id: str, timeout: float = 10.0) -> int:
    """Events of `execution_id` on the broker's topic (the instances publish them there)."""
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        TOPIC, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest"
    )
    await consumer.start()
    found, key = 0, execution_id.encode()
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=200)
            found += sum(r.key == key for batch in batches.values() for r in batch)
            if found and not batches:
                break  # caught up
    finally:
        await consumer.stop()
    return found


def worker_hosts(execution: StoredExecution) -> dict[str, str]:
    """task -> the address of the worker host its (last) attempt ran on."""
    hosts = {}
    for task_id, record in execution.tasks.items():
        worker = record.get("worker") or ""
        hosts[task_id] = worker.removeprefix("tcp://").rsplit(":", 1)[0]
    return hosts


# -- the test ------------------------------------------------------------------------------------
Flows = dict[str, tuple[str, dict[str, Any], Path]]  # owner -> (execution id, spec, ledger)


def run_across_worker_hosts(cluster: MultiHostCluster, lab: netns.Lab, tmp_path: Path) -> None:
    """A fan runs to success with tasks on both worker hosts; its events reach the broker."""
    spread = fan_flow(tmp_path / "spread.jsonl", "spread", sleep_s=1.0)
    spread_id = cluster.submit(spread)
    final = cluster.wait_finished([spread_id], 60)[spread_id]
    assert final.status is WorkflowStatus.SUCCEEDED, (final.record, cluster.logs())
    check_outputs(cluster, spread_id, spread)
    ran_on = worker_hosts(final)
    print(f"{spread_id} (owner {final.owner}) ran its tasks on {ran_on}")
    assert set(ran_on.values()) == {lab.address("worker-1"), lab.address("worker-2")}
    events = asyncio.run(event_count(cluster.bootstrap, spread_id))
    print(f"{events} events of {spread_id} on the broker at {cluster.bootstrap}")
    assert events > 0


def running_flows(cluster: MultiHostCluster, folder: Path) -> Flows:
    """One chain per instance, each running on its own instance, past its first task."""
    folder.mkdir()  # own ledgers: own cache keys, nothing is a cache hit of an earlier phase
    flows = submit_one_per_instance(
        cluster, folder, lambda ledger, wid: chain_flow(ledger, wid, [0.3, 1.2, 1.2, 1.2, 0.3])
    )
    ids = [eid for eid, _, _ in flows.values()]

    def past_t0() -> bool:
        return all("t0" in committed(cluster.execution(eid)) for eid in ids)

    wait_for(past_t0, 30, "t0 committed in every chain")
    return flows


def wait_reowned(cluster: MultiHostCluster, execution_id: str, owner: str) -> StoredExecution:
    def reowned() -> StoredExecution | None:
        stored = cluster.execution(execution_id)
        return stored if stored.owner == owner else None

    return wait_for(reowned, 20, f"{execution_id} re-owned by {owner}", 0.01)


def check_finished(cluster: MultiHostCluster, flows: Flows, owner: str) -> dict[str, Any]:
    """Every flow succeeded under `owner` with every output right; returns their records."""
    ids = [eid for eid, _, _ in flows.values()]
    done = cluster.wait_finished(ids, 60)
    for eid, spec, _ in flows.values():
        final = done[eid]
        assert final.status is WorkflowStatus.SUCCEEDED, (eid, final.record, cluster.logs())
        assert committed(final) == set(expected_outputs(spec)), eid
        assert final.owner == owner, eid
        check_outputs(cluster, eid, spec)
    return {eid: (e.status, e.owner, e.epoch, e.tasks) for eid, e in done.items()}


def check_unchanged(cluster: MultiHostCluster, settled: dict[str, Any]) -> None:
    for eid, before in settled.items():
        now = cluster.execution(eid)
        assert (now.status, now.owner, now.epoch, now.tasks) == before, f"{eid} changed"


def late_writes_refused(
    cluster: MultiHostCluster, instance_id: str, execution_id: str
) -> list[str]:
    """The log lines where `instance_id` says Redis refused a commit of `execution_id` that
    it made while cut off (buffered, replayed on reconnection) or after it."""
    said = ("refused when replayed", "no longer owns")
    return [
        line.split(": ", 1)[-1]
        for line in cluster.instances[instance_id].log().splitlines()
        if execution_id in line and any(s in line for s in said)
    ]


def partition_the_leader(cluster: MultiHostCluster, lab: netns.Lab, tmp_path: Path) -> str:
    """Cut the leader's host off the network while it owns a running chain: the other instance
    leads, re-owns the chain and finishes it; healed, the old leader changes nothing.
    Returns the instance that leads at the end."""
    flows = running_flows(cluster, tmp_path / "cut")
    leader, token = cluster.wait_leader()
    survivor = next(i for i in flows if i != leader)
    victim_id, _, victim_ledger = flows[leader]
    at_cut = committed(cluster.execution(victim_id))
    cut_at = time.monotonic()
    lab.cut(leader)

    new_leader, new_token = cluster.wait_leader(15, other_than=leader)
    leader_after = time.monotonic() - cut_at
    moved = wait_reowned(cluster, victim_id, survivor)
    owner_after = time.monotonic() - cut_at
    print(
        f"FAILOVER: cut {leader} (token {token}) off with {sorted(at_cut)} committed: "
        f"{new_leader} leads (token {new_token}) after {leader_after:.2f} s and owns "
        f"{victim_id} at epoch {moved.epoch} after {owner_after:.2f} s"
    )
    assert new_leader == survivor and new_token > token
    assert moved.epoch >= 2
    assert leader_after < 3 * LEASE_S, f"a new leader only after {leader_after:.2f} s"

    settled = check_finished(cluster, flows, survivor)
    twice = {t: n for t, n in body_counts(victim_ledger).items() if n > 1}
    assert not (twice.keys() & at_cut), f"tasks committed before the cut ran again: {twice}"
    print(f"finished {time.monotonic() - cut_at:.2f} s after the cut; ran twice: {twice}")
    # What the cut-off leader would write is stale: Redis refuses it.
    refused = cluster.store.assign(victim_id, leader, leader=leader, token=token)
    assert refused.refusal is Refusal.STALE_TOKEN
    assert not cluster.store.commit_task(victim_id, leader, 1, "t4", {"state": "succeeded"}).ok

    lab.heal(leader)
    healed_at = time.monotonic()
    cluster.wait_live([leader], 20)  # back, as a follower
    print(f"{leader} heartbeats again {time.monotonic() - healed_at:.2f} s after the heal")
    assert "steps down as leader" in cluster.instances[leader].log()
    time.sleep(2 * LEASE_S)  # room for anything it still had to try
    assert cluster.leader() == (new_leader, new_token)
    check_unchanged(cluster, settled)
    late = late_writes_refused(cluster, leader, victim_id)  # only if results came in meanwhile
    print(f"{leader}'s late writes to {victim_id}: {len(late)} refused {late[:1]}")
    return new_leader


def partition_an_owner_from_redis(
    cluster: MultiHostCluster, lab: netns.Lab, tmp_path: Path
) -> None:
    """Cut a follower off Redis only, while it owns a running chain: it keeps running it on
    the workers and buffers its commits; the leader re-assigns the chain, which finishes
    elsewhere. Healed, the follower's buffered (late) commits are replayed and refused."""
    leader, token = cluster.wait_leader()
    flows = running_flows(cluster, tmp_path / "redis-cut")
    victim = next(i for i in flows if i != leader)
    victim_id, _, victim_ledger = flows[victim]
    cut_at = time.monotonic()
    lab.block(victim, "redis")
    moved = wait_reowned(cluster, victim_id, leader)
    print(
        f"{victim} cut off Redis: {leader} owns {victim_id} at epoch {moved.epoch} "
        f"after {time.monotonic() - cut_at:.2f} s"
    )
    settled = check_finished(cluster, flows, leader)
    # Both runs reach the last task: the cut-off one has commits waiting for Redis.
    wait_for(lambda: body_counts(victim_ledger)["t4"] >= 2, 20, f"{victim}'s own run to end")

    lab.unblock(victim, "redis")
    wait_for(
        lambda: late_writes_refused(cluster, victim, victim_id),
        20,
        f"{victim}'s buffered commits to be replayed and refused",
    )
    cluster.wait_live([victim], 20)
    time.sleep(LEASE_S)  # room for anything else it still had to try
    refusals = late_writes_refused(cluster, victim, victim_id)
    print(f"{victim}'s late writes to {victim_id}: {len(refusals)} refused, e.g. {refusals[-1]}")
    check_unchanged(cluster, settled)
    assert cluster.leader() == (leader, token)


def test_partitions_between_hosts_fail_over_and_fence(lab: netns.Lab, tmp_path: Path) -> None:
    began = time.monotonic()
    with MultiHostCluster(tmp_path, lab) as cluster:
        hosts = ", ".join(f"{h.name} {h.address}" for h in lab.hosts.values())
        print(f"hosts on {lab.subnet}: {hosts}; up in {time.monotonic() - began:.1f} s")
        run_across_worker_hosts(cluster, lab, tmp_path)
        partition_the_leader(cluster, lab, tmp_path)
        partition_an_owner_from_redis(cluster, lab, tmp_path)
    print(f"whole test {time.monotonic() - began:.1f} s")
