"""model_evaluation: test-split metrics, several models, the leaderboard."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from workbench.errors import TaskInputError
from workbench.tasks.evaluation import EvaluationParams


def test_binary_classification_metrics_and_confusion_matrix(run, trained_fraud) -> None:
    result = run("model_evaluation", {}, {"xgb": trained_fraud})
    assert set(result.metrics) == {
        "accuracy",
        "precision",
        "recall",
        "f1_score",
        "roc_auc",
        "log_loss",
    }
    assert result.metrics["roc_auc"] > 0.8
    matrix = result.summary["confusion_matrix"]
    assert result.summary["labels"] == [0, 1]
    assert sum(map(sum, matrix)) == len(trained_fraud.features.y_test)
    assert sum(matrix[1]) == int(trained_fraud.features.y_test.sum())
    assert result.summary["averaging"].startswith("binary")
    assert result.output is trained_fraud


def test_multiclass_uses_macro_averaging(run, prepared_iris) -> None:
    trained = run(
        "model_training", {"algorithm": "logistic_regression"}, {"p": prepared_iris.output}
    ).output
    result = run("model_evaluation", {}, {"lr": trained})
    assert result.summary["averaging"].startswith("macro")
    assert result.summary["labels"] == ["setosa", "versicolor", "virginica"]
    assert len(result.summary["confusion_matrix"]) == 3
    assert result.metrics["accuracy"] > 0.8 and "roc_auc" in result.metrics


def test_regression_metrics(run, prepared_diabetes) -> None:
    trained = run(
        "model_training",
        {"algorithm": "random_forest", "n_estimators": 10},
        {"p": prepared_diabetes.output},
    ).output
    result = run("model_evaluation", {}, {"rf": trained})
    assert set(result.metrics) == {"r2", "rmse", "mae"}
    assert result.metrics["rmse"] > result.metrics["mae"] > 0
    assert "confusion_matrix" not in result.summary


def test_several_models_give_prefixed_metrics_and_a_leaderboard(run, prepared_fraud) -> None:
    inputs = {"prep": prepared_fraud.output}
    models = {
        "xgb": run("model_training", {"n_estimators": 15}, inputs, task_id="xgb").output,
        "lr": run(
            "model_training", {"algorithm": "logistic_regression"}, inputs, task_id="lr"
        ).output,
    }
    # The xgb model also arrives through a validation task: it counts once.
    result = run("model_evaluation", {}, {**models, "validate_xgb": models["xgb"]})
    assert {"xgb.f1_score", "lr.f1_score", "xgb.roc_auc", "lr.accuracy"} <= set(result.metrics)
    assert not any(name.startswith("validate_xgb") for name in result.metrics)
    board = result.summary["leaderboard"]
    assert [entry["model"] for entry in board] == sorted(
        models, key=lambda tid: -result.metrics[f"{tid}.f1_score"]
    )
    assert result.summary["best_model"] == board[0]["model"]
    assert result.summary["rank_by"] == "f1_score"
    assert result.output is models[board[0]["model"]]
    by_loss = run("model_evaluation", {"rank_by": "log_loss"}, models)
    losses = [entry["metrics"]["log_loss"] for entry in by_loss.summary["leaderboard"]]
    assert losses == sorted(losses)


def test_mixed_problem_kinds_and_bad_rank_metric(run, trained_fraud, prepared_diabetes) -> None:
    regressor = run(
        "model_training",
        {"algorithm": "logistic_regression"},
        {"p": prepared_diabetes.output},
        task_id="ridge",
    ).output
    with pytest.raises(TaskInputError, match="separate model_evaluation tasks"):
        run("model_evaluation", {}, {"xgb": trained_fraud, "ridge": regressor})
    with pytest.raises(TaskInputError, match="rank_by 'rmse' is not a classification metric"):
        run("model_evaluation", {"rank_by": "rmse"}, {"xgb": trained_fraud})
    with pytest.raises(ValidationError, match="unknown metric 'auc'"):
        EvaluationParams(rank_by="auc")
