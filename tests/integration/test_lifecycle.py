"""The model lifecycle end to end on a real Dask LocalCluster: examples/fraud_lifecycle.yaml
(a smaller data file) trains, validates, registers, gates, promotes and batch-scores; a second
run replaces the production version; a version that fails its gates is kept but not promoted;
`workbench models validate --data` scores real models; `workbench serve` answers real HTTP
requests and follows a rollback."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from tests.support.interrupt import ctrl_c_works, interrupt
from workbench import Workbench
from workbench.cli.app import app
from workbench.config import Settings
from workbench.dag.states import TaskState, WorkflowStatus
from workbench.errors import SpecError
from workbench.events.models import Event, EventType
from workbench.registry.base import Stage
from workbench.registry.manager import ModelLifecycleManager
from workbench.tasks.checks import load_workflow
from workbench.tasks.datasets import write_fraud_csv

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

EXAMPLE = Path(__file__).parents[2] / "examples" / "fraud_lifecycle.yaml"


def example_copy(tmp_path: Path, **deploy: Any) -> Path:
    spec = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    tasks = {task["task_id"]: task for task in spec["tasks"]}
    tasks["train"]["parameters"]["n_estimators"] = 40
    tasks["deploy"]["parameters"].update(deploy)
    if not (tmp_path / "data" / "transactions.csv").exists():
        write_fraud_csv(tmp_path / "data" / "transactions.csv", n_rows=4000, seed=1)
    path = tmp_path / "fraud_lifecycle.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture
def registry_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """A registry of this test's own: the orchestrator, its workers and the CLI all open it."""
    monkeypatch.setenv("WORKBENCH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("COLUMNS", "200")
    return Settings()


def models(*args: str, code: int = 0) -> str:
    result = CliRunner().invoke(app, ["models", *args])
    assert result.exit_code == code, (result.stdout, result.stderr)
    return result.stdout


def test_train_register_gate_promote_score_and_serve(tmp_path: Path, registry_home) -> None:
    events: list[Event] = []
    with Workbench.local(workers=2) as wb:
        wb.subscribe(events.append)
        first = wb.run(example_copy(tmp_path))
        assert first.status is WorkflowStatus.SUCCEEDED, first.error
        second = wb.run(example_copy(tmp_path))
        assert second.status is WorkflowStatus.SUCCEEDED, second.error
        strict = wb.run(example_copy(tmp_path, gates={"f1_score": ">= 0.999"}))

    lifecycle = ModelLifecycleManager.from_settings(registry_home)
    store = lifecycle.store
    # Two runs, two versions: the second replaced the first in production.
    assert [(v.version, v.stage) for v in store.list_versions("fraud")][:2] == [
        (1, Stage.ARCHIVED),
        (2, Stage.PRODUCTION),
    ]
    v1 = store.get("fraud", 1)
    assert v1.flavor == "xgboost" and "amount" in v1.signature
    lineage = v1.lineage
    assert lineage["workflow_id"] == "fraud_lifecycle"
    assert lineage["execution_id"] == first.execution_id and lineage["task_id"] == "train"
    assert (
        set(lineage["cache_keys"]) == {"validate"} and len(lineage["cache_keys"]["validate"]) == 64
    )
    assert lineage["dataset_fingerprint"].startswith("sha256:")
    assert {"python", "xgboost", "scikit-learn", "workbench"} <= set(lineage["versions"])
    assert store.get("fraud", 2).lineage["dataset_fingerprint"] == lineage["dataset_fingerprint"]
    # The gates ran on the test split, the second version against the first.
    report = store.validations("fraud", 2)[-1]
    assert report.passed and report.champion_version == 1 and "test split" in report.dataset
    assert {g["metric"] for g in report.gates} == {"f1_score", "roc_auc"}

    # The registry-changing task and the registry-reading one never come from the cache.
    for execution in (first, second):
        assert execution.tasks["deploy"].state is TaskState.SUCCEEDED
        assert execution.tasks["score"].state is TaskState.SUCCEEDED
    assert second.tasks["train"].state is TaskState.CACHED
    score = second.tasks["score"].summary
    assert score["model"] == "fraud v2 (fraud@production)"
    scored = pd.read_parquet(score["output_path"])
    assert len(scored) == 4000 and {"prediction", "probability"} <= set(scored.columns)
    deploy = second.tasks["deploy"].summary
    assert deploy["deployment"] == {
        "target": "batch",
        "ref": "fraud@production",
        "address": "fraud@production",
    }

    # A version that fails its gates is registered with its report, not promoted.
    assert strict.status is WorkflowStatus.FAILED
    assert strict.tasks["deploy"].state is TaskState.FAILED
    assert "fraud v3 failed its gates (f1_score:" in strict.tasks["deploy"].error
    assert strict.tasks["score"].state is TaskState.SKIPPED
    assert (
        store.get("fraud", 3).stage is Stage.NONE and not store.validations("fraud", 3)[-1].passed
    )
    assert store.resolve("fraud", "production").version == 2

    # Every change reached the event stream, made by the deploy tasks.
    kinds = [e.type for e in events if e.execution_id == "model:fraud"]
    assert kinds.count(EventType.MODEL_REGISTERED) == 3
    assert kinds.count(EventType.MODEL_VALIDATED) == 3
    assert kinds.count(EventType.MODEL_DEPLOYED) == 2
    assert kinds.count(EventType.MODEL_TRANSITION) == 3  # v1 up; v1 archived, v2 up
    promoted = [e for e in events if e.type is EventType.MODEL_TRANSITION][-1]
    assert promoted.data["who"] == f"{second.execution_id}/deploy"

    # Validation from the command line, both models scored on a held-out file.
    data = tmp_path / "data" / "transactions.csv"
    out = json.loads(
        models(
            "validate",
            "fraud",
            "3",
            "--data",
            str(data),
            "-g",
            "roc_auc -0.05 vs champion",
            "--json",
        )
    )
    assert out["champion_version"] == 2 and out["dataset"] == str(data)
    assert set(out["metrics"]) >= {"f1_score", "roc_auc"} and out["passed"]
    lifecycle.close()
    _serve_and_follow_a_rollback(data)


def _serve_and_follow_a_rollback(data: Path) -> None:
    """`workbench serve fraud@production` in its own process, asked over HTTP."""
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "workbench",
            "serve",
            "fraud@production",
            "--port",
            "0",
            "--poll-s",
            "0.1",
        ],
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=ctrl_c_works,
    )
    try:
        url = _served_url(server)
        rows = pd.read_csv(data).drop(columns=["is_fraud"]).head(3)
        body = {"rows": json.loads(rows.to_json(orient="records"))}
        answer = _post(f"{url}/predict", body)
        assert answer["version"] == 2 and len(answer["predictions"]) == 3
        assert all(0.0 <= p <= 1.0 for p in answer["probabilities"])

        wrong = {"rows": [{**body["rows"][0], "amount": "a lot"}]}
        with pytest.raises(urllib.error.HTTPError) as refused:
            _post(f"{url}/predict", wrong)
        assert refused.value.code == 422
        problem = json.loads(refused.value.read())["problems"][0]
        assert (problem["row"], problem["field"]) == (0, "amount")

        assert "fraud v1: archived -> production" in models("rollback", "fraud", "--why", "check")
        deadline = time.monotonic() + 15
        while _get(f"{url}/health")["version"] != 1:
            assert time.monotonic() < deadline, "the server did not follow the rollback"
            time.sleep(0.1)
        assert _get(f"{url}/metadata")["stage"] == "production"
        assert _post(f"{url}/predict", body)["version"] == 1
    finally:
        interrupt(server, timeout=20)
    assert server.returncode == 0


