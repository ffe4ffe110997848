"""`model_validation`: k-fold cross-validation of the upstream model's configuration on its
train split, with optional metric gates."""

from __future__ import annotations

from typing import Any, cast

import numpy as np

from workbench.errors import DataError, TaskInputError, ValidationGateError
from workbench.tasks.base import TaskContext, TaskResult
from workbench.tasks.data import ProblemKind, TrainedModel, single_trained_model
from workbench.tasks.estimators import THREADED, fit_estimator
from workbench.tasks.metrics import averaging, primary_metric, score_estimator
from workbench.tasks.params import ValidationParams
from workbench.tasks.training import resolve_seed


def fold_splits(
    y: np.ndarray,
    problem: ProblemKind,
    n_classes: int,
    folds: int,
    seed: int,
    *,
    shuffle: bool = True,
) -> list[Any]:
    """(fit rows, held-out rows) of each fold of the train targets `y`; stratified for
    classes, with a clear error when a class has too few rows for the folds."""
    from sklearn.model_selection import KFold, StratifiedKFold

    random_state = seed if shuffle else None
    if problem is ProblemKind.CLASSIFICATION:
        smallest = int(np.bincount(y.astype(np.int64), minlength=n_classes).min())
        if smallest < folds:
            fix = f"lower 'folds' to at most {smallest}" if smallest >= 2 else "add rows of it"
            raise DataError(
                f"the rarest class has only {smallest} train row(s), fewer than folds="
                f"{folds}; {fix}"
            )
        splitter: Any = StratifiedKFold(folds, shuffle=shuffle, random_state=random_state)
    else:
        if len(y) < folds:
            raise DataError(f"{len(y)} train rows cannot make {folds} folds; lower 'folds'")
        splitter = KFold(folds, shuffle=shuffle, random_state=random_state)
    return list(splitter.split(np.zeros(len(y)), y))


def transform_fold(
    transformer: Any, X: Any, y: np.ndarray, fit_rows: np.ndarray, valid_rows: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """A fold's fit and held-out rows, transformed by a fresh copy of `transformer` fitted on
    the fit rows only (no leakage from the held-out rows)."""
    from sklearn.base import clone

    fitted = clone(transformer)
    X_fit = np.asarray(fitted.fit_transform(X.iloc[fit_rows], y[fit_rows]), dtype=np.float64)
    return X_fit, np.asarray(fitted.transform(X.iloc[valid_rows]), dtype=np.float64)


def cross_validate(
    ctx: TaskContext, trained: TrainedModel, params: ValidationParams
) -> list[dict[str, float]]:
    """Refit fresh copies of the transformer and estimator per fold; metrics per fold."""
    from sklearn.base import clone

    data = trained.features.data
    X = data.train[trained.model.input_columns]
    y = trained.features.y_train
    splits = fold_splits(
        trained.features.y_train,
        trained.model.problem,
        trained.n_classes,
        params.folds,
        resolve_seed(ctx, params.random_state),
        shuffle=params.shuffle,
    )
    n_jobs = max(1, int(ctx.resources.cpu))
    per_fold: list[dict[str, float]] = []
    for index, (train_rows, valid_rows) in enumerate(splits):

        def progress(fraction: float, message: str, fold: int = index) -> None:
            done = (fold + fraction) / len(splits)
            ctx.report_progress(done, f"fold {fold + 1}/{len(splits)}: {message}")

        progress(0.0, "fitting")
        X_fit, X_valid = transform_fold(trained.model.transformer, X, y, train_rows, valid_rows)
        estimator = clone(trained.model.estimator)
        if type(estimator).__name__ in THREADED:
            estimator.set_params(n_jobs=n_jobs)
        fit_estimator(estimator, trained.algorithm, X_fit, y[train_rows], progress)
        scores, _ = score_estimator(
            estimator, X_valid, y[valid_rows], trained.model.problem, trained.n_classes
        )
        per_fold.append(scores)
        headline = primary_metric(trained.model.problem)
        ctx.log_metric(f"cv_{headline}", scores[headline], step=index + 1)
    return per_fold


def check_gates(metrics: dict[str, float], params: ValidationParams, available: list[str]) -> None:
    """Raise ValidationGateError listing every unmet gate."""
    failures = []
    for gates, is_min in ((params.min_metrics, True), (params.max_metrics, False)):
        for name, threshold in gates.items():
            if name not in metrics:
                raise TaskInputError(
                    f"gate on {name!r}, which this model does not produce; its metrics: "
                    f"{', '.join(available)}. Change the gate in the model_validation task."
                )
            value = metrics[name]
            if (value < threshold) if is_min else (value > threshold):
                relation = "below the minimum" if is_min else "above the maximum"
                key = "min_metrics" if is_min else "max_metrics"
                failures.append(f"{name} = {value:.4g} is {relation} {threshold:g} ({key}.{name})")
    if failures:
        raise ValidationGateError(
            "the model failed validation: "
            + "; ".join(failures)
            + ". Improve the model (features, algorithm, parameters) or relax the gate."
        )


def run(ctx: TaskContext) -> TaskResult:
    """K-fold cross-validation of the upstream model with optional metric gates."""
    params = cast(ValidationParams, ctx.params)
    trained = single_trained_model(ctx)
    per_fold = cross_validate(ctx, trained, params)
    names = [name for name in per_fold[0] if all(name in fold for fold in per_fold)]
    metrics: dict[str, float] = {}
    for name in names:
        values = np.array([fold[name] for fold in per_fold])
        metrics[f"cv_{name}_mean"] = float(values.mean())
        metrics[f"cv_{name}_std"] = float(values.std())
        metrics[name] = float(values.mean())
    gates = {"min_metrics": params.min_metrics, "max_metrics": params.max_metrics}
    summary: dict[str, Any] = {
        "model": trained.task_id,
        "algorithm": trained.algorithm,
        "folds": params.folds,
        "stratified": trained.model.problem is ProblemKind.CLASSIFICATION,
        "per_fold": per_fold,
        "gates": gates,
    }
    if trained.model.problem is ProblemKind.CLASSIFICATION:
        summary["averaging"] = averaging(trained.n_classes)
    check_gates(metrics, params, names)
    ctx.report_progress(1.0, f"{params.folds}-fold cross-validation passed")
    # The model passes on unchanged, so evaluation or inference can follow validation.
    return TaskResult(output=trained, metrics=metrics, summary=summary)
