"""model_training: every algorithm, parameter pass-through and checks, progress."""

from __future__ import annotations

import pickle
import threading

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from workbench.errors import DataError, TaskCancelledError, TaskInputError
from workbench.tasks.data import FittedModel, ProblemKind, TrainedModel
from workbench.tasks.training import TrainingParams

ALGORITHMS = ["xgboost", "random_forest", "logistic_regression", "gradient_boosting"]
SMALL = {"n_estimators": 15}  # keeps the ensembles quick


def small_params(algorithm: str) -> dict:
    return {"algorithm": algorithm, **({} if algorithm == "logistic_regression" else SMALL)}


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_classification_from_features(run, prepared_fraud, algorithm: str) -> None:
    features = run("feature_extraction", {}, {"prep": prepared_fraud.output}).output
    result = run("model_training", small_params(algorithm), {"fe": features}, task_id="m")
    trained = result.output
    assert isinstance(trained, TrainedModel)
    assert trained.algorithm == algorithm and trained.task_id == "m"
    assert trained.model.problem is ProblemKind.CLASSIFICATION
    assert result.metrics["train_accuracy"] > 0.85
    assert 0 <= result.metrics["train_f1_score"] <= 1
    assert result.metrics["fit_time_s"] > 0
    assert result.summary["algorithm"] == algorithm
    if algorithm != "logistic_regression":
        assert trained.params["n_estimators"] == 15


@pytest.mark.parametrize(
    ("algorithm", "estimator"),
    [
        ("xgboost", "XGBRegressor"),
        ("random_forest", "RandomForestRegressor"),
        ("logistic_regression", "Ridge"),
        ("gradient_boosting", "GradientBoostingRegressor"),
    ],
)
def test_regression_counterparts(run, prepared_diabetes, algorithm: str, estimator: str) -> None:
    result = run("model_training", small_params(algorithm), {"prep": prepared_diabetes.output})
    assert result.summary["estimator"] == estimator
    assert result.output.model.problem is ProblemKind.REGRESSION
    assert result.metrics["train_r2"] > 0.3
    assert result.metrics["train_rmse"] > 0
    if algorithm == "logistic_regression":
        assert "Ridge" in result.summary["note"]


def test_multiclass_model_predicts_original_labels(run, prepared_iris) -> None:
    trained = run("model_training", small_params("xgboost"), {"p": prepared_iris.output}).output
    raw = prepared_iris.output.test.drop(columns=["target"])
    predicted = trained.model.predict(raw)
    assert set(predicted) <= {"setosa", "versicolor", "virginica"}
    proba = trained.model.predict_proba(raw)
    assert proba.shape == (len(raw), 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)


def test_fitted_model_scores_raw_rows_with_gaps(trained_fraud, fraud_frame) -> None:
    model: FittedModel = trained_fraud.model
    raw = fraud_frame.head(50).copy()
    raw.loc[raw.index[:3], "customer_age"] = np.nan
    raw.loc[raw.index[3], "merchant_category"] = "spaceship"  # unseen category
    raw["card_present"] = raw["card_present"].astype(bool)
    predicted = model.predict(raw)
    # Other spellings of the same data: pyarrow strings and nullable ints with pd.NA.
    other = raw.astype({"country": "string", "account_age_days": "Int64"})
    other.loc[other.index[5], ["country", "account_age_days"]] = pd.NA
    assert model.predict(other).shape == (50,)
    assert predicted.shape == (50,)
    assert set(predicted) <= {0, 1}
    assert model.input_signature["merchant_category"] == "str"
    assert "transaction_id" not in model.input_columns
    with pytest.raises(DataError, match="lacks column"):
        model.predict(raw.drop(columns=["amount"]))


def test_trained_model_pickles_without_the_context(trained_fraud) -> None:
    restored = pickle.loads(pickle.dumps(trained_fraud))
    rows = trained_fraud.features.data.test
    np.testing.assert_array_equal(restored.model.predict(rows), trained_fraud.model.predict(rows))
    assert restored.model.estimator.get_params()["callbacks"] is None


def test_xgboost_reports_progress_per_round_and_logs_a_metric(
    run, prepared_fraud, fast_progress
) -> None:
    params = {"algorithm": "xgboost", "n_estimators": 40}
    run("model_training", params, {"prep": prepared_fraud.output})
    rounds = [p for p in run.of_kind("progress") if "boosting round" in p["message"]]
    assert len(rounds) == 40
    fractions = [p["fraction"] for p in run.of_kind("progress")]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    logged = run.of_kind("metric")
    assert 10 <= len(logged) <= 25  # a modest rate, not every round
    assert logged[0]["name"] == "train_logloss" and logged[-1]["step"] == 40


def test_gradient_boosting_and_forest_report_stages(run, prepared_fraud, fast_progress) -> None:
    inputs = {"prep": prepared_fraud.output}
    run("model_training", {"algorithm": "gradient_boosting", "n_estimators": 12}, inputs)
    stages = [p for p in run.of_kind("progress") if "boosting stage" in p["message"]]
    assert len(stages) == 12
    assert any(m["name"] == "train_loss" for m in run.of_kind("metric"))
    run.events.clear()
    trained = run("model_training", {"algorithm": "random_forest", "n_estimators": 30}, inputs)
    batches = [p for p in run.of_kind("progress") if "trees" in p["message"]]
    assert len(batches) == 10 and batches[-1]["message"] == "30/30 trees"
    forest = trained.output.model.estimator
    assert len(forest.estimators_) == 30 and forest.warm_start is False


