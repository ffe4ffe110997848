"""The typed values that flow between the built-in ML tasks, and helpers to find them in a
task's inputs."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from workbench.errors import DataError, TaskInputError
from workbench.tasks.base import TaskContext
from workbench.tasks.params import ProblemKind


@dataclass
class PreparedData:
    """A cleaned dataset split into train and test frames (features + target column).

    For classification the target column holds codes 0..n-1 (XGBoost needs them) and
    `class_labels[code]` is the original label.
    """

    train: pd.DataFrame
    test: pd.DataFrame
    target: str
    problem: ProblemKind
    feature_columns: list[str]
    numeric_columns: list[str]
    categorical_columns: list[str]
    class_labels: list[Any] = field(default_factory=list)
    id_columns: list[str] = field(default_factory=list)
    numeric_impute: str = "median"
    source: str = ""

    @property
    def X_train(self) -> pd.DataFrame:
        return self.train[self.feature_columns]

    @property
    def X_test(self) -> pd.DataFrame:
        return self.test[self.feature_columns]

    @property
    def y_train(self) -> np.ndarray:
        return self.train[self.target].to_numpy()

    @property
    def y_test(self) -> np.ndarray:
        return self.test[self.target].to_numpy()


@dataclass
class FeatureSet:
    """Model-ready matrices: `transformer` (fitted on the train split only) maps raw feature
    rows of `data` to X; y is in the same encoding as `data`'s target."""

    data: PreparedData
    transformer: Any
    X_train: np.ndarray
    X_test: np.ndarray
    y_train: np.ndarray
    y_test: np.ndarray
    feature_names: list[str]


def aligned_proba(estimator: Any, X: Any, n_classes: int) -> np.ndarray:
    """predict_proba with one column per class code 0..n-1, even when the estimator saw fewer
    classes in training, as float64 rows that sum to 1 (metrics are strict about it)."""
    raw = np.asarray(estimator.predict_proba(X), dtype=np.float64)
    classes = np.asarray(getattr(estimator, "classes_", np.arange(raw.shape[1]))).astype(int)
    proba = np.zeros((raw.shape[0], n_classes))
    proba[:, classes] = raw
    totals = proba.sum(axis=1, keepdims=True)
    return np.divide(proba, totals, out=np.full_like(proba, 1.0 / n_classes), where=totals > 0)


@dataclass
class FittedModel:
    """A transformer + estimator that scores RAW feature rows (as in the input data)."""

    transformer: Any
    estimator: Any
    input_signature: dict[str, str]  # column -> dtype seen in training
    problem: ProblemKind
    target: str
    class_labels: list[Any] = field(default_factory=list)

    @property
    def input_columns(self) -> list[str]:
        return list(self.input_signature)

    def transform(self, df: pd.DataFrame) -> np.ndarray:
        missing = [c for c in self.input_columns if c not in df.columns]
        if missing:
            raise DataError(
                f"the data lacks column(s) {', '.join(missing)} that the model was trained on; "
                f"it needs: {', '.join(self.input_columns)}"
            )
        rows = df[self.input_columns].copy()
        for column, dtype in self.input_signature.items():
            rows[column] = _as_trained(rows[column], dtype)
        return np.asarray(self.transformer.transform(rows), dtype=np.float64)

    def predict(self, df: pd.DataFrame, *, decode: bool = True) -> np.ndarray:
        """Predictions for raw rows: original class labels (codes with decode=False) or values."""
        raw = np.asarray(self.estimator.predict(self.transform(df)))
        if self.problem is ProblemKind.REGRESSION:
            return raw.astype(np.float64)
        codes = raw.astype(np.int64)
        return self.decode(codes) if decode else codes

    def predict_proba(self, df: pd.DataFrame) -> np.ndarray:
        """Class probabilities, one column per entry of `class_labels`."""
        if self.problem is not ProblemKind.CLASSIFICATION:
            raise DataError("a regression model gives no class probabilities; use predict()")
        return aligned_proba(self.estimator, self.transform(df), len(self.class_labels))

    def decode(self, codes: np.ndarray) -> np.ndarray:
        return np.asarray(self.class_labels)[codes]


def _is_numeric(dtype: str) -> bool:
    return dtype.startswith(("int", "uint", "float", "Int", "UInt", "Float", "bool"))


def _as_trained(series: pd.Series, dtype: str) -> pd.Series:
    """A column in the kind of dtype the transformer was fitted on. New data may bring flags
    as bools, numbers as text, nullable dtypes (pd.NA), or text as object or pyarrow
    'string' (dask.dataframe converts to it)."""
    if not _is_numeric(dtype):
        return series if str(series.dtype) == "str" else series.astype("str")
    if not pd.api.types.is_numeric_dtype(series):
        try:
            series = pd.to_numeric(series)
        except (TypeError, ValueError) as exc:
            raise DataError(
                f"column {series.name!r} must be numeric (as in training), got: {exc}"
            ) from exc
    if pd.api.types.is_bool_dtype(series) or not isinstance(series.dtype, np.dtype):
        series = series.astype(np.float64)
    return series


@dataclass
class TrainedModel:
    """A fitted model with the features it was trained on. `task_id` names the training task
    (downstream tasks that receive the same model twice recognise it by that)."""

    model: FittedModel
    features: FeatureSet
    algorithm: str
    params: dict[str, Any]
    task_id: str = ""

    @property
    def n_classes(self) -> int:
        return len(self.model.class_labels)


def trained_models(ctx: TaskContext) -> dict[str, TrainedModel]:
    """The distinct upstream TrainedModels by training task id (a model may arrive both from
    its training task and from a validation task that passes it on)."""
    found: dict[str, TrainedModel] = {}
    for upstream_id, value in ctx.inputs_of(TrainedModel).items():
        found.setdefault(value.task_id or upstream_id, value)
    if not found:
        upstream = ", ".join(f"{tid} ({type(v).__name__})" for tid, v in ctx.inputs.items())
        raise TaskInputError(
            f"task {ctx.task_id!r} ({ctx.task_type}) needs a trained model from a "
            f"model_training task, but its dependencies give: {upstream or 'nothing'}. "
            "Add the training task to its 'dependencies'."
        )
    return found


def single_trained_model(ctx: TaskContext) -> TrainedModel:
    models = trained_models(ctx)
    if len(models) > 1:
        raise TaskInputError(
            f"task {ctx.task_id!r} ({ctx.task_type}) got models from {', '.join(models)} and "
            "can use only one; depend on one training task, or on a model_evaluation task, "
            "which passes on the best model."
        )
    return next(iter(models.values()))


def json_safe(value: Any, *, finite: bool = False) -> Any:
    """Plain JSON types for summaries (numpy scalars, paths, estimators become str). With
    `finite`, NaN and infinities become None: strict JSON has no such numbers."""
    if isinstance(value, dict):
        return {str(k): json_safe(v, finite=finite) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v, finite=finite) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if finite and isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)