def _served_url(server: subprocess.Popen[str]) -> str:
    assert server.stderr is not None
    seen = []
    for line in server.stderr:
        seen.append(line)
        if found := re.search(r"at (http://[0-9.]+:[0-9]+)", line):
            return found.group(1)
    raise AssertionError(f"the server never said where it listens: {''.join(seen)}")


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def _post(url: str, body: Any) -> Any:
    request = urllib.request.Request(
        url, json.dumps(body).encode(), {"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


@pytest.mark.parametrize(
    ("task", "change", "says"),
    [
        ("deploy", {"gates": {"f1_score": "at least 0.8"}}, "invalid gate(s) 'f1_score'"),
        ("deploy", {"gates": {"f2": ">= 0.8"}}, "unknown metric(s) f2"),
        ("deploy", {"target": "ftp"}, "unknown deployment target 'ftp'"),
        ("deploy", {"target_options": {"port": 80}}, "port: Extra inputs are not permitted"),
        ("deploy", {"model_name": "bad:name"}, "invalid model name"),
        ("score", {"model": "fraud"}, 'expected "name@ref"'),
    ],
)
def test_bad_lifecycle_parameters_are_spec_errors(
    tmp_path: Path, registry_home, task: str, change: dict[str, Any], says: str
) -> None:
    spec = yaml.safe_load(example_copy(tmp_path).read_text(encoding="utf-8"))
    next(t for t in spec["tasks"] if t["task_id"] == task)["parameters"].update(change)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    with pytest.raises(SpecError) as error:
        load_workflow(path)
    assert says in str(error.value) and "parameters" in str(error.value)
    assert not (registry_home.cache_dir / "registry.sqlite").exists()
