"""Model metrics shared by training, validation and evaluation."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from workbench.tasks.data import aligned_proba
from workbench.tasks.params import (
    ProblemKind,
)


def averaging(n_classes: int) -> str:
    """How precision/recall/F1 (and ROC AUC) are averaged over classes."""
    if n_classes <= 2:
        return "binary: precision/recall/F1 of the positive class (code 1), ROC AUC on its score"
    return "macro: unweighted mean over classes; ROC AUC one-vs-rest, macro-averaged"


def primary_metric(problem: ProblemKind) -> str:
    """The metric that ranks models: F1 for classification, R² for regression."""
    return "f1_score" if problem is ProblemKind.CLASSIFICATION else "r2"


def classification_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, proba: np.ndarray | None, n_classes: int
) -> dict[str, float]:
    """Metrics on class codes 0..n-1. ROC AUC is left out when y_true has a single class
    (it is undefined there)."""
    from sklearn import metrics as m

    labels = list(range(n_classes))
    average = "binary" if n_classes == 2 else "macro"
    common: dict[str, Any] = {"labels": labels, "average": average, "zero_division": 0}
    if n_classes == 2:
        common["pos_label"] = 1
    result = {
        "accuracy": m.accuracy_score(y_true, y_pred),
        "precision": m.precision_score(y_true, y_pred, **common),
        "recall": m.recall_score(y_true, y_pred, **common),
        "f1_score": m.f1_score(y_true, y_pred, **common),
    }
    if proba is not None:
        result["log_loss"] = m.log_loss(y_true, proba, labels=labels)
        present = np.unique(y_true)
        if n_classes == 2 and len(present) == 2:
            result["roc_auc"] = m.roc_auc_score(y_true, proba[:, 1])
        elif n_classes > 2 and len(present) == n_classes:
            result["roc_auc"] = m.roc_auc_score(
                y_true, proba, multi_class="ovr", average="macro", labels=labels
            )
    return {name: float(value) for name, value in result.items()}


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    from sklearn import metrics as m

    return {
        "r2": float(m.r2_score(y_true, y_pred)),
        "rmse": math.sqrt(float(m.mean_squared_error(y_true, y_pred))),
        "mae": float(m.mean_absolute_error(y_true, y_pred)),
    }


def score_estimator(
    estimator: Any, X: np.ndarray, y: np.ndarray, problem: ProblemKind, n_classes: int
) -> tuple[dict[str, float], np.ndarray]:
    """All metrics of a fitted estimator on (X, y), and its predictions."""
    predicted = np.asarray(estimator.predict(X))
    if problem is ProblemKind.REGRESSION:
        return regression_metrics(y, predicted), predicted
    codes = predicted.astype(np.int64)
    proba = aligned_proba(estimator, X, n_classes) if hasattr(estimator, "predict_proba") else None
    return classification_metrics(y.astype(np.int64), codes, proba, n_classes), codes


def confusion(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> list[list[int]]:
    """Rows are true classes, columns predicted classes, both in class-code order."""
    from sklearn.metrics import confusion_matrix

    matrix = confusion_matrix(y_true, y_pred, labels=list(range(n_classes)))
    return [[int(v) for v in row] for row in matrix]
