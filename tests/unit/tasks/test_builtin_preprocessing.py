"""data_preprocessing: loading, target detection, cleaning and the split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from workbench.errors import DataError
from workbench.tasks.data import PreparedData, ProblemKind
from workbench.tasks.preprocessing import PreprocessingParams


def small_frame() -> pd.DataFrame:
    """20 distinct rows, 2 exact duplicates, 3 numeric and 1 categorical gap."""
    rng = np.random.default_rng(0)
    df = pd.DataFrame(
        {
            "row_id": [f"r{i}" for i in range(20)],
            "size": rng.normal(10, 2, 20).round(2),
            "colour": ["red", "blue", "green", "red"] * 5,
            "flag": [True, False] * 10,
            "Label": ["yes", "no"] * 10,
        }
    )
    df.loc[[1, 4, 7], "size"] = np.nan
    df.loc[2, "colour"] = np.nan
    return pd.concat([df, df.iloc[[0, 3]]], ignore_index=True)


def test_csv_and_parquet_give_the_same_prepared_data(run, fraud_frame, tmp_path: Path) -> None:
    fraud_frame.to_csv(tmp_path / "d.csv", index=False)
    fraud_frame.to_parquet(tmp_path / "d.parquet")
    from_csv = run("data_preprocessing", {"dataset_path": "d.csv"})  # relative to base_dir
    from_parquet = run("data_preprocessing", {"dataset_path": str(tmp_path / "d.parquet")})
    assert from_csv.metrics == from_parquet.metrics
    a, b = from_csv.output, from_parquet.output
    assert isinstance(a, PreparedData)
    assert a.feature_columns == b.feature_columns
    pd.testing.assert_frame_equal(a.train, b.train, check_dtype=False)


def test_fraud_data_is_cleaned_and_split(prepared_fraud, fraud_frame) -> None:
    data, metrics = prepared_fraud.output, prepared_fraud.metrics
    assert data.target == "is_fraud"
    assert data.problem is ProblemKind.CLASSIFICATION
    assert data.class_labels == [0, 1]
    assert data.id_columns == ["transaction_id"]
    assert "transaction_id" not in data.train.columns
    assert data.categorical_columns == ["merchant_category", "country"]
    assert metrics["rows_in"] == len(fraud_frame)
    assert metrics["duplicates_removed"] == fraud_frame.duplicated().sum() > 0
    assert metrics["rows_out"] == len(fraud_frame) - metrics["duplicates_removed"]
    assert metrics["missing_imputed"] == fraud_frame.drop_duplicates().isna().sum().sum() > 0
    assert metrics["test_rows"] == pytest.approx(0.2 * metrics["rows_out"], abs=1)
    assert not data.train.isna().any().any() and not data.test.isna().any().any()
    # Stratified: both splits keep the positive rate.
    rate = metrics["positive_rate"]
    assert data.train["is_fraud"].mean() == pytest.approx(rate, abs=0.01)
    assert data.test["is_fraud"].mean() == pytest.approx(rate, abs=0.01)
    assert prepared_fraud.summary["dropped_identifier_columns"] == ["transaction_id"]


def test_dedupe_impute_counts_and_label_encoding(run, tmp_path: Path) -> None:
    small_frame().to_csv(tmp_path / "small.csv", index=False)
    result = run("data_preprocessing", {"dataset_path": "small.csv", "test_size": 0.25})
    data = result.output
    assert result.metrics["duplicates_removed"] == 2
    assert result.metrics["missing_imputed"] == 4
    assert data.target == "Label"  # found in any case
    assert data.class_labels == ["no", "yes"]
    assert set(data.train["Label"]) == {0, 1}
    assert data.id_columns == ["row_id"]
    assert data.numeric_columns == ["size", "flag"]  # the flag became 0/1
    assert data.train["flag"].dtype == np.int64
    assert result.summary["class_labels"] == ["no", "yes"]


def test_without_dedupe_duplicates_stay(run, tmp_path: Path) -> None:
    small_frame().to_csv(tmp_path / "small.csv", index=False)
    result = run("data_preprocessing", {"dataset_path": "small.csv", "dedupe": False})
    assert result.metrics["duplicates_removed"] == 0
    assert result.metrics["rows_out"] == 22


def test_impute_drop_removes_incomplete_rows(run, tmp_path: Path) -> None:
    small_frame().to_csv(tmp_path / "small.csv", index=False)
    result = run("data_preprocessing", {"dataset_path": "small.csv", "impute": "drop"})
    assert result.metrics["rows_dropped_missing"] == 4
    assert result.metrics["missing_imputed"] == 0
    assert result.metrics["rows_out"] == 16


def test_mean_imputation_uses_the_train_split(run, tmp_path: Path) -> None:
    small_frame().to_csv(tmp_path / "small.csv", index=False)
    data = run("data_preprocessing", {"dataset_path": "small.csv", "impute": "mean"}).output
    frame = small_frame().drop_duplicates()
    filled = pd.concat([data.train, data.test]).loc[[1, 4, 7], "size"]
    assert filled.nunique() == 1
    assert filled.iloc[0] == pytest.approx(frame.loc[data.train.index, "size"].mean())


def test_missing_target_lists_the_columns(run, tmp_path: Path) -> None:
    pd.DataFrame({"a": [1, 2, 3], "b": [4, 5, 6]}).to_csv(tmp_path / "x.csv", index=False)
    with pytest.raises(DataError) as info:
        run("data_preprocessing", {"dataset_path": "x.csv"})
    assert "target_column" in str(info.value) and "a, b" in str(info.value)
    with pytest.raises(DataError, match="'price' is not in the data; columns: a, b"):
        run("data_preprocessing", {"dataset_path": "x.csv", "target_column": "price"})


def test_target_from_global_parameters(run, tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"x": rng.normal(size=40), "price": rng.normal(100, 10, 40)})
    frame.to_csv(tmp_path / "p.csv", index=False)
    result = run(
        "data_preprocessing",
        {"dataset_path": "p.csv"},
        global_parameters={"target_column": "price", "random_state": 5},
    )
    assert result.output.target == "price"
    assert result.output.problem is ProblemKind.REGRESSION
    assert result.summary["random_state"] == 5
    assert "positive_rate" not in result.metrics


def test_problem_type_inference_and_override(run) -> None:
    digits = run("data_preprocessing", {"dataset": "sklearn:digits"})
    assert digits.output.problem is ProblemKind.CLASSIFICATION
    assert digits.output.class_labels == list(range(10))
    diabetes = run("data_preprocessing", {"dataset": "sklearn:diabetes"})
    assert diabetes.output.problem is ProblemKind.REGRESSION
    forced = run("data_preprocessing", {"dataset": "sklearn:digits", "problem_type": "regression"})
    assert forced.output.problem is ProblemKind.REGRESSION
    with pytest.raises(DataError, match="classification"):
        run("data_preprocessing", {"dataset": "sklearn:iris", "problem_type": "regression"})


def test_builtin_dataset_with_options_and_drop_columns(run) -> None:
    result = run(
        "data_preprocessing",
        {
            "dataset": "synthetic_fraud",
            "dataset_options": {"n_rows": 400, "seed": 2, "fraud_rate": 0.1},
            "drop_columns": ["country"],
            "random_state": 3,
        },
    )
    assert result.metrics["rows_in"] == 400
    assert "country" not in result.output.feature_columns
    assert (
        result.summary["source"] == "built-in synthetic_fraud (n_rows=400, seed=2, fraud_rate=0.1)"
    )
    with pytest.raises(DataError, match="drop_columns names nope"):
        run("data_preprocessing", {"dataset": "sklearn:iris", "drop_columns": ["nope"]})


def test_split_is_reproducible(run) -> None:
    params = {"dataset": "sklearn:wine", "random_state": 9}
    first = run("data_preprocessing", params).output
    second = run("data_preprocessing", params).output
    assert list(first.train.index) == list(second.train.index)
    other = run("data_preprocessing", {**params, "random_state": 10}).output
    assert list(first.train.index) != list(other.train.index)


def test_progress_is_reported_at_each_step(run, fast_progress) -> None:
    run("data_preprocessing", {"dataset": "sklearn:iris"})
    messages = [p["message"] for p in run.of_kind("progress")]
    assert len(messages) >= 5
    assert run.of_kind("progress")[-1]["fraction"] == 1.0


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({}, "exactly one of"),
        ({"dataset": "sklearn:iris", "dataset_path": "x.csv"}, "exactly one of"),
        ({"dataset": "mnist"}, "unknown dataset 'mnist'; known: synthetic_fraud"),
        ({"dataset": "synthetic_fraud", "dataset_options": {"rows": 5}}, "accepts: n_rows"),
        ({"dataset_path": "x.csv", "dataset_options": {"n_rows": 5}}, "only with a built-in"),
        ({"dataset": "sklearn:iris", "test_size": 1.5}, "test_size"),
        ({"dataset": "sklearn:iris", "impute": "zero"}, "impute"),
        ({"dataset": "sklearn:iris", "target": "y"}, "Extra inputs are not permitted"),
    ],
)
def test_params_are_validated_up_front(params: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        PreprocessingParams.model_validate(params)


def test_dataset_path_is_marked_as_an_input_file() -> None:
    extra = PreprocessingParams.model_fields["dataset_path"].json_schema_extra
    assert extra == {"workbench_input_file": True}


def test_identifier_detection() -> None:
    from workbench.tasks.preprocessing import identifier_columns

    n = 30
    df = pd.DataFrame(
        {
            "code": [f"c{i}" for i in range(n)],  # text, unique per row
            "row_number": np.arange(100, 100 + n),  # numbers the rows
            "customer_id": [i // 2 if i < 2 else i for i in range(n)],  # named, nearly unique
            "sqft": np.arange(n) * 37 + 500,  # unique whole numbers, but a real feature
            "weight": np.linspace(1, 2, n),  # float: never an identifier
            "colour": ["a", "b", "c"] * 10,
            "y": [0, 1] * 15,
        }
    )
    assert identifier_columns(df, exclude="y") == ["code", "row_number", "customer_id"]
