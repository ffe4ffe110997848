"""`workbench cache explain / stats / clear` after real runs: explain names the input that
changed (parameter, upstream result, data file, code), stats count, clear empties."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from workbench.cli.app import app
from workbench.config import Settings
from workbench.dag.states import TaskState
from workbench.orchestrator.orchestrator import DistributedOrchestrator

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

STEPS = """
from pydantic import BaseModel, Field

from workbench.tasks.registry import task_type


class SumParams(BaseModel):
    path: str = Field(json_schema_extra={"workbench_input_file": True})
    scale: float = 1.0


def _total(text):
    return sum(float(x) for x in text.split())


@task_type("sum_file", params=SumParams)
def sum_file(ctx):
    return _total(ctx.resolve_path(ctx.params.path).read_text()) * ctx.params.scale


@task_type("double")
def double(ctx):
    return 2 * next(iter(ctx.inputs.values()))
"""

SPEC = {
    "workflow_id": "explained",
    "imports": ["steps.py"],
    "tasks": [
        {"task_id": "load", "task_type": "sum_file", "parameters": {"path": "numbers.txt"}},
        {"task_id": "twice", "task_type": "double", "dependencies": ["load"]},
    ],
}


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "steps.py").write_text(STEPS)
    (tmp_path / "numbers.txt").write_text("1 2 3\n")
    write_spec(tmp_path)
    monkeypatch.setenv("WORKBENCH_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path


def write_spec(folder: Path, **load_params: Any) -> Path:
    spec = json.loads(json.dumps(SPEC))
    spec["tasks"][0]["parameters"].update(load_params)
    path = folder / "flow.json"
    path.write_text(json.dumps(spec))
    return path


def cli(*args: str) -> Any:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def explain(project: Path) -> dict[str, dict[str, Any]]:
    rows = json.loads(cli("cache", "explain", str(project / "flow.json"), "--json"))
    return {row["task_id"]: row for row in rows}


async def test_explain_names_what_changed(dask_cluster, project: Path) -> None:
    orch = DistributedOrchestrator("test", cluster=dask_cluster.scheduler_address)
    async with orch:
        first = await orch.run_workflow(project / "flow.json")
    assert {t.state for t in first.tasks.values()} == {TaskState.SUCCEEDED}

    rows = explain(project)
    assert [rows[t]["verdict"] for t in ("load", "twice")] == ["hit", "hit"]
    assert rows["load"]["last_execution"] == first.execution_id

    write_spec(project, scale=2.0)
    rows = explain(project)
    assert rows["load"]["verdict"] == "miss"
    assert rows["load"]["reasons"] == ["parameter 'scale': 1.0 -> 2.0"]
    assert rows["twice"]["reasons"][0].startswith("upstream result of 'load' changed")
    assert "(root cause: load: parameter 'scale': 1.0 -> 2.0)" in rows["twice"]["reasons"][0]

    write_spec(project)
    (project / "numbers.txt").write_text("1 2 4\n")
    rows = explain(project)
    assert rows["load"]["changes"][0]["kind"] == "data file"
    assert rows["load"]["reasons"][0].startswith("data file in 'path' changed")

    (project / "numbers.txt").write_text("1 2 3\n")
    (project / "steps.py").write_text(STEPS.replace("float(x) for x", "float(x) + 0 for x"))
    rows = explain(project)
    assert [c["kind"] for c in rows["load"]["changes"]] == ["code"]
    assert rows["load"]["reasons"][0].endswith(":_total changed")
    assert rows["twice"]["verdict"] == "miss"

    (project / "steps.py").write_text(STEPS + "\n# a comment changes nothing\n")
    assert {row["verdict"] for row in explain(project).values()} == {"hit"}

    table = cli("cache", "explain", str(project / "flow.json"))
    assert "2/2 tasks would come from the cache" in table

    stats = {row["backend"]: row for row in json.loads(cli("cache", "stats", "--json"))}
    assert stats["disk"]["entries"] == 2
    assert stats["disk"]["bytes"] > 0

    assert "removed 2 cached results" in cli("cache", "clear", "--store", "disk", "--yes")
    rows = explain(project)
    assert rows["load"]["verdict"] == "miss"
    assert rows["load"]["reasons"][0].startswith("same inputs as the last run")


def test_explain_of_an_invalid_spec_fails_clearly(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("workflow_id: x\ntasks: []\n")
    result = CliRunner().invoke(app, ["cache", "explain", str(path)])
    assert result.exit_code == 2
    assert "bad.yaml" in result.output


def test_settings_reach_the_cli_in_this_process(project: Path) -> None:
    assert Settings().cache_dir == project / "cache"
