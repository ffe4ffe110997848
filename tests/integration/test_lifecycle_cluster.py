"""The model lifecycle in cluster mode: two orchestrator instances (real processes) run two
deployments of one model at the same moment against the cluster's Redis registry and shared
artifact root. Versions stay distinct, one ends in production, both runs succeed (a stale
validation is redone against the new champion), and the served ref scores on any machine."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.integration.test_lifecycle import example_copy
from tests.support.cluster import ClusterHarness
from workbench.dag.states import TaskState, WorkflowStatus
from workbench.orchestrator.orchestrator import DistributedOrchestrator
from workbench.registry.base import Stage
from workbench.registry.manager import ModelLifecycleManager

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]


def test_two_instances_deploy_one_model_at_once(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    with ClusterHarness(
        tmp_path / "cluster", instances=2, profile_extra={"artifact_root": str(shared)}
    ) as cluster:
        assert cluster.settings is not None
        settings = cluster.settings
        spec = example_copy(tmp_path)

        async def deploy_twice() -> list[Any]:
            client = DistributedOrchestrator("client", settings=settings, member=False)
            try:
                ids = await asyncio.gather(
                    client.submit_ml_workflow(spec, cache="off"),
                    client.submit_ml_workflow(spec, cache="off"),
                )
                return [await client.wait_for_execution(i, timeout=180) for i in ids]
            finally:
                await client.close()

        executions = asyncio.run(deploy_twice())
        for execution in executions:
            assert execution.status is WorkflowStatus.SUCCEEDED, (execution.error, cluster.logs())
            assert execution.tasks["score"].state is TaskState.SUCCEEDED
        owners = {cluster.execution(e.execution_id).owner for e in executions}

        lifecycle = ModelLifecycleManager.from_settings(settings)
        try:
            versions = lifecycle.store.list_versions("fraud")
            assert [v.version for v in versions] == [1, 2]
            assert sorted(v.stage for v in versions) == sorted([Stage.PRODUCTION, Stage.ARCHIVED])
            made_by = {v.lineage["execution_id"] for v in versions}
            assert made_by == {e.execution_id for e in executions}
            for v in versions:  # artifacts under the shared root, verified on load
                assert (shared / "registry" / v.artifact_path).is_file()
                lifecycle.load("fraud", str(v.version))
            production = lifecycle.store.resolve("fraud", "production")
            scored_with = {e.tasks["score"].summary["model"] for e in executions}
            assert f"fraud v{production.version} (fraud@production)" in scored_with
        finally:
            lifecycle.close()
        # The metadata is in the cluster's Redis, not in a local file.
        client = redis.Redis.from_url(settings.redis_url or "")
        try:
            assert client.sismember(f"{cluster.namespace}:registry:names", "fraud")
        finally:
            client.close()
        print(f"owners: {owners}")
