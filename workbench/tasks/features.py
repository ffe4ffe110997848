"""`feature_extraction`: scale numerics, one-hot categoricals, optionally reduce (PCA) or
select (k best) features. Fitted on the train split only."""

from __future__ import annotations

import warnings
from typing import Any, cast

import numpy as np

from workbench.errors import DataError
from workbench.tasks.base import TaskContext, TaskResult
from workbench.tasks.data import FeatureSet, PreparedData, ProblemKind
from workbench.tasks.params import FeatureParams


def build_transformer(
    data: PreparedData,
    *,
    scale_numeric: bool = True,
    pca: int | None = None,
    select_k_best: int | None = None,
    random_state: int | None = None,
) -> Any:
    """An unfitted sklearn Pipeline from raw feature rows to a dense float matrix.

    The imputers repeat what preprocessing did, learnt from the (already clean) train split,
    so that the fitted model can also score raw rows that still have gaps.
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    parts: list[tuple[str, Any, list[str]]] = []
    if data.numeric_columns:
        strategy = data.numeric_impute if data.numeric_impute != "drop" else "median"
        numeric: list[tuple[str, Any]] = [("impute", SimpleImputer(strategy=strategy))]
        if scale_numeric:
            numeric.append(("scale", StandardScaler()))
        parts.append(("num", Pipeline(numeric), list(data.numeric_columns)))
    if data.categorical_columns:
        encoder = OneHotEncoder(handle_unknown="ignore", sparse_output=False)
        categorical = Pipeline(
            [("impute", SimpleImputer(strategy="most_frequent")), ("onehot", encoder)]
        )
        parts.append(("cat", categorical, list(data.categorical_columns)))
    columns = ColumnTransformer(parts, sparse_threshold=0.0, verbose_feature_names_out=False)
    steps: list[tuple[str, Any]] = [("columns", columns)]
    if pca is not None:
        from sklearn.decomposition import PCA

        steps.append(("pca", PCA(n_components=pca, random_state=random_state)))
    elif select_k_best is not None:
        from sklearn.feature_selection import SelectKBest, f_classif, f_regression

        score = f_classif if data.problem is ProblemKind.CLASSIFICATION else f_regression
        steps.append(("select", SelectKBest(score, k=select_k_best)))
    return Pipeline(steps)


def fit_features(data: PreparedData, transformer: Any) -> FeatureSet:
    """Fit `transformer` on the train split and transform both splits."""
    y_train, y_test = data.y_train, data.y_test
    with warnings.catch_warnings():
        # Constant columns make the univariate scores divide by zero; they just rank last.
        warnings.filterwarnings("ignore", category=RuntimeWarning)
        warnings.filterwarnings("ignore", message=".*constant.*", category=UserWarning)
        X_train = np.asarray(transformer.fit_transform(data.X_train, y_train), dtype=np.float64)
    X_test = np.asarray(transformer.transform(data.X_test), dtype=np.float64)
    try:
        names = [str(n) for n in transformer.get_feature_names_out()]
    except (AttributeError, ValueError):  # e.g. clashing one-hot names: fall back to positions
        names = [f"x{i}" for i in range(X_train.shape[1])]
    return FeatureSet(
        data=data,
        transformer=transformer,
        X_train=X_train,
        X_test=X_test,
        y_train=y_train,
        y_test=y_test,
        feature_names=names,
    )


def _encoded_width(data: PreparedData) -> int:
    width = len(data.numeric_columns)
    for column in data.categorical_columns:
        width += int(data.train[column].nunique(dropna=True))
    return width


def run(ctx: TaskContext) -> TaskResult:
    """Scale numerics, one-hot categoricals, optionally PCA or select k best."""
    params = cast(FeatureParams, ctx.params)
    data = ctx.input(PreparedData)
    width = _encoded_width(data)
    wanted = params.pca or params.select_k_best
    limit = min(width, len(data.train)) if params.pca else width
    if wanted is not None and wanted > limit:
        option = "pca" if params.pca else "select_k_best"
        raise DataError(
            f"{option}={wanted} but the data gives only {limit} usable feature(s) "
            f"({width} after one-hot encoding, {len(data.train)} train rows); use {option} "
            f"<= {limit}"
        )
    ctx.report_progress(0.1, "fitting the feature transformer on the train split")
    seed = ctx.global_parameters.get("random_state")
    transformer = build_transformer(
        data,
        scale_numeric=params.scale_numeric,
        pca=params.pca,
        select_k_best=params.select_k_best,
        random_state=None if seed is None else int(seed),
    )
    features = fit_features(data, transformer)
    ctx.report_progress(1.0, f"{len(features.feature_names)} features")
    metrics = {
        "n_features_in": float(len(data.feature_columns)),
        "n_features_out": float(len(features.feature_names)),
    }
    summary: dict[str, Any] = {
        "scaled": params.scale_numeric,
        "one_hot_columns": list(data.categorical_columns),
        "feature_names": features.feature_names[:50],
    }
    if params.pca is not None:
        pca = transformer.named_steps["pca"]
        summary["pca_explained_variance"] = float(np.sum(pca.explained_variance_ratio_))
        metrics["pca_explained_variance"] = summary["pca_explained_variance"]
    return TaskResult(output=features, metrics=metrics, summary=summary)
