"""hyperparameter_tuning: parameters checked at spec load, the search run in-process (folds in
this thread), pruning, failures, and the refitted model downstream."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from workbench.errors import SpecError, TaskCancelledError, TaskInputError, WorkbenchError
from workbench.tasks import tuning
from workbench.tasks.checks import load_workflow
from workbench.tasks.data import TrainedModel

XGB_SPACE = {
    "n_estimators": {"type": "integer", "min": 5, "max": 30},
    "learning_rate": {"type": "continuous", "min": 0.05, "max": 0.3, "log": True},
}
# Logistic regression's C: tiny values predict no fraud at all (F1 0), so poor trials are plain.
C_SPACE = {"C": {"type": "continuous", "min": 1e-5, "max": 10.0, "log": True}}


def tuning_spec(tmp_path: Path, parameters: dict[str, Any]) -> Path:
    """A YAML spec (so issues carry line numbers) with a tuning task after preparation."""
    spec = {
        "workflow_id": "tuned",
        "tasks": [
            {
                "task_id": "prep",
                "task_type": "data_preprocessing",
                "parameters": {"dataset": "synthetic_fraud"},
            },
            {
                "task_id": "tune",
                "task_type": "hyperparameter_tuning",
                "dependencies": ["prep"],
                "parameters": parameters,
            },
        ],
    }
    path = tmp_path / "flow.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def spec_problems(tmp_path: Path, parameters: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(SpecError) as info:
        load_workflow(tuning_spec(tmp_path, parameters))
    assert "nothing was run" in str(info.value)
    return {issue.path: issue.message for issue in info.value.issues}


class FoldCalls:
    """Wraps fit_fold: counts the folds fitted per trial (trials told apart by their values).
    `fail_when(params)` makes a fold raise; `before(calls)` runs before each fit."""

    def __init__(
        self,
        monkeypatch: pytest.MonkeyPatch,
        fail_when: Callable[[dict[str, Any]], bool] | None = None,
        before: Callable[[int], None] | None = None,
    ) -> None:
        self.calls: list[tuple[tuple[Any, ...], int, int]] = []
        self.fail_when = fail_when
        self.before = before
        self._real = tuning.fit_fold
        monkeypatch.setattr(tuning, "fit_fold", self)

    def __call__(self, fold: tuning.Fold, model: tuning.TrialModel) -> tuning.FoldScore:
        if self.before is not None:
            self.before(len(self.calls))
        key = tuple(sorted(model.params.items()))
        self.calls.append((key, len(fold.y_fit), len(fold.y_valid)))
        if self.fail_when is not None and self.fail_when(model.params):
            raise ValueError("this fold cannot be fitted")
        return self._real(fold, model)

    def per_trial(self) -> Counter[tuple[Any, ...]]:
        return Counter(key for key, _, _ in self.calls)

    def of(self, row: dict[str, Any]) -> int:
        return self.per_trial()[tuple(sorted(row["params"].items()))]


# -- parameters, checked before anything runs ----------------------------------------------------
@pytest.mark.parametrize(
    ("parameters", "path", "expected"),
    [
        (
            {"algorithm": "catboost", "search_space": XGB_SPACE},
            "tasks[1].parameters.algorithm",
            "expected one of 'xgboost', 'random_forest'",
        ),
        (
            {"search_space": {"max_depth": {"type": "categorical", "choices": []}}},
            "tasks[1].parameters.search_space.max_depth",
            "a categorical dimension needs a non-empty 'choices' list",
        ),
        (
            {"search_space": {"n_estimators": {"type": "integer", "min": 300, "max": 50}}},
            "tasks[1].parameters.search_space.n_estimators",
            "'min' must be <= 'max'",
        ),
        (
            {"search_space": {"n_estimatorz": {"type": "integer", "min": 5, "max": 9}}},
            "tasks[1].parameters.search_space",
            "n_estimatorz = 5 (its min): unknown parameter(s) n_estimatorz for algorithm 'xgboost'",
        ),
        (
            {"fixed": {"depth": 3}, "search_space": XGB_SPACE},
            "tasks[1].parameters.fixed",
            "unknown parameter(s) depth for algorithm 'xgboost'",
        ),
        (
            {
                "algorithm": "random_forest",
                "problem_type": "classification",
                "search_space": {"max_depth": {"type": "integer", "min": 0, "max": 8}},
            },
            "tasks[1].parameters.search_space",
            "max_depth = 0 (its min): The 'max_depth' parameter of RandomForestClassifier",
        ),
        (
            {
                "algorithm": "random_forest",
                "problem_type": "classification",
                "search_space": {
                    "criterion": {"type": "categorical", "choices": ["gini", "gyni", "entropy"]}
                },
            },
            "tasks[1].parameters.search_space",
            "criterion = 'gyni' (a choice): ",
        ),
        (
            {
                "fixed": {"max_depth": 3},
                "search_space": {**XGB_SPACE, "max_depth": XGB_SPACE["n_estimators"]},
            },
            "tasks[1].parameters.search_space",
            "max_depth cannot be searched: it is fixed or reserved",
        ),
        (
            {"search_space": XGB_SPACE, "objective_metric": "f1"},
            "tasks[1].parameters.objective_metric",
            "unknown metric 'f1'; known metrics: accuracy, precision",
        ),
        (
            {
                "search_space": XGB_SPACE,
                "problem_type": "regression",
                "objective_metric": "f1_score",
            },
            "tasks[1].parameters.objective_metric",
            "'f1_score' is not a regression metric; use one of r2, rmse, mae",
        ),
        (
            {"search_space": XGB_SPACE, "objective_metric": "log_loss", "direction": "maximize"},
            "tasks[1].parameters.direction",
            "log_loss is better when lower, so maximize would look for the worst model",
        ),
        (
            {"search_space": {"learning_rate": {**XGB_SPACE["learning_rate"], "step": 0.01}}},
            "tasks[1].parameters.search_space.learning_rate",
            "a log-scale dimension cannot have a 'step'",
        ),
        ({}, "tasks[1].parameters.search_space", "required field is missing"),
    ],
)
def test_bad_parameters_fail_at_spec_load(tmp_path, parameters, path, expected) -> None:
    problems = spec_problems(tmp_path, parameters)
    assert path in problems, problems
    assert expected in problems[path]


def test_spec_issues_name_the_line_and_say_where_to_fix(tmp_path) -> None:
    space = {"criterion": {"type": "categorical", "choices": ["gini", "gyni"]}}
    parameters = {"algorithm": "random_forest", "problem_type": "classification"}
    path = tuning_spec(tmp_path, {**parameters, "search_space": space})
    with pytest.raises(SpecError) as info:
        load_workflow(path)
    (issue,) = info.value.issues
    assert (
        issue.line is not None and "search_space" in path.read_text().splitlines()[issue.line - 1]
    )
    assert issue.message.endswith("Fix it in the hyperparameter_tuning task.")
    assert "model_training" not in issue.message


def test_the_shipped_example_checks(tmp_path) -> None:
    spec = Path(__file__).parents[3] / "examples" / "fraud_hpo.yaml"
    checked = load_workflow(spec, check_files=False)
    tune = checked.params["tune"]
    assert checked.definitions["tune"].name == "hyperparameter_tuning"
    assert checked.spec.task("evaluate").dependencies == ["tune"]
    assert checked.spec.task("score").dependencies == ["tune"]
    assert (tune.max_trials, tune.n_parallel, tune.folds, tune.pruner) == (12, 2, 3, "median")


# -- the search, in-process -----------------------------------------------------------------------
def test_tunes_refits_and_hands_the_model_downstream(
    run, prepared_fraud, fast_progress, monkeypatch
) -> None:
    folds = FoldCalls(monkeypatch)
    params = {
        "fixed": {"max_depth": 3},
        "search_space": XGB_SPACE,
        "max_trials": 6,
        "n_parallel": 2,
        "folds": 3,
        "seed": 1,
    }
    result = run("hyperparameter_tuning", params, {"prep": prepared_fraud.output}, task_id="tune")

    trained = result.output
    assert isinstance(trained, TrainedModel) and trained.task_id == "tune"
    summary, metrics = result.summary, result.metrics
    rows = summary["trials"]
    assert [row["number"] for row in rows] == list(range(6))
    complete = [row for row in rows if row["state"] == "complete"]
    best = max(complete, key=lambda row: row["value"])
    assert metrics["best_value"] == metrics["cv_f1_score"] == best["value"]
    assert summary["best_params"] == best["params"] and summary["best_trial"] == best["number"]
    assert metrics["trials_complete"] == len(complete)
    assert metrics["trials_complete"] + metrics["trials_pruned"] + metrics["trials_failed"] == 6
    assert summary["algorithm"] == "xgboost" and summary["trials_ran"] == "in-process"
    assert set(rows[0]) >= {"number", "params", "value", "state", "duration_s"}
    # Refitted with the best values on the whole train split, as model_training would.
    for name, value in {"max_depth": 3, **best["params"]}.items():
        assert trained.params[name] == pytest.approx(value)
    assert len(trained.features.y_train) == len(prepared_fraud.output.train)
    # Every fold is the train split cut in two: no test row is ever seen by a trial.
    train_rows = len(prepared_fraud.output.train)
    assert {fit + valid for _, fit, valid in folds.calls} == {train_rows}
    assert len(folds.calls) == sum(row["folds"] for row in rows)
    # Live: progress per trial, the best value so far as a metric.
    messages = [p["message"] for p in run.of_kind("progress")]
    assert "trial 6/6, best f1_score " + f"{best['value']:.4g}" in messages
    steps = [m["step"] for m in run.of_kind("metric") if m["name"] == "best_value"]
    assert sorted(steps) == sorted(row["number"] for row in complete)

    evaluation = run("model_evaluation", {}, {"tune": trained})
    assert evaluation.summary["model"] == "tune" and 0 < evaluation.metrics["f1_score"] <= 1
    validation = run("model_validation", {"folds": 3}, {"tune": trained})
    assert validation.output is trained


def test_pruned_trials_fit_fewer_folds(run, prepared_fraud, monkeypatch) -> None:
    folds = FoldCalls(monkeypatch)
    params = {
        "algorithm": "logistic_regression",
        "search_space": C_SPACE,
        "sampler": "random",
        "pruner": "median",
        "max_trials": 10,
        "folds": 4,
        "seed": 3,
    }
    result = run("hyperparameter_tuning", params, {"prep": prepared_fraud.output})
    rows = result.summary["trials"]
    pruned = [row for row in rows if row["state"] == "pruned"]
    complete = [row for row in rows if row["state"] == "complete"]
    assert pruned and complete, rows
    assert all(folds.of(row) == 4 for row in complete)
    assert all(folds.of(row) < 4 for row in pruned)
    assert all(folds.of(row) == row["folds"] for row in rows)
    assert len(folds.calls) < 4 * len(rows)
    # What was pruned is what was clearly worse: the tiniest C values (almost no fraud found).
    assert max(row["params"]["C"] for row in pruned) < min(row["params"]["C"] for row in complete)
    assert result.metrics["trials_pruned"] == len(pruned)


def test_without_a_pruner_every_trial_fits_every_fold(run, prepared_fraud, monkeypatch) -> None:
    folds = FoldCalls(monkeypatch)
    params = {
        "algorithm": "logistic_regression",
        "search_space": C_SPACE,
        "sampler": "random",
        "pruner": "none",
        "max_trials": 10,
        "folds": 4,
        "seed": 3,
    }
    result = run("hyperparameter_tuning", params, {"prep": prepared_fraud.output})
    assert result.metrics["trials_pruned"] == 0 and result.metrics["trials_complete"] == 10
    assert set(folds.per_trial().values()) == {4}


def test_a_failing_trial_fails_alone(run, prepared_fraud, monkeypatch) -> None:
    folds = FoldCalls(monkeypatch, fail_when=lambda p: p["C"] < 0.01)
    params = {
        "algorithm": "logistic_regression",
        "search_space": C_SPACE,
        "sampler": "random",
        "pruner": "none",
        "max_trials": 8,
        "seed": 3,
    }
    result = run("hyperparameter_tuning", params, {"prep": prepared_fraud.output})
    failed = [row for row in result.summary["trials"] if row["state"] == "fail"]
    assert failed and result.metrics["trials_failed"] == len(failed)
    assert all(row["params"]["C"] < 0.01 for row in failed)
    assert all(folds.of(row) == 1 for row in failed)  # its later folds never ran
    assert failed[0]["error"] == "fold 1: ValueError: this fold cannot be fitted"
    assert result.summary["best_params"]["C"] >= 0.01


def test_when_every_trial_fails_the_task_fails_with_their_errors(run, prepared_fraud) -> None:
    # XGBoost checks its objective only when it fits: every trial fails in its first fold.
    params = {"fixed": {"objective": "binary:nonsense"}, "search_space": XGB_SPACE, "max_trials": 3}
    with pytest.raises(WorkbenchError) as info:
        run("hyperparameter_tuning", params, {"prep": prepared_fraud.output}, task_id="tune")
    message = str(info.value)
    assert "no trial of task 'tune' completed (3 run: 3 failed, 0 pruned)" in message
    assert "trial 0: fold 1: XGBoostError" in message and "binary:nonsense" in message


def test_regression_minimises_a_lower_is_better_metric(run, prepared_diabetes) -> None:
    params = {
        "algorithm": "logistic_regression",  # Ridge for regression
        "search_space": {"alpha": {"type": "continuous", "min": 0.01, "max": 1000, "log": True}},
        "objective_metric": "rmse",
        "max_trials": 5,
        "seed": 2,
    }
    result = run("hyperparameter_tuning", params, {"p": prepared_diabetes.output})
    values = [row["value"] for row in result.summary["trials"] if row["state"] == "complete"]
    assert result.summary["direction"] == "minimize"
    assert result.metrics["cv_rmse"] == min(values)
    assert result.summary["estimator"] == "Ridge"


def test_grid_sampler_visits_each_point_once(run, prepared_fraud) -> None:
    space = {
        "C": {"type": "categorical", "choices": [0.1, 1.0]},
        "fit_intercept": {"type": "categorical", "choices": [True, False]},
    }
    params = {
        "algorithm": "logistic_regression",
        "search_space": space,
        "sampler": "grid",
        "pruner": "none",
        "max_trials": 10,
        "n_parallel": 2,
    }
    result = run("hyperparameter_tuning", params, {"prep": prepared_fraud.output})
    visited = [tuple(row["params"].values()) for row in result.summary["trials"]]
    assert sorted(visited) == sorted([(c, i) for c in (0.1, 1.0) for i in (True, False)])


def test_the_objective_must_suit_the_problem(run, prepared_diabetes) -> None:
    params = {"search_space": XGB_SPACE, "objective_metric": "f1_score", "max_trials": 1}
    with pytest.raises(TaskInputError, match="'f1_score' is not a regression metric"):
        run("hyperparameter_tuning", params, {"p": prepared_diabetes.output})


def test_needs_data_upstream(run, trained_fraud) -> None:
    with pytest.raises(TaskInputError) as info:
        run("hyperparameter_tuning", {"search_space": XGB_SPACE}, {"xgb": trained_fraud})
    assert str(info.value).startswith(
        "task 'hyperparameter_tuning' (hyperparameter_tuning) needs a data_preprocessing or "
        "feature_extraction task in its 'dependencies'; it got: xgb (TrainedModel)"
    )


def test_no_trial_starts_after_timeout(run, prepared_fraud, monkeypatch) -> None:
    FoldCalls(monkeypatch, before=lambda _: time.sleep(0.05))
    params = {"search_space": XGB_SPACE, "max_trials": 20, "n_parallel": 2, "timeout_s": 0.01}
    result = run("hyperparameter_tuning", params, {"prep": prepared_fraud.output})
    assert [row["state"] for row in result.summary["trials"]] == ["complete"]


def test_a_cancel_stops_the_search_between_folds(run, prepared_fraud, monkeypatch) -> None:
    cancel = threading.Event()
    folds = FoldCalls(monkeypatch, before=lambda done: cancel.set() if done == 1 else None)
    with pytest.raises(TaskCancelledError):
        run(
            "hyperparameter_tuning",
            {"search_space": XGB_SPACE, "max_trials": 20},
            {"prep": prepared_fraud.output},
            cancel_event=cancel,
        )
    assert len(folds.calls) == 2  # the fold running when it was cancelled, and no other
