"""The `workbench` command as a user runs it: real processes, a real local Dask cluster."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.support.interrupt import ctrl_c_works, interrupt

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"

pytestmark = pytest.mark.integration


def workbench(*args: str, cwd: Path, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "workbench", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "WORKBENCH_WORKERS": "2"},
    )


@pytest.fixture(scope="module")
def examples(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The examples folder as shipped, plus the data file the README's main command creates."""
    folder = tmp_path_factory.mktemp("examples")
    for path in EXAMPLES.iterdir():
        if path.is_file():
            shutil.copy(path, folder / path.name)
    made = workbench("datasets", "fraud", "data/transactions.csv", "--rows", "6000", cwd=folder)
    assert made.returncode == 0, made.stderr
    return folder


def test_fraud_example_runs_and_reports_json(examples: Path) -> None:
    result = workbench("run", "fraud_detection.yaml", "--json", cwd=examples)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["status"] == "succeeded"
    assert set(summary["tasks"]) == {
        "prepare",
        "features",
        "train",
        "validate",
        "evaluate",
        "score",
    }
    for task in summary["tasks"].values():
        assert task["status"] == "succeeded" and task["attempts"] == 1
        assert task["duration_s"] >= 0
    assert summary["metrics"]["evaluate"]["roc_auc"] > 0.9
    scored = list((examples / ".workbench" / "runs" / summary["execution_id"]).glob("*/*.parquet"))
    assert len(scored) == 1


def test_seed_json_example_runs(examples: Path) -> None:
    result = workbench("run", "fraud_detection.json", "--json", cwd=examples)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["status"] == "succeeded"
    assert summary["metrics"]["train_model"]["train_accuracy"] > 0.9


def test_model_comparison_example_runs_every_algorithm(examples: Path) -> None:
    result = workbench("run", "model_comparison.yaml", "--json", cwd=examples)
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout)["metrics"]["compare"]
    for algorithm in ("xgboost", "random_forest", "logistic_regression", "gradient_boosting"):
        assert metrics[f"{algorithm}.roc_auc"] > 0.9


def test_custom_task_example_runs(examples: Path) -> None:
    result = workbench("run", "custom_task.yaml", "--json", cwd=examples)
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout)["metrics"]
    assert metrics["rebalance"]["train_rows_after"] < metrics["rebalance"]["train_rows_before"]


def test_live_display_and_summary_on_a_terminal_width(examples: Path) -> None:
    result = workbench("run", "fraud_detection.json", cwd=examples)
    assert result.returncode == 0, result.stderr
    assert "succeeded" in result.stdout
    # The seed's spec asks for the redis strategy; with no Redis configured it runs on disk.
    assert "note: cache_strategy 'redis' without WORKBENCH_REDIS_URL: using disk" in result.stderr
    assert "metrics" in result.stdout and "train_accuracy" in result.stdout


def test_a_failed_workflow_exits_1_with_the_root_cause(examples: Path) -> None:
    spec = (
        (examples / "fraud_detection.yaml").read_text().replace("f1_score: 0.6", "f1_score: 0.999")
    )
    (examples / "strict.yaml").write_text(spec)
    result = workbench("run", "strict.yaml", "--json", cwd=examples)
    assert result.returncode == 1, result.stderr
    summary = json.loads(result.stdout)
    assert summary["status"] == "failed"
    assert summary["tasks"]["validate"]["status"] == "failed"
    assert summary["tasks"]["score"]["status"] == "skipped"
    # The independent branch ends well: computed, or reused from the fraud example's runs,
    # which share every task up to training with this workflow.
    assert summary["tasks"]["evaluate"]["status"] in {"succeeded", "cached"}
    assert "f1_score" in summary["error"]["message"] and "0.999" in summary["error"]["message"]


def test_a_second_run_comes_from_the_cache_and_refresh_recomputes(examples: Path) -> None:
    first = workbench("run", "model_comparison.yaml", "--json", cwd=examples)
    assert first.returncode == 0, first.stderr
    warm = workbench("run", "model_comparison.yaml", "--json", cwd=examples)
    assert warm.returncode == 0, warm.stderr
    statuses = {t["status"] for t in json.loads(warm.stdout)["tasks"].values()}
    assert statuses == {"cached"}
    fresh = workbench("run", "model_comparison.yaml", "--json", "--refresh", cwd=examples)
    assert fresh.returncode == 0, fresh.stderr
    statuses = {t["status"] for t in json.loads(fresh.stdout)["tasks"].values()}
    assert statuses == {"succeeded"}
    both = workbench("run", "model_comparison.yaml", "--refresh", "--no-cache", cwd=examples)
    assert both.returncode == 2
    assert "--refresh and --no-cache exclude each other" in both.stderr


def test_invalid_input_exits_2_and_writes_nothing(tmp_path: Path) -> None:
    spec = tmp_path / "bad.yaml"
    spec.write_text(
        "workflow_id: w\ntasks:\n"
        "  - task_id: a\n    task_type: data_preprocessing\n"
        "    parameters: {dataset_path: missing.csv}\n"
        "  - task_id: b\n    task_type: model_trainin\n    dependencies: [a]\n"
    )
    result = workbench("run", "bad.yaml", cwd=tmp_path)
    assert result.returncode == 2
    assert "missing.csv" in result.stderr
    assert "model_trainin" in result.stderr and "model_training" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml"]  # nothing written
    assert workbench("validate", "bad.yaml", cwd=tmp_path).returncode == 2
    assert workbench("run", "nope.yaml", cwd=tmp_path).returncode == 2


def test_validate_every_example_and_export_the_schema(examples: Path) -> None:
    for spec in (
        "fraud_detection.yaml",
        "fraud_detection.json",
        "model_comparison.yaml",
        "custom_task.yaml",
    ):
        result = workbench("validate", spec, cwd=examples)
        assert result.returncode == 0, result.stderr
    schema = workbench("schema", cwd=examples)
    assert schema.returncode == 0
    assert json.loads(schema.stdout)["title"]


def test_ctrl_c_cancels_and_leaves_no_process_behind(tmp_path: Path) -> None:
    spec = tmp_path / "long.yaml"
    spec.write_text(
        "workflow_id: long\ntasks:\n"
        "  - task_id: prepare\n    task_type: data_preprocessing\n"
        "    parameters: {dataset: synthetic_fraud, dataset_options: {n_rows: 4000}}\n"
        "  - task_id: train\n    task_type: model_training\n    dependencies: [prepare]\n"
        "    parameters: {algorithm: gradient_boosting, n_estimators: 100000}\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "workbench", "run", "long.yaml"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "WORKBENCH_WORKERS": "2"},
        preexec_fn=ctrl_c_works,
    )
    parent = psutil.Process(proc.pid)
    deadline = time.time() + 60
    children: list[psutil.Process] = []
    while time.time() < deadline and len(children) < 2:  # both worker processes are up
        time.sleep(0.5)
        children = parent.children(recursive=True)
    time.sleep(4)  # let the training start
    children = parent.children(recursive=True)
    assert len(children) >= 2
    _, stderr = interrupt(proc, timeout=60)
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr
    _, alive = psutil.wait_procs(children, timeout=15)
    assert alive == [], f"left behind: {[p.pid for p in alive]}"
