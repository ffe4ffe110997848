"""Hyperparameter search with the seed's request shape: trials are workflow runs on a real Dask
cluster, sharing their untuned upstream tasks through the cache."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from workbench.config import Settings
from workbench.dag.states import TaskState
from workbench.errors import SpecError
from workbench.orchestrator.orchestrator import DistributedOrchestrator

pytestmark = [pytest.mark.integration, pytest.mark.anyio]


def base_workflow() -> dict[str, Any]:
    return {
        "workflow_id": "tuned",
        "tasks": [
            {
                "task_id": "prepare",
                "task_type": "data_preprocessing",
                "parameters": {"dataset": "synthetic_fraud", "dataset_options": {"n_rows": 3000}},
            },
            {"task_id": "features", "task_type": "feature_extraction", "dependencies": ["prepare"]},
            {
                "task_id": "train_model",
                "task_type": "model_training",
                "dependencies": ["features"],
                "parameters": {"algorithm": "xgboost", "max_depth": 3},
            },
            {
                "task_id": "evaluate",
                "task_type": "model_evaluation",
                "dependencies": ["train_model"],
            },
        ],
    }


def seed_request(**overrides: Any) -> dict[str, Any]:
    config = {
        "search_space": {
            "n_estimators": {"type": "integer", "min": 10, "max": 40},
            "learning_rate": {"type": "continuous", "min": 0.05, "max": 0.3},
        },
        "max_trials": 4,
        "objective_metric": "f1_score",
        "direction": "maximize",
        "n_parallel": 2,
        "seed": 1,
        **overrides,
    }
    return {"workflow_spec": base_workflow(), "hyperparameter_config": config}


@pytest.fixture
def orchestrator(dask_cluster, tmp_path: Path) -> DistributedOrchestrator:
    return DistributedOrchestrator(
        "hpo",
        cluster=dask_cluster.scheduler_address,
        settings=Settings(cache_dir=tmp_path / "cache"),
    )


async def test_the_seed_request_finds_the_best_trial(orchestrator) -> None:
    from workbench.events.models import EventType

    events: list = []
    orchestrator.bus.subscribe(events.append)
    async with orchestrator:
        # No pruning here: every trial must train to the end for the cache checks below.
        result = await orchestrator.optimize_hyperparameters(seed_request(pruner="none"))
        executions = [orchestrator.get_execution(t.execution_id) for t in result.trials]
    assert len(result.trials) == 4
    assert all(t.state == "complete" and t.value is not None for t in result.trials)
    assert result.best_value == max(t.value for t in result.trials)
    best = next(t for t in result.trials if t.value == result.best_value)
    assert result.best_params == best.params
    assert 10 <= result.best_params["n_estimators"] <= 40
    assert 0.05 <= result.best_params["learning_rate"] <= 0.3
    # Preparation and features do not depend on the tuned parameters: computed once.
    for task_id in ("prepare", "features"):
        states = sorted(e.tasks[task_id].state.value for e in executions)
        assert states.count(TaskState.SUCCEEDED.value) == 1, (task_id, states)
        assert states.count(TaskState.CACHED.value) == 3, (task_id, states)
    # Each trial trained with its own sampled values.
    trained = {e.tasks["train_model"].state for e in executions}
    assert trained == {TaskState.SUCCEEDED}
    # One event as each trial starts and one as it ends, for the UIs.
    finished = [e for e in events if e.type is EventType.TRIAL_FINISHED]
    assert sum(e.type is EventType.TRIAL_STARTED for e in events) == 4
    assert sorted(e.data["trial"] for e in finished) == [0, 1, 2, 3]
    assert {e.data["value"] for e in finished} == {t.value for t in result.trials}


def test_workbench_hpo_runs_the_seed_shape_of_request(tmp_path: Path) -> None:
    """The seed's workflow has no evaluation step: each trial gets one, on the test split."""
    import json
    import os
    import subprocess
    import sys

    workflow = base_workflow()
    workflow["tasks"] = workflow["tasks"][:3]  # prepare, features, train: no evaluation
    (tmp_path / "flow.json").write_text(json.dumps(workflow))
    request = seed_request(max_trials=3)
    request["workflow_spec"] = "flow.json"
    (tmp_path / "hpo.json").write_text(json.dumps(request))
    done = subprocess.run(
        [sys.executable, "-m", "workbench", "hpo", "hpo.json", "--json", "--workers", "2"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, "WORKBENCH_CACHE_DIR": str(tmp_path / "cache")},
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert len(result["trials"]) == 3
    # The seed's request names no pruner: the default (median) may stop a poor trial early.
    states = [t["state"] for t in result["trials"]]
    assert set(states) <= {"complete", "pruned"} and "complete" in states, states
    assert 0.0 < result["best_value"] <= 1.0
    assert set(result["best_params"]) == {"n_estimators", "learning_rate"}


@pytest.mark.parametrize(
    ("overrides", "where", "expected"),
    [
        ({"objective_metric": "bleu"}, "objective_metric", "no task of this workflow reports"),
        (
            {"search_space": {"n_estimators": {"type": "integer", "min": 40, "max": 10}}},
            "search_space.n_estimators",
            "'min' must be <= 'max'",
        ),
        (
            {"search_space": {"depth": {"type": "categorical", "choices": []}}},
            "search_space.depth",
            "non-empty 'choices'",
        ),
        (
            {
                "search_space": {
                    "learning_rate": {
                        "type": "continuous",
                        "min": 0.01,
                        "max": 0.3,
                        "log": True,
                        "step": 0.01,
                    }
                }
            },
            "search_space.learning_rate",
            "a log-scale dimension cannot have a 'step'",
        ),
        (
            {"search_space": {"n_estimators": {"type": "integr", "min": 1, "max": 2}}},
            "search_space.n_estimators.type",
            "integer",
        ),
    ],
)
async def test_bad_requests_fail_before_any_trial(orchestrator, overrides, where, expected) -> None:
    async with orchestrator:
        with pytest.raises(SpecError) as caught:
            await orchestrator.optimize_hyperparameters(seed_request(**overrides))
        assert orchestrator.list_executions() == []
    message = str(caught.value)
    assert where in message and expected in message, message


async def test_a_parameter_the_estimator_does_not_take_fails_before_any_trial(
    orchestrator,
) -> None:
    request = seed_request(search_space={"n_estimatorz": {"type": "integer", "min": 10, "max": 20}})
    async with orchestrator:
        with pytest.raises(SpecError, match="n_estimatorz"):
            await orchestrator.optimize_hyperparameters(request)
        assert orchestrator.list_executions() == []


async def test_pruning_stops_a_poor_trial_while_it_trains(orchestrator) -> None:
    """Two good learning rates, then one that learns nothing: the median pruner stops the
    third trial's training at its first checkpoint past the warm-up (round 20 of 200)."""
    request = seed_request(
        search_space={"learning_rate": {"type": "categorical", "choices": [0.3, 0.25, 1e-6]}},
        sampler="grid",
        seed=5,  # the grid's order: 0.3, 0.25, then 1e-6
        n_parallel=1,
        max_trials=3,
        pruner="median",
    )
    request["workflow_spec"]["tasks"][2]["parameters"]["n_estimators"] = 200
    async with orchestrator:
        result = await orchestrator.optimize_hyperparameters(request)
        executions = {t.number: orchestrator.get_execution(t.execution_id) for t in result.trials}
    states = {t.number: t.state for t in result.trials}
    assert states == {0: "complete", 1: "complete", 2: "pruned"}, result.trials
    pruned = next(t for t in result.trials if t.state == "pruned")
    assert pruned.params == {"learning_rate": 1e-6}
    assert pruned.value is not None  # its last intermediate value
    training = executions[2].tasks["train_model"]
    assert training.state is TaskState.FAILED
    assert "pruned by the hyperparameter search at step 20" in (training.error or "")
    assert training.progress < 0.5  # stopped near round 20 of 200, freeing its worker
    assert "intermediate_f1_score" in training.metrics
    for number in (0, 1):
        assert executions[number].tasks["train_model"].progress == 1.0
    assert result.best_params["learning_rate"] in (0.3, 0.25)
