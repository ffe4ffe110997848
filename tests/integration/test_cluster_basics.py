"""Cluster mode with real processes, nothing going wrong: instances elect one leader, run what
clients submit, report themselves in `cluster status`; two orchestrators in one process form a
cluster by themselves; an unreachable server at start-up is a clear error, not a traceback."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.test_local_execution import probe, workflow
from tests.support.cluster import REPO_ROOT, WORKBENCH, ClusterHarness, RedisProcess
from tests.support.redis_server import free_port
from workbench.dag.states import TaskState, WorkflowStatus
from workbench.orchestrator.orchestrator import DistributedOrchestrator

Spec = dict[str, Any]  # a workflow spec, as submitted

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def small_flow(ledger: Path, workflow_id: str = "probe_flow", sleep_s: float = 0.2) -> Spec:
    """a -> b: b's output is 10 + a's 1."""
    spec = workflow(
        probe("a", ledger, sleep_s=sleep_s, value=1.0),
        probe("b", ledger, ["a"], sleep_s=sleep_s, value=10.0),
    )
    return {**spec, "workflow_id": workflow_id}


def test_two_instances_one_leader_run_a_client_workflow(tmp_path: Path) -> None:
    with ClusterHarness(tmp_path, instances=2) as cluster:
        leader, token = cluster.wait_leader()
        assert leader in {"i1", "i2"}

        async def client_run() -> tuple[Any, float]:
            client = DistributedOrchestrator("client", settings=cluster.settings, member=False)
            try:
                execution_id = await client.submit_ml_workflow(small_flow(tmp_path / "l.jsonl"))
                execution = await client.wait_for_execution(execution_id, timeout=60)
                result = await client.fetch_result(execution_id, "b")
                return execution, result.output
            finally:
                await client.close()

        execution, output = asyncio.run(client_run())
        assert execution.status is WorkflowStatus.SUCCEEDED, cluster.logs()
        assert {t.state for t in execution.tasks.values()} == {TaskState.SUCCEEDED}
        assert output == 11.0
        stored = cluster.execution(execution.execution_id)
        assert stored.owner in {"i1", "i2"} and stored.epoch == 1

        report = cluster.status_json()
        assert report["leader"] == {"instance_id": leader, "token": token}
        rows = {row["instance_id"]: row for row in report["instances"]}
        assert set(rows) == {"i1", "i2"}
        assert [iid for iid, row in rows.items() if row["leader"]] == [leader]
        assert len(report["workers"]) == 2
        assert {s["name"]: s["state"] for s in report["services"]} == {
            "redis": "ok",
            "kafka": "not configured",
            "scheduler": "ok",
        }
        assert [e["execution_id"] for e in report["executions"]] == [execution.execution_id]


def test_two_orchestrators_in_one_process_coordinate(tmp_path: Path) -> None:
    """The seed API: DistributedOrchestrator("instance-N", settings=s) is a cluster member."""
    with ClusterHarness(tmp_path, instances=0) as cluster:

        async def scenario() -> tuple[list[str], dict[str, Any]]:
            one = DistributedOrchestrator("instance-1", settings=cluster.settings)
            two = DistributedOrchestrator("instance-2", settings=cluster.settings)
            try:
                await asyncio.gather(one.start(), two.start())
                holder = await asyncio.to_thread(cluster.wait_leader)
                ids = []
                for n, orchestrator in enumerate([one, two, one, two]):
                    spec = small_flow(tmp_path / f"l{n}.jsonl", f"seed{n}", sleep_s=0.5)
                    ids.append(await orchestrator.submit_ml_workflow(spec))
                done = [await one.wait_for_execution(i, timeout=60) for i in ids]
                assert all(e.status is WorkflowStatus.SUCCEEDED for e in done)
                assert (await two.fetch_result(ids[0], "b")).output == 11.0
                return ids, {"leader": holder}
            finally:
                await asyncio.gather(one.close(), two.close())

        ids, seen = asyncio.run(scenario())
        assert seen["leader"][0] in {"instance-1", "instance-2"}
        owners = [cluster.execution(i).owner for i in ids]
        print(f"owners: {owners}")
        assert set(owners) == {"instance-1", "instance-2"}, "executions spread over both"
        assert cluster.live() == [], "both left the cluster on close"


def run_orchestrator(profile: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*WORKBENCH, "orchestrator", "--profile", str(profile), "--instance-id", "lonely"],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=timeout,
    )


def test_unreachable_redis_is_a_clear_error(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    profile = tmp_path / "profile.yaml"
    profile.write_text(yaml.safe_dump({"redis_url": f"redis://127.0.0.1:{port}/0"}))
    done = run_orchestrator(profile)
    output = " ".join((done.stdout + done.stderr).split())  # Rich wraps long lines
    assert done.returncode == 2, output
    assert f"127.0.0.1:{port}" in output and "Redis" in output
    assert "Traceback" not in output


def test_unreachable_scheduler_is_a_clear_error(tmp_path: Path) -> None:
    server = RedisProcess(tmp_path / "redis")
    server.start()
    try:
        port = free_port()
        profile = tmp_path / "profile.yaml"
        address = f"tcp://127.0.0.1:{port}"
        profile.write_text(yaml.safe_dump({"redis_url": server.url, "scheduler_address": address}))
        done = run_orchestrator(profile)
        output = " ".join((done.stdout + done.stderr).split())
        assert done.returncode == 2, output
        assert address in output and "scheduler" in output
        assert "Traceback" not in output
        # It never joined: no heartbeat, no lease left behind.
        import redis

        client = redis.Redis.from_url(server.url)
        try:
            assert client.keys("*") == []
        finally:
            client.close()
    finally:
        server.stop()
