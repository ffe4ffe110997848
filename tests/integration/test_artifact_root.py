"""With an artifact root (a folder every instance and worker reaches), tasks write there."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from workbench.config import Settings
from workbench.dag.states import WorkflowStatus
from workbench.orchestrator.orchestrator import DistributedOrchestrator

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

WRITER = """
from workbench.tasks.registry import task_type


@task_type("write_note")
def write_note(ctx):
    path = ctx.work_dir / "note.txt"
    path.write_text(ctx.task_id)
    return str(path)
"""


async def test_task_files_go_under_the_artifact_root(dask_cluster, tmp_path: Path) -> None:
    (tmp_path / "writer.py").write_text(WRITER)
    spec = {
        "workflow_id": "notes",
        "imports": ["writer.py"],
        "tasks": [{"task_id": "note", "task_type": "write_note", "cache_strategy": "none"}],
    }
    settings = Settings(artifact_root=tmp_path / "artifacts", cache_dir=tmp_path / "cache")
    orchestrator = DistributedOrchestrator(
        "test", cluster=dask_cluster.scheduler_address, settings=settings
    )
    (tmp_path / "flow.json").write_text(json.dumps(spec))
    async with orchestrator:
        execution = await orchestrator.run_workflow(tmp_path / "flow.json")
        assert execution.status is WorkflowStatus.SUCCEEDED, execution.error
        written = Path((await orchestrator.fetch_result(execution.execution_id, "note")).output)
    expected = tmp_path / "artifacts" / "runs" / execution.execution_id / "note" / "note.txt"
    assert written == expected
    assert expected.read_text() == "note"
    assert not (tmp_path / ".workbench").exists()
