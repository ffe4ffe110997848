"""batch_inference: partitioned scoring with dask.dataframe, Parquet output."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from workbench.errors import DataError, TaskInputError


def test_scores_a_csv_file_and_keeps_the_id_column(
    run, trained_fraud, fraud_csv: Path, fraud_frame, fast_progress
) -> None:
    result = run(
        "batch_inference",
        {"dataset_path": str(fraud_csv), "output_path": "out/preds.parquet", "partitions": 4},
        {"xgb": trained_fraud},
    )
    path = Path(result.artifacts["predictions"])
    assert path == run.base_dir / "out" / "preds.parquet"
    scored = pd.read_parquet(path)
    assert len(scored) == len(fraud_frame) == result.metrics["rows_scored"]
    assert list(scored.columns) == ["transaction_id", "prediction", "probability"]
    assert scored["transaction_id"].tolist() == fraud_frame["transaction_id"].tolist()
    assert set(scored["prediction"]) <= {0, 1}
    assert scored["probability"].between(0, 1).all()
    assert ((scored["probability"] > 0.5) == (scored["prediction"] == 1)).mean() > 0.99
    rate = result.metrics["predicted_positive_rate"]
    assert rate == pytest.approx((scored["prediction"] == 1).mean())
    partitions = [p for p in run.of_kind("progress") if "partition" in p["message"]]
    assert len(partitions) == 4 and result.summary["partitions"] == 4


def test_defaults_to_the_test_split_without_the_target(run, trained_fraud) -> None:
    result = run("batch_inference", {}, {"xgb": trained_fraud})
    path = Path(result.artifacts["predictions"])
    assert path == run.base_dir / ".workbench" / "runs" / "test-run" / "batch_inference" / (
        "predictions.parquet"
    )
    scored = pd.read_parquet(path)
    data = trained_fraud.features.data
    assert len(scored) == len(data.test)
    assert "is_fraud" not in scored.columns
    assert set(data.feature_columns) < set(scored.columns)
    assert result.output == path


def test_multiclass_labels_and_regression_values(run, prepared_iris, prepared_diabetes) -> None:
    iris_model = run(
        "model_training",
        {"algorithm": "random_forest", "n_estimators": 10},
        {"p": prepared_iris.output},
    ).output
    iris = pd.read_parquet(
        run("batch_inference", {"partitions": 3}, {"m": iris_model}).artifacts["predictions"]
    )
    assert set(iris["prediction"]) <= {"setosa", "versicolor", "virginica"}
    assert "probability" not in iris.columns
    ridge = run(
        "model_training", {"algorithm": "logistic_regression"}, {"p": prepared_diabetes.output}
    ).output
    result = run("batch_inference", {"output_path": "d.parquet"}, {"m": ridge})
    values = pd.read_parquet(result.artifacts["predictions"])["prediction"]
    assert values.dtype == "float64" and values.nunique() > 10
    assert "predicted_positive_rate" not in result.metrics


def test_more_partitions_than_rows(run, trained_fraud, fraud_frame, tmp_path: Path) -> None:
    fraud_frame.head(3).to_parquet(tmp_path / "three.parquet")
    result = run(
        "batch_inference",
        {"dataset_path": "three.parquet", "partitions": 8},
        {"xgb": trained_fraud},
    )
    assert result.metrics["rows_scored"] == 3
    assert len(pd.read_parquet(result.artifacts["predictions"])) == 3


def test_missing_model_columns_are_named(run, trained_fraud, fraud_frame, tmp_path: Path) -> None:
    fraud_frame.drop(columns=["amount", "hour"]).to_csv(tmp_path / "partial.csv", index=False)
    with pytest.raises(DataError, match="lacks column"):
        run("batch_inference", {"dataset_path": "partial.csv"}, {"xgb": trained_fraud})


def test_needs_one_model(run, trained_fraud, prepared_fraud) -> None:
    with pytest.raises(TaskInputError, match="needs a trained model"):
        run("batch_inference", {}, {"prep": prepared_fraud.output})
    other = run(
        "model_training",
        {"algorithm": "logistic_regression"},
        {"p": prepared_fraud.output},
        task_id="lr",
    ).output
    with pytest.raises(TaskInputError, match="can use only one"):
        run("batch_inference", {}, {"xgb": trained_fraud, "lr": other})
