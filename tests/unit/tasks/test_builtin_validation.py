"""model_validation: k-fold cross-validation and metric gates."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from workbench.errors import DataError, TaskInputError, ValidationGateError
from workbench.tasks.model_validation import ValidationParams
from workbench.tasks.params import KNOWN_METRICS


def test_cross_validation_metrics_and_progress_per_fold(run, trained_fraud, fast_progress) -> None:
    result = run("model_validation", {"folds": 3}, {"xgb": trained_fraud})
    for name in ("accuracy", "precision", "recall", "f1_score", "roc_auc", "log_loss"):
        assert result.metrics[name] == result.metrics[f"cv_{name}_mean"]
        assert result.metrics[f"cv_{name}_std"] >= 0
    assert 0.5 < result.metrics["roc_auc"] <= 1
    assert len(result.summary["per_fold"]) == 3
    assert result.summary["stratified"] is True
    assert result.output is trained_fraud  # passed on for evaluation/inference
    messages = [p["message"] for p in run.of_kind("progress")]
    folds = {m.split(":")[0] for m in messages if m.startswith("fold ")}
    assert folds == {"fold 1/3", "fold 2/3", "fold 3/3"}
    assert [m["step"] for m in run.of_kind("metric") if m["name"] == "cv_f1_score"] == [1, 2, 3]


def test_cross_validation_is_reproducible(run, trained_fraud) -> None:
    first = run("model_validation", {"folds": 3, "random_state": 1}, {"xgb": trained_fraud})
    second = run("model_validation", {"folds": 3, "random_state": 1}, {"xgb": trained_fraud})
    assert first.metrics == second.metrics


def test_regression_cross_validation_with_a_max_gate(run, prepared_diabetes) -> None:
    trained = run(
        "model_training",
        {"algorithm": "logistic_regression"},
        {"p": prepared_diabetes.output},
    ).output
    result = run("model_validation", {"folds": 3, "max_metrics": {"rmse": 100}}, {"t": trained})
    assert set(result.metrics) >= {"r2", "rmse", "mae", "cv_rmse_mean", "cv_r2_std"}
    assert result.summary["stratified"] is False
    with pytest.raises(ValidationGateError) as info:
        run("model_validation", {"folds": 3, "max_metrics": {"rmse": 10}}, {"t": trained})
    rmse = result.metrics["rmse"]
    assert f"rmse = {rmse:.4g} is above the maximum 10 (max_metrics.rmse)" in str(info.value)


def test_unmet_gate_names_metric_value_and_threshold(run, trained_fraud) -> None:
    gates = {"min_metrics": {"f1_score": 0.999, "accuracy": 0.1}, "folds": 3}
    with pytest.raises(ValidationGateError) as info:
        run("model_validation", gates, {"xgb": trained_fraud})
    message = str(info.value)
    assert "f1_score = " in message and "below the minimum 0.999 (min_metrics.f1_score)" in message
    assert "accuracy" not in message  # met gates are not reported as failures
    assert "relax the gate" in message


def test_gate_on_a_metric_of_the_other_problem_kind(run, trained_fraud) -> None:
    with pytest.raises(TaskInputError, match=r"gate on 'rmse'.*its metrics: accuracy"):
        run("model_validation", {"folds": 2, "max_metrics": {"rmse": 1}}, {"xgb": trained_fraud})


def test_unknown_gate_metric_rejected_at_params_validation() -> None:
    with pytest.raises(ValidationError) as info:
        ValidationParams.model_validate({"min_metrics": {"f1": 0.8}})
    assert "unknown metric(s) f1; known metrics: " + ", ".join(KNOWN_METRICS) in str(info.value)


def test_too_many_folds_for_the_rarest_class(run, trained_fraud) -> None:
    with pytest.raises(DataError, match="lower 'folds' to at most"):
        run("model_validation", {"folds": 100}, {"xgb": trained_fraud})


def test_needs_a_trained_model(run, prepared_fraud) -> None:
    with pytest.raises(TaskInputError, match="needs a trained model"):
        run("model_validation", {}, {"prep": prepared_fraud.output})
