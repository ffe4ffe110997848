"""`data_preprocessing`: load a dataset, clean it and split it into train and test."""

from __future__ import annotations

from typing import Any, cast

import numpy as np
import pandas as pd

from workbench.errors import DataError
from workbench.tasks.base import TaskContext, TaskResult
from workbench.tasks.data import PreparedData, ProblemKind
from workbench.tasks.datasets import (
    load_builtin,
    read_table,
)
from workbench.tasks.params import TARGET_NAMES, PreprocessingParams

# An integer-valued target with at most this many distinct values is taken as class labels.
MAX_AUTO_CLASSES = 20


def _load(ctx: TaskContext, params: PreprocessingParams) -> tuple[pd.DataFrame, str]:
    if params.dataset_path is not None:
        path = ctx.resolve_path(params.dataset_path)
        return read_table(path), str(path)
    assert params.dataset is not None  # the params validator guarantees one source
    try:
        frame = load_builtin(params.dataset, **params.dataset_options)
    except TypeError as exc:  # a wrongly typed generator option
        raise DataError(f"dataset {params.dataset!r}: {exc}") from exc
    options = ", ".join(f"{k}={v}" for k, v in params.dataset_options.items())
    return frame, f"built-in {params.dataset}" + (f" ({options})" if options else "")


def find_target(df: pd.DataFrame, explicit: str | None) -> str:
    """The explicit target column, or the first column with a conventional target name."""
    if explicit is not None:
        if explicit not in df.columns:
            raise DataError(
                f"target column {explicit!r} is not in the data; columns: "
                f"{', '.join(map(str, df.columns))}"
            )
        return explicit
    for column in df.columns:
        if str(column).lower() in TARGET_NAMES:
            return str(column)
    raise DataError(
        f"no target column found (looked for {', '.join(TARGET_NAMES)}, any case); set "
        f"'target_column' to one of the columns: {', '.join(map(str, df.columns))}"
    )


def infer_problem(target: pd.Series, requested: str) -> ProblemKind:
    numeric = pd.api.types.is_numeric_dtype(target) and not pd.api.types.is_bool_dtype(target)
    if requested == "regression":
        if not numeric:
            raise DataError(
                f"target {target.name!r} is not numeric ({target.dtype}), so it cannot be "
                "regressed; use problem_type: classification"
            )
        return ProblemKind.REGRESSION
    if requested == "classification" or not numeric:
        return ProblemKind.CLASSIFICATION
    values = target.to_numpy(dtype=np.float64)
    integral = bool(np.all(np.mod(values, 1) == 0))
    if integral and target.nunique() <= MAX_AUTO_CLASSES:
        return ProblemKind.CLASSIFICATION
    return ProblemKind.REGRESSION


def identifier_columns(df: pd.DataFrame, exclude: str) -> list[str]:
    """Columns that name rows rather than describe them; they would only let a model memorise
    rows. Text with one distinct value per row, or named id / *_id and nearly unique; whole
    numbers only when also named so or numbering the rows (a run of consecutive values), as
    a small table's numeric feature may well be unique per row."""
    found = []
    for column in df.columns:
        series = df[column].dropna()
        if column == exclude or pd.api.types.is_float_dtype(series) or len(df) < 2:
            continue
        distinct = series.nunique()
        named = str(column).lower() == "id" or str(column).lower().endswith("_id")
        unique = distinct == len(df)
        if pd.api.types.is_integer_dtype(series) and not pd.api.types.is_bool_dtype(series):
            numbering = unique and int(series.max()) - int(series.min()) + 1 == len(df)
            is_id = numbering or (named and distinct >= 0.9 * len(df))
        else:
            is_id = unique or (named and distinct >= 0.9 * len(df))
        if is_id:
            found.append(str(column))
    return found


def encode_labels(target: pd.Series) -> tuple[np.ndarray, list[Any]]:
    """Codes 0..n-1 in sorted label order, and the labels as plain Python values."""
    labels = sorted(pd.unique(target.dropna()).tolist(), key=lambda v: (str(type(v)), v))
    codes = pd.Categorical(target, categories=labels).codes.astype(np.int64)
    return codes, [v.item() if isinstance(v, np.generic) else v for v in labels]


def _split(
    df: pd.DataFrame, target: str, problem: ProblemKind, test_size: float, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame, bool]:
    from sklearn.model_selection import train_test_split

    if problem is ProblemKind.CLASSIFICATION:
        try:
            train, test = train_test_split(
                df, test_size=test_size, random_state=seed, stratify=df[target]
            )
            return train, test, True
        except ValueError:  # a class too rare (or a test set too small) to stratify
            pass
    train, test = train_test_split(df, test_size=test_size, random_state=seed)
    return train, test, False


