"""The built-in datasets and reading data files."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from workbench.errors import DataError
from workbench.tasks.datasets import (
    BUILTIN_DATASETS,
    load_builtin,
    read_table,
    synthetic_fraud,
    write_fraud_csv,
)

FRAUD_COLUMNS = [
    "transaction_id",
    "amount",
    "merchant_category",
    "country",
    "card_present",
    "hour",
    "customer_age",
    "account_age_days",
    "distance_from_home_km",
    "transactions_last_24h",
    "is_fraud",
]


def test_synthetic_fraud_is_deterministic_for_a_seed() -> None:
    first = synthetic_fraud(n_rows=2000, seed=7)
    pd.testing.assert_frame_equal(first, synthetic_fraud(n_rows=2000, seed=7))
    assert not first.equals(synthetic_fraud(n_rows=2000, seed=8))


def test_synthetic_fraud_has_realistic_columns_rate_gaps_and_duplicates() -> None:
    df = synthetic_fraud(n_rows=4000, seed=1)
    assert list(df.columns) == FRAUD_COLUMNS
    assert len(df) == 4000
    assert df["is_fraud"].mean() == pytest.approx(0.02, abs=0.004)
    assert 0 < df.duplicated().sum() < 60
    assert df.isna().sum().sum() > 0
    assert df["amount"].gt(0).all()
    assert df["hour"].between(0, 23).all()
    assert set(df["card_present"].unique()) == {0, 1}
    assert pd.api.types.is_string_dtype(df["merchant_category"])


def test_fraud_depends_on_the_features() -> None:
    df = synthetic_fraud(n_rows=5000, fraud_rate=0.05, seed=2)
    fraud, normal = df[df.is_fraud == 1], df[df.is_fraud == 0]
    assert fraud["card_present"].mean() < normal["card_present"].mean() - 0.3
    assert fraud["transactions_last_24h"].mean() > normal["transactions_last_24h"].mean() + 2
    assert fraud["distance_from_home_km"].median() > 5 * normal["distance_from_home_km"].median()


def test_synthetic_fraud_rejects_bad_options() -> None:
    with pytest.raises(DataError, match="fraud_rate"):
        synthetic_fraud(fraud_rate=0.9)
    with pytest.raises(DataError, match="n_rows"):
        synthetic_fraud(n_rows=3)


@pytest.mark.parametrize(
    ("name", "rows", "target_values"),
    [
        ("sklearn:iris", 150, {"setosa", "versicolor", "virginica"}),
        ("sklearn:breast_cancer", 569, {"malignant", "benign"}),
        ("sklearn:wine", 178, {"class_0", "class_1", "class_2"}),
        ("sklearn:digits", 1797, set(range(10))),
    ],
)
def test_sklearn_bundled_datasets_load_offline(name: str, rows: int, target_values: set) -> None:
    df = load_builtin(name)
    assert len(df) == rows
    assert set(df["target"].unique()) == target_values


def test_diabetes_has_a_continuous_target() -> None:
    df = load_builtin("sklearn:diabetes")
    assert df["target"].nunique() > 100


def test_unknown_dataset_lists_the_known_names() -> None:
    with pytest.raises(DataError) as info:
        load_builtin("sklearn:titanic")
    for name in BUILTIN_DATASETS:
        assert name in str(info.value)


def test_unknown_option_is_named_with_the_accepted_ones() -> None:
    with pytest.raises(DataError, match=r"rows.*n_rows, fraud_rate, seed"):
        load_builtin("synthetic_fraud", rows=10)
    with pytest.raises(DataError, match="no options"):
        load_builtin("sklearn:iris", seed=1)


def test_write_fraud_csv_round_trips(tmp_path: Path) -> None:
    path = write_fraud_csv(tmp_path / "sub" / "fraud.csv", n_rows=300, seed=4)
    df = read_table(path)
    assert len(df) == 300
    assert list(df.columns) == FRAUD_COLUMNS


def test_read_table_by_suffix(tmp_path: Path) -> None:
    df = synthetic_fraud(n_rows=100, seed=0)
    df.to_parquet(tmp_path / "data.parquet")
    pd.testing.assert_frame_equal(read_table(tmp_path / "data.parquet"), df)
    (tmp_path / "data.json").write_text("{}")
    with pytest.raises(DataError, match="unsupported file type"):
        read_table(tmp_path / "data.json")
    with pytest.raises(DataError, match="does not exist"):
        read_table(tmp_path / "missing.csv")
    (tmp_path / "broken.parquet").write_text("not parquet")
    with pytest.raises(DataError, match="cannot read"):
        read_table(tmp_path / "broken.parquet")


def test_the_light_dataset_names_match_the_implementations():
    from workbench.tasks.datasets import BUILTIN_DATASETS
    from workbench.tasks.params import BUILTIN_DATASET_NAMES

    assert set(BUILTIN_DATASET_NAMES) == set(BUILTIN_DATASETS)
