"""The estimators behind `model_training`: construction, parameter checks and fitting with
progress. scikit-learn and XGBoost are imported lazily so importing this module is cheap."""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from workbench.errors import DataError
from workbench.tasks.params import RESERVED, ProblemKind

# algorithm -> (classifier, regressor) as "module:Class"
ESTIMATORS: dict[str, tuple[str, str]] = {
    "xgboost": ("xgboost:XGBClassifier", "xgboost:XGBRegressor"),
    "random_forest": (
        "sklearn.ensemble:RandomForestClassifier",
        "sklearn.ensemble:RandomForestRegressor",
    ),
    # Logistic regression has no regression form; its closest counterpart is an
    # L2-regularised linear regression, Ridge.
    "logistic_regression": (
        "sklearn.linear_model:LogisticRegression",
        "sklearn.linear_model:Ridge",
    ),
    "gradient_boosting": (
        "sklearn.ensemble:GradientBoostingClassifier",
        "sklearn.ensemble:GradientBoostingRegressor",
    ),
}
# Workbench defaults where the library's own are a poor fit; user parameters override them.
DEFAULTS: dict[str, dict[str, Any]] = {"LogisticRegression": {"max_iter": 1000}}
# Estimators that use threads; Workbench sets n_jobs from the task's resources.cpu for them
# (LogisticRegression's n_jobs is deprecated and has no effect).
THREADED = frozenset(
    {"XGBClassifier", "XGBRegressor", "RandomForestClassifier", "RandomForestRegressor"}
)
# Parameters Workbench sets itself (progress reporting); users cannot pass them.

Progress = Callable[[float, str], None]
MetricLog = Callable[[str, float, int], None]
# Called during a fit with the step reached and a function that gives the model's output so
# far on any rows: class probabilities (n x k) for a classifier, predictions for a regressor.
Checkpoint = Callable[[int, Callable[[np.ndarray], np.ndarray]], None]


def estimator_class(algorithm: str, problem: ProblemKind) -> type:
    classifier, regressor = ESTIMATORS[algorithm]
    module, name = (classifier if problem is ProblemKind.CLASSIFICATION else regressor).split(":")
    cls: type = getattr(importlib.import_module(module), name)
    return cls


def valid_parameter_names(cls: type) -> list[str]:
    return sorted(set(cls().get_params(deep=False)) - RESERVED)


def check_estimator_params(
    algorithm: str,
    problem: ProblemKind | None,
    params: Mapping[str, Any],
    hint: str = "Fix the parameter in the model_training task.",
) -> None:
    """Raise ValueError unless every parameter is valid for the estimator(s) the algorithm may
    use (both forms when the problem kind is not known yet). For scikit-learn estimators the
    estimator's own validation runs too, so a wrongly typed value is caught before any run."""
    if not params:
        return
    problems = [problem] if problem is not None else list(ProblemKind)
    classes = [estimator_class(algorithm, kind) for kind in problems]
    valid = {cls: set(valid_parameter_names(cls)) for cls in classes}
    unknown = sorted(set(params) - set().union(*valid.values()))
    if unknown:
        names = " / ".join(cls.__name__ for cls in classes)
        listed = ", ".join(sorted(set().union(*valid.values())))
        raise ValueError(
            f"unknown parameter(s) {', '.join(unknown)} for algorithm {algorithm!r} ({names}); "
            f"valid parameters: {listed}"
        )
    for cls in classes:
        if not set(params) <= valid[cls] or not hasattr(cls, "_parameter_constraints"):
            continue
        estimator = cls().set_params(**params)
        try:
            estimator._validate_params()
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{exc} {hint}") from None


def make_estimator(
    algorithm: str,
    problem: ProblemKind,
    params: Mapping[str, Any],
    *,
    random_state: int,
    n_jobs: int,
) -> Any:
    """The estimator for an algorithm and problem kind, configured with `params`."""
    cls = estimator_class(algorithm, problem)
    valid = set(valid_parameter_names(cls))
    not_here = sorted(set(params) - valid)
    if not_here:
        raise DataError(
            f"parameter(s) {', '.join(not_here)} do not apply to {cls.__name__}, which "
            f"{algorithm!r} uses for {problem.value}; valid parameters: {', '.join(sorted(valid))}"
        )
    settings: dict[str, Any] = dict(DEFAULTS.get(cls.__name__, {}))
    if "random_state" in valid:
        settings["random_state"] = random_state
    if cls.__name__ in THREADED:
        settings["n_jobs"] = n_jobs
    settings.update(params)
    return cls(**settings)


