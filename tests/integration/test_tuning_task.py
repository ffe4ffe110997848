"""hyperparameter_tuning on a real Dask LocalCluster through the public API: the shipped example
(fewer trials, a smaller data file), its folds run as Dask tasks on the workers, and the tuned
model evaluated and used for scoring downstream."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from workbench import Workbench
from workbench.dag.states import TaskState, WorkflowStatus
from workbench.tasks.datasets import write_fraud_csv

pytestmark = pytest.mark.integration

EXAMPLE = Path(__file__).parents[2] / "examples" / "fraud_hpo.yaml"


def example_copy(tmp_path: Path, **tuning: Any) -> Path:
    """examples/fraud_hpo.yaml with a smaller search, beside its own data file."""
    spec = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    tune = next(task for task in spec["tasks"] if task["task_id"] == "tune")
    tune["parameters"]["search_space"]["n_estimators"] = {
        "type": "integer",
        "min": 20,
        "max": 80,
        "step": 20,
    }
    tune["parameters"].update(tuning)
    write_fraud_csv(tmp_path / "data" / "transactions.csv", n_rows=4000, seed=1)
    path = tmp_path / "fraud_hpo.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path


def worker_addresses(wb: Workbench) -> set[str]:
    from distributed import Client

    with Client(wb.orchestrator.executor.scheduler_address, timeout=10) as client:
        return set(client.scheduler_info()["workers"])


def test_the_example_tunes_on_the_workers_and_feeds_evaluation(tmp_path: Path) -> None:
    path = example_copy(tmp_path, max_trials=6)
    with Workbench.local(workers=2) as wb:
        execution = wb.run(path, cache="off")
        assert execution.status is WorkflowStatus.SUCCEEDED, execution.error
        evaluated = wb.result(execution.execution_id, "evaluate").output
        workers = worker_addresses(wb)

    tune = execution.tasks["tune"]
    summary = tune.summary
    # Folds ran as Dask tasks on the cluster's workers, not inside the tuning task.
    assert summary["trials_ran"] == "dask"
    rows = summary["trials"]
    assert len(rows) == 6 and {row["state"] for row in rows} <= {"complete", "pruned"}
    for row in rows:
        assert row["workers"] and set(row["workers"]) <= workers, row
        assert row["folds"] == 3 if row["state"] == "complete" else row["folds"] < 3
    assert tune.metrics["trials_complete"] + tune.metrics["trials_pruned"] == 6
    assert tune.metrics["best_value"] == max(
        row["value"] for row in rows if row["state"] == "complete"
    )
    # The evaluation got the tuned model, refitted with the best values.
    assert evaluated.task_id == "tune" and evaluated.algorithm == "xgboost"
    for name, value in summary["best_params"].items():
        assert evaluated.params[name] == pytest.approx(value)
    assert evaluated.params["subsample"] == 0.9  # a fixed parameter
    assert execution.tasks["evaluate"].summary["model"] == "tune"
    assert 0 < execution.tasks["evaluate"].metrics["f1_score"] <= 1
    assert execution.tasks["score"].state is TaskState.SUCCEEDED
    assert execution.tasks["score"].metrics["rows_scored"] == 4000


def test_a_single_threaded_worker_runs_the_search_and_its_folds(tmp_path: Path) -> None:
    """The tuning task waits for its folds outside the worker's thread pool, so the folds get
    the worker's only thread instead of waiting for it forever."""
    path = example_copy(tmp_path, max_trials=2, n_parallel=2)
    with Workbench.local(workers=1, threads_per_worker=1) as wb:
        execution_id = wb.submit_blocking(path, cache="off")
        execution = wb.wait_blocking(execution_id, timeout=30)  # a deadlock fails, not hangs
        (worker,) = worker_addresses(wb)
    assert execution.status is WorkflowStatus.SUCCEEDED, execution.error
    rows = execution.tasks["tune"].summary["trials"]
    assert [list(row["workers"]) for row in rows] == [[worker], [worker]]
