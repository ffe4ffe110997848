"""feature_extraction: encoding fitted on the train split only."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from workbench.errors import DataError, TaskInputError
from workbench.tasks.data import FeatureSet
from workbench.tasks.features import FeatureParams


def test_scales_numerics_and_one_hot_encodes_categoricals(run, prepared_fraud) -> None:
    data = prepared_fraud.output
    result = run("feature_extraction", {}, {"prep": data})
    features = result.output
    assert isinstance(features, FeatureSet)
    n_categories = sum(data.train[c].nunique() for c in data.categorical_columns)
    width = len(data.numeric_columns) + n_categories
    assert features.X_train.shape == (len(data.train), width)
    assert features.X_test.shape == (len(data.test), width)
    assert len(features.feature_names) == width
    assert "amount" in features.feature_names
    assert any(name.startswith("merchant_category_") for name in features.feature_names)
    numeric = features.X_train[:, : len(data.numeric_columns)]
    np.testing.assert_allclose(numeric.mean(axis=0), 0, atol=1e-9)  # fitted on train only
    assert abs(features.X_test[:, 0].mean()) > 1e-6
    np.testing.assert_array_equal(features.y_train, data.y_train)
    assert result.metrics["n_features_out"] == width


def test_without_scaling_numerics_are_unchanged(run, prepared_fraud) -> None:
    data = prepared_fraud.output
    features = run("feature_extraction", {"scale_numeric": False}, {"prep": data}).output
    np.testing.assert_allclose(features.X_train[:, 0], data.train["amount"].to_numpy())


def test_pca_reduces_to_n_components(run, prepared_iris) -> None:
    result = run("feature_extraction", {"pca": 2}, {"prep": prepared_iris.output})
    assert result.output.X_train.shape[1] == 2
    assert result.output.feature_names == ["pca0", "pca1"]
    assert 0.8 < result.metrics["pca_explained_variance"] <= 1.0


def test_select_k_best_keeps_k_features(run, prepared_fraud) -> None:
    result = run("feature_extraction", {"select_k_best": 4}, {"prep": prepared_fraud.output})
    assert result.output.X_train.shape[1] == 4
    assert len(result.output.feature_names) == 4


def test_too_many_components_is_a_clear_error(run, prepared_iris) -> None:
    with pytest.raises(DataError, match="select_k_best=9 but the data gives only 4"):
        run("feature_extraction", {"select_k_best": 9}, {"prep": prepared_iris.output})


def test_needs_prepared_data_upstream(run) -> None:
    with pytest.raises(TaskInputError, match="needs a PreparedData"):
        run("feature_extraction", {}, {})


def test_pca_and_select_k_best_exclude_each_other() -> None:
    with pytest.raises(ValidationError, match="either 'pca' or 'select_k_best'"):
        FeatureParams(pca=2, select_k_best=2)
