"""`model_training`: fit XGBoost, a random forest, logistic regression or gradient boosting
(or their regression counterparts) with live progress."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any, cast

import numpy as np

from workbench.errors import DataError, TaskInputError
from workbench.tasks.base import TaskContext, TaskResult
from workbench.tasks.data import (
    FeatureSet,
    FittedModel,
    PreparedData,
    ProblemKind,
    TrainedModel,
    json_safe,
)
from workbench.tasks.devices import Device, DeviceKind, xgboost_device
from workbench.tasks.estimators import (
    RESERVED,
    Checkpoint,
    fit_estimator,
    make_estimator,
)
from workbench.tasks.features import build_transformer, fit_features
from workbench.tasks.metrics import classification_metrics, regression_metrics, score_estimator
from workbench.tasks.params import TrainingParams

# A numeric target forced to classification may have at most this many distinct values.
MAX_FORCED_CLASSES = 50


def resolve_seed(ctx: TaskContext, explicit: int | None) -> int:
    return int(ctx.global_parameters.get("random_state", 42)) if explicit is None else explicit


def training_features(ctx: TaskContext) -> tuple[FeatureSet, str]:
    """The upstream features, or the default ones for prepared data, and where they came from."""
    if ctx.inputs_of(FeatureSet):
        return ctx.input(FeatureSet), "feature_extraction output"
    if ctx.inputs_of(PreparedData):
        data = ctx.input(PreparedData)
        # The default pipeline: one-hot categoricals, scale numerics (imputation is done).
        return fit_features(data, build_transformer(data)), "default (one-hot + scaling)"
    upstream = ", ".join(f"{tid} ({type(v).__name__})" for tid, v in ctx.inputs.items())
    raise TaskInputError(
        f"task {ctx.task_id!r} ({ctx.task_type}) needs a data_preprocessing or "
        f"feature_extraction task in its 'dependencies'; it got: {upstream or 'nothing'}"
    )


def retarget(features: FeatureSet, problem: ProblemKind) -> tuple[FeatureSet, list[Any]]:
    """The targets re-encoded for a problem kind other than the data's, and class labels."""
    data = features.data
    if problem is data.problem:
        return features, list(data.class_labels)
    if problem is ProblemKind.REGRESSION:
        labels = np.asarray(data.class_labels)
        if not np.issubdtype(labels.dtype, np.number):
            raise DataError(
                f"target {data.target!r} has text labels and cannot be regressed; "
                "use problem_type: classification"
            )
        values = labels.astype(np.float64)
        y_train, y_test = values[features.y_train], values[features.y_test]
        return replace(features, y_train=y_train, y_test=y_test), []
    together = np.concatenate([features.y_train, features.y_test])
    distinct = np.unique(together)
    if len(distinct) > MAX_FORCED_CLASSES or not np.all(np.mod(distinct, 1) == 0):
        raise DataError(
            f"target {data.target!r} has {len(distinct)} distinct values, not a few whole "
            "numbers, so it cannot be treated as classes; use problem_type: regression"
        )
    codes = [
        np.searchsorted(distinct, y).astype(np.int64) for y in (features.y_train, features.y_test)
    ]
    labels_out = [int(v) for v in distinct]
    return replace(features, y_train=codes[0], y_test=codes[1]), labels_out


def _intermediate_scorer(
    ctx: TaskContext, features: FeatureSet, problem: ProblemKind, n_classes: int
) -> Checkpoint | None:
    """For a pruning hyperparameter search: the searched metric on the test split as the model
    grows (the split the search's objective is measured on), reported after each checkpoint."""
    metric = ctx.intermediate_metric
    if metric is None or len(features.y_test) == 0:
        return None
    X, y = features.X_test, features.y_test

    def checkpoint(step: int, output: Callable[[np.ndarray], np.ndarray]) -> None:
        out = output(X)
        if problem is ProblemKind.REGRESSION:
            scores = regression_metrics(y, out)
        elif out.ndim == 2 and out.shape[1] == n_classes:
            codes = np.argmax(out, axis=1)
            scores = classification_metrics(y.astype(np.int64), codes, out, n_classes)
        else:  # a class missing from the training split: no comparable value
            return
        if metric in scores:
            ctx.report_intermediate(step, scores[metric])

    return checkpoint