def _impute(
    train: pd.DataFrame, test: pd.DataFrame, numeric: list[str], categorical: list[str], how: str
) -> int:
    """Fill gaps in place with statistics of the train split (no test leakage); cells filled."""
    filled = 0
    for column in [*numeric, *categorical]:
        if column in categorical or how == "most_frequent":
            modes = train[column].mode(dropna=True)
            value = modes.iloc[0] if len(modes) else None
        else:
            value = train[column].median() if how in ("median", "drop") else train[column].mean()
        if value is None or pd.isna(value):
            raise DataError(f"column {column!r} has no values in the train split; drop it")
        for frame in (train, test):
            gaps = frame[column].isna()
            filled += int(gaps.sum())
            if gaps.any():
                frame[column] = frame[column].fillna(value)
    return filled


def run(ctx: TaskContext) -> TaskResult:
    """Load a CSV/Parquet file or built-in dataset, dedupe, impute and split it."""
    params = cast(PreprocessingParams, ctx.params)
    seed = params.random_state
    seed = int(ctx.global_parameters.get("random_state", 42)) if seed is None else seed

    ctx.report_progress(0.0, "loading data")
    df, source = _load(ctx, params)
    rows_in = len(df)
    df.columns = [str(c) for c in df.columns]
    missing = [c for c in params.drop_columns if c not in df.columns]
    if missing:
        raise DataError(
            f"drop_columns names {', '.join(missing)}, not in the data; "
            f"columns: {', '.join(df.columns)}"
        )
    df = df.drop(columns=params.drop_columns)
    explicit = params.target_column or ctx.global_parameters.get("target_column")
    target = find_target(df, explicit)

    ctx.report_progress(0.2, "removing duplicates and rows without a target")
    duplicates = int(df.duplicated().sum()) if params.dedupe else 0
    if duplicates:
        df = df.drop_duplicates()
    no_target = int(df[target].isna().sum())
    df = df.dropna(subset=[target])
    if len(df) < 2:
        raise DataError(f"only {len(df)} usable row(s) in {source}; need at least 2")
    problem = infer_problem(df[target], params.problem_type)
    ids = identifier_columns(df, exclude=target)
    features = [c for c in df.columns if c != target and c not in ids]
    if not features:
        raise DataError(f"no feature columns left in {source} besides {target!r} and {ids}")
    df = df[[*features, target]].copy()
    for column in features:
        if pd.api.types.is_bool_dtype(df[column]):
            df[column] = df[column].astype(np.int64)  # flags are numbers to the models
    numeric = [c for c in features if pd.api.types.is_numeric_dtype(df[c])]
    categorical = [c for c in features if c not in numeric]
    for column in categorical:
        df[column] = df[column].astype("str")  # one text dtype, whatever the source used

    class_labels: list[Any] = []
    if problem is ProblemKind.CLASSIFICATION:
        codes, class_labels = encode_labels(df[target])
        if len(class_labels) < 2:
            raise DataError(f"target {target!r} has a single class {class_labels}; need two+")
        df[target] = codes
    else:
        df[target] = df[target].astype(np.float64)

    dropped_missing = 0
    if params.impute == "drop":
        before = len(df)
        df = df.dropna(subset=features)
        dropped_missing = before - len(df)
        if len(df) < 2:
            raise DataError("impute: drop left fewer than 2 rows; use median or mean instead")

    ctx.report_progress(0.5, "splitting train and test")
    train, test, stratified = _split(df, target, problem, params.test_size, seed)
    train, test = train.copy(), test.copy()

    ctx.report_progress(0.7, "imputing missing values")
    imputed = _impute(train, test, numeric, categorical, params.impute)

    prepared = PreparedData(
        train=train,
        test=test,
        target=target,
        problem=problem,
        feature_columns=features,
        numeric_columns=numeric,
        categorical_columns=categorical,
        class_labels=class_labels,
        id_columns=ids,
        numeric_impute="median" if params.impute == "drop" else params.impute,
        source=source,
    )
    metrics: dict[str, float] = {
        "rows_in": float(rows_in),
        "rows_out": float(len(df)),
        "duplicates_removed": float(duplicates),
        "rows_without_target": float(no_target),
        "rows_dropped_missing": float(dropped_missing),
        "missing_imputed": float(imputed),
        "train_rows": float(len(train)),
        "test_rows": float(len(test)),
        "n_features": float(len(features)),
    }
    if len(class_labels) == 2:
        metrics["positive_rate"] = float((df[target] == 1).mean())
    summary = {
        "source": source,
        "target": target,
        "problem_type": problem.value,
        "columns": features,
        "numeric_columns": numeric,
        "categorical_columns": categorical,
        "dropped_identifier_columns": ids,
        "dropped_columns": list(params.drop_columns),
        "class_labels": class_labels,
        "stratified_split": stratified,
        "impute": params.impute,
        "random_state": seed,
    }
    ctx.report_progress(1.0, f"{len(train)} train / {len(test)} test rows")
    return TaskResult(output=prepared, metrics=metrics, summary=summary)