def test_cancellation_stops_training_at_the_next_round(run, prepared_fraud) -> None:
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(TaskCancelledError):
        run(
            "model_training",
            {"algorithm": "xgboost", "n_estimators": 500},
            {"prep": prepared_fraud.output},
            cancel_event=cancel,
        )


def test_unknown_estimator_parameter_rejected_at_params_validation() -> None:
    with pytest.raises(ValidationError) as info:
        TrainingParams.model_validate({"algorithm": "random_forest", "n_estimator": 10})
    message = str(info.value)
    assert "unknown parameter(s) n_estimator" in message
    assert "valid parameters:" in message and "n_estimators" in message and "max_depth" in message


def test_wrongly_typed_sklearn_parameter_rejected_at_params_validation() -> None:
    with pytest.raises(ValidationError, match="'n_estimators' parameter of RandomForest"):
        TrainingParams.model_validate({"algorithm": "random_forest", "n_estimators": "many"})
    with pytest.raises(ValidationError, match="'C' parameter of LogisticRegression"):
        TrainingParams.model_validate(
            {"algorithm": "logistic_regression", "problem_type": "classification", "C": -1}
        )


def test_parameters_pass_through_and_are_checked_per_problem_kind() -> None:
    params = TrainingParams.model_validate({"algorithm": "xgboost", "max_depth": 2})
    assert params.estimator_params == {"max_depth": 2}
    # Only the scikit-learn API names: 'eta' is spelt learning_rate there.
    with pytest.raises(ValidationError, match=r"eta for algorithm 'xgboost'.*learning_rate"):
        TrainingParams.model_validate({"algorithm": "xgboost", "eta": 0.3})
    ok = TrainingParams.model_validate({"algorithm": "logistic_regression", "alpha": 2.0})
    assert ok.estimator_params == {"alpha": 2.0}  # Ridge's, valid when auto may be regression
    with pytest.raises(ValidationError, match="unknown parameter"):
        TrainingParams.model_validate(
            {"algorithm": "logistic_regression", "problem_type": "classification", "alpha": 2.0}
        )
    with pytest.raises(ValidationError, match="callbacks is set by Workbench"):
        TrainingParams.model_validate({"algorithm": "xgboost", "callbacks": []})
    with pytest.raises(ValidationError, match="algorithm"):
        TrainingParams.model_validate({"algorithm": "svm"})


def test_parameter_of_the_other_problem_kind_fails_clearly(run, prepared_fraud) -> None:
    with pytest.raises(DataError, match="alpha do not apply to LogisticRegression"):
        run(
            "model_training",
            {"algorithm": "logistic_regression", "alpha": 2.0},
            {"prep": prepared_fraud.output},
        )


def test_problem_type_override(run, prepared_diabetes, prepared_iris) -> None:
    with pytest.raises(DataError, match="distinct values"):
        run(
            "model_training",
            {"algorithm": "logistic_regression", "problem_type": "classification"},
            {"prep": prepared_diabetes.output},
        )
    with pytest.raises(DataError, match="text labels"):
        run(
            "model_training",
            {"algorithm": "logistic_regression", "problem_type": "regression"},
            {"prep": prepared_iris.output},
        )


def test_binary_codes_can_be_regressed(run, prepared_fraud) -> None:
    result = run(
        "model_training",
        {"algorithm": "logistic_regression", "problem_type": "regression"},
        {"prep": prepared_fraud.output},
    )
    model = result.output.model
    assert model.problem is ProblemKind.REGRESSION and model.class_labels == []
    assert result.output.features.y_train.dtype == np.float64


def test_needs_data_upstream(run) -> None:
    with pytest.raises(TaskInputError, match="data_preprocessing or feature_extraction"):
        run("model_training", {}, {"other": pd.DataFrame()})


def test_threads_follow_the_task_resources(run, prepared_fraud) -> None:
    trained = run(
        "model_training", small_params("random_forest"), {"p": prepared_fraud.output}, cpu=2
    ).output
    assert trained.model.estimator.n_jobs == 2


def test_the_training_curve_is_scored_on_a_fixed_sample_of_large_data() -> None:
    from workbench.tasks.estimators import CURVE_ROWS, curve_rows

    X, y = np.arange(20).reshape(10, 2), np.arange(10)
    assert curve_rows(X, y)[0] is X  # few rows: the training matrix itself
    big_X = np.arange(3 * CURVE_ROWS * 2).reshape(-1, 2)
    big_y = np.arange(3 * CURVE_ROWS)
    sample_X, sample_y = curve_rows(big_X, big_y)
    assert len(sample_y) == CURVE_ROWS
    assert sample_y[0] == 0 and sample_y[-1] == len(big_y) - 1  # spread over all of them
    assert (sample_X[:, 0] == 2 * sample_y).all()  # rows stay with their labels
    assert (curve_rows(big_X, big_y)[1] == sample_y).all()  # the same rows each time
