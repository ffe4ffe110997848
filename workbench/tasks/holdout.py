"""Held-out data to validate models on, and the scorer the registry's `validate` takes.

Both a challenger and its champion are scored on the same raw rows, each through its own
feature transformer, against the original labels: two models trained on different data (or
with different class codes) are compared fairly."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from workbench.errors import DataError
from workbench.tasks.data import FittedModel, ProblemKind, TrainedModel
from workbench.tasks.datasets import read_table
from workbench.tasks.metrics import classification_metrics, regression_metrics


@dataclass(frozen=True)
class HeldOut:
    rows: pd.DataFrame  # raw feature rows, as in the input data
    truth: np.ndarray  # original labels (classification) or values (regression)
    source: str

    @classmethod
    def test_split(cls, trained: TrainedModel) -> HeldOut:
        """The upstream test split: never seen in training."""
        data = trained.features.data
        codes = data.test[data.target].to_numpy()
        labels = np.asarray(data.class_labels, dtype=object)
        classes = data.problem is ProblemKind.CLASSIFICATION
        truth = labels[codes.astype(np.int64)] if classes else codes
        rows = data.test.drop(columns=[data.target]).reset_index(drop=True)
        return cls(rows, truth, f"test split of {data.source or 'the data'} ({len(rows)} rows)")

    @classmethod
    def from_file(cls, path: Path, target: str) -> HeldOut:
        frame = read_table(path)
        if target not in frame.columns:
            raise DataError(
                f"held-out file {path} has no target column {target!r}; its columns: "
                f"{', '.join(map(str, frame.columns))}"
            )
        frame = frame.dropna(subset=[target]).reset_index(drop=True)
        if frame.empty:
            raise DataError(f"held-out file {path} has no rows with a {target!r} value")
        truth = frame[target].to_numpy()
        return cls(frame.drop(columns=[target]), truth, f"{path} ({len(frame)} rows)")

    def score(self, model: Any) -> dict[str, float]:
        """Every metric of `model` (a FittedModel) on these rows."""
        if not isinstance(model, FittedModel):
            raise DataError(
                f"cannot score a {type(model).__name__} on held-out rows: only models that "
                "Workbench trained (with their feature transformer) can be validated this way"
            )
        if model.problem is ProblemKind.REGRESSION:
            return regression_metrics(self.truth.astype(np.float64), model.predict(self.rows))
        codes = _codes(self.truth, model.class_labels)
        predicted = model.predict(self.rows, decode=False)
        proba = (
            model.predict_proba(self.rows) if hasattr(model.estimator, "predict_proba") else None
        )
        return classification_metrics(codes, predicted, proba, len(model.class_labels))


def _codes(labels: np.ndarray, class_labels: list[Any]) -> np.ndarray:
    """Labels as the model's class codes. A label the model never saw cannot be scored."""
    index = {_plain(label): code for code, label in enumerate(class_labels)}
    unknown = sorted({str(v) for v in labels if _plain(v) not in index})
    if unknown:
        raise DataError(
            f"held-out labels {', '.join(unknown[:5])} are not among the model's classes "
            f"({', '.join(map(str, class_labels))})"
        )
    return np.array([index[_plain(v)] for v in labels], dtype=np.int64)


def _plain(value: Any) -> Any:
    """1, 1.0 and np.int64(1) (a label read back from a CSV or Parquet file) are one class."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value