def run(ctx: TaskContext) -> TaskResult:
    """Train xgboost, random_forest, logistic_regression or gradient_boosting."""
    params = cast(TrainingParams, ctx.params)
    seed = resolve_seed(ctx, params.random_state)
    ctx.report_progress(0.0, "preparing features")
    features, feature_source = training_features(ctx)
    data = features.data
    problem = data.problem if params.problem_type == "auto" else ProblemKind(params.problem_type)
    features, labels = retarget(features, problem)
    estimator_params = dict(params.estimator_params)
    device: Device | None = None
    if params.algorithm == "xgboost" and ctx.resources.gpu > 0:
        device = xgboost_device(ctx.resources.gpu)
        estimator_params.setdefault("device", device.kind.value)
    estimator = make_estimator(
        params.algorithm,
        problem,
        estimator_params,
        random_state=seed,
        n_jobs=max(1, int(ctx.resources.cpu)),
    )
    name = type(estimator).__name__
    where = f" on {estimator_params['device']}" if device is not None else ""
    ctx.report_progress(0.1, f"training {name} on {len(features.y_train)} rows{where}")
    started = time.perf_counter()
    fit_estimator(
        estimator,
        params.algorithm,
        features.X_train,
        features.y_train,
        progress=lambda fraction, message: ctx.report_progress(0.1 + 0.8 * fraction, message),
        log_metric=ctx.log_metric,
        checkpoint=_intermediate_scorer(ctx, features, problem, len(labels)),
    )
    fit_time = time.perf_counter() - started
    if device is not None:
        # Scored and served on any machine from here on: predicting with a CUDA-bound model on
        # CPU data makes XGBoost copy and warn at every call.
        estimator.set_params(device=DeviceKind.CPU.value)

    ctx.report_progress(0.95, "scoring the train split")
    scores, _ = score_estimator(estimator, features.X_train, features.y_train, problem, len(labels))
    model = FittedModel(
        transformer=features.transformer,
        estimator=estimator,
        input_signature={c: str(data.train[c].dtype) for c in data.feature_columns},
        problem=problem,
        target=data.target,
        class_labels=labels,
    )
    all_params = {
        k: json_safe(v)
        for k, v in estimator.get_params(deep=False).items()
        if v is not None and k not in RESERVED
    }
    trained = TrainedModel(
        model=model,
        features=features,
        algorithm=params.algorithm,
        params=all_params,
        task_id=ctx.task_id,
    )
    metrics = {f"train_{k}": v for k, v in scores.items()}
    metrics["fit_time_s"] = fit_time
    if device is not None:
        metrics["gpu"] = float(estimator_params["device"] == DeviceKind.CUDA.value)
    summary: dict[str, Any] = {
        "algorithm": params.algorithm,
        "estimator": name,
        "problem_type": problem.value,
        "params": all_params,
        "features": feature_source,
        "n_features": len(features.feature_names),
        "train_rows": len(features.y_train),
    }
    if device is not None:
        summary["device"] = estimator_params["device"]
        summary["device_note"] = (
            device.why
            if estimator_params["device"] == device.kind.value
            else f"device {estimator_params['device']!r} set in the task's parameters"
        )
    if params.algorithm == "logistic_regression" and problem is ProblemKind.REGRESSION:
        summary["note"] = "logistic_regression on a regression target uses Ridge regression"
    ctx.report_progress(1.0, f"trained {name} in {fit_time:.1f}s")
    return TaskResult(output=trained, metrics=metrics, summary=summary)