def fit_estimator(
    estimator: Any,
    algorithm: str,
    X: np.ndarray,
    y: np.ndarray,
    progress: Progress,
    log_metric: MetricLog | None = None,
    checkpoint: Checkpoint | None = None,
) -> Any:
    """Fit, reporting progress (0..1) per boosting round, stage or batch of trees. `progress`
    may raise to stop the fit (cancellation). `checkpoint` sees the model every
    CHECKPOINT_ROUNDS rounds while XGBoost boosts and after each tenth of a random forest
    grows (other algorithms have no intermediate model worth scoring)."""
    if algorithm == "xgboost":
        _fit_xgboost(estimator, X, y, progress, log_metric, checkpoint)
    elif algorithm == "gradient_boosting":
        _fit_gradient_boosting(estimator, X, y, progress, log_metric)
    elif algorithm == "random_forest":
        _fit_random_forest(estimator, X, y, progress, checkpoint)
    else:
        progress(0.0, f"fitting {type(estimator).__name__}")
        estimator.fit(X, y)
        progress(1.0, f"fitted {type(estimator).__name__}")
    return estimator


CHECKPOINT_ROUNDS = 10
# XGBoost scores its eval set every round; the training curve (train_logloss, ...) is scored
# on at most this many training rows. On all of a million it costs a tenth of the fit.
CURVE_ROWS = 50_000


def _every(n: int) -> int:
    """Log a training metric about 20 times per fit, whatever its length."""
    return max(1, n // 20)


def curve_rows(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rows the training curve is scored on: all of them when they are few (the training
    matrix itself, whose predictions XGBoost keeps anyway), else CURVE_ROWS spread evenly
    over them (the same rows every round and every run)."""
    if len(y) <= CURVE_ROWS:
        return X, y
    rows = np.linspace(0, len(y) - 1, CURVE_ROWS).astype(np.int64)
    return X[rows], y[rows]


def _fit_xgboost(
    estimator: Any,
    X: np.ndarray,
    y: np.ndarray,
    progress: Progress,
    log: MetricLog | None,
    checkpoint: Checkpoint | None,
) -> None:
    from xgboost.callback import TrainingCallback

    rounds = int(estimator.get_params().get("n_estimators") or 100)
    classifier = hasattr(estimator, "predict_proba")

    class _Progress(TrainingCallback):
        def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
            progress((epoch + 1) / rounds, f"boosting round {epoch + 1}/{rounds}")
            last = epoch + 1 == rounds
            if log is not None and (epoch % _every(rounds) == 0 or last):
                for results in evals_log.values():
                    for name, values in results.items():
                        log(f"train_{name}", float(values[-1]), epoch + 1)
            # Every CHECKPOINT_ROUNDS rounds whatever the fit's length, so trials with other
            # n_estimators report at the same steps and a pruner can compare them.
            if checkpoint is not None and ((epoch + 1) % CHECKPOINT_ROUNDS == 0 or last):

                def output(rows: np.ndarray) -> np.ndarray:
                    raw = np.asarray(model.inplace_predict(rows, iteration_range=(0, epoch + 1)))
                    if classifier and raw.ndim == 1:  # binary: the positive class only
                        return np.column_stack([1.0 - raw, raw])
                    return raw

                checkpoint(epoch + 1, output)
            return False

    estimator.set_params(callbacks=[_Progress()])
    try:
        estimator.fit(X, y, eval_set=[curve_rows(X, y)], verbose=False)
    finally:
        # The callback holds the task context, which must not travel with the model.
        estimator.set_params(callbacks=None)


def _fit_gradient_boosting(
    estimator: Any, X: np.ndarray, y: np.ndarray, progress: Progress, log: MetricLog | None
) -> None:
    stages = int(estimator.n_estimators)

    def monitor(i: int, model: Any, _locals: dict[str, Any]) -> bool:
        progress((i + 1) / stages, f"boosting stage {i + 1}/{stages}")
        if log is not None and (i % _every(stages) == 0 or i + 1 == stages):
            log("train_loss", float(model.train_score_[i]), i + 1)
        return False

    estimator.fit(X, y, monitor=monitor)


def _fit_random_forest(
    estimator: Any, X: np.ndarray, y: np.ndarray, progress: Progress, checkpoint: Checkpoint | None
) -> None:
    # Grow the forest in ~10 batches with warm_start, so progress moves while it grows.
    total = int(estimator.n_estimators)
    warm_start = estimator.warm_start
    sizes = sorted({math.ceil(total * step / 10) for step in range(1, 11)})
    try:
        for batch, size in enumerate(sizes, 1):
            estimator.set_params(n_estimators=size, warm_start=True)
            estimator.fit(X, y)
            progress(size / total, f"{size}/{total} trees")
            if checkpoint is not None:  # step: percent of the forest, comparable across sizes
                scorer = getattr(estimator, "predict_proba", estimator.predict)
                checkpoint(10 * batch, scorer)
    finally:
        estimator.set_params(n_estimators=total, warm_start=warm_start)
