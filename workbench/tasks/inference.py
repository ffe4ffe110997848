"""`batch_inference`: score a dataset in partitions with dask.dataframe and write Parquet."""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import pandas as pd

from workbench.errors import DataError, TaskInputError
from workbench.tasks.base import TaskContext, TaskResult
from workbench.tasks.data import (
    FittedModel,
    PreparedData,
    ProblemKind,
    aligned_proba,
    json_safe,
    single_trained_model,
)
from workbench.tasks.datasets import read_table
from workbench.tasks.params import InferenceParams, split_model_ref


@dataclass(frozen=True)
class ModelToUse:
    model: FittedModel
    described: str  # for the summary: the training task, or "fraud v3 (fraud@production)"
    data: PreparedData | None  # what it was trained on, when it comes from this run


def _model_to_use(ctx: TaskContext, params: InferenceParams) -> ModelToUse:
    if params.model is None:
        trained = single_trained_model(ctx)
        return ModelToUse(trained.model, trained.task_id, trained.features.data)
    name, ref = split_model_ref(params.model)
    with ctx.model_registry() as registry:
        version, model = registry.load(name, ref)  # verified against its checksum first
    if not isinstance(model, FittedModel):
        raise DataError(
            f"{params.model} is a {type(model).__name__}, not a model Workbench trained (with its "
            "feature transformer); batch_inference scores only those"
        )
    return ModelToUse(model, f"{name} v{version.version} ({params.model})", None)


def _rows_to_score(
    ctx: TaskContext, params: InferenceParams, using: ModelToUse
) -> tuple[pd.DataFrame, str]:
    if params.dataset_path is not None:
        path = ctx.resolve_path(params.dataset_path)
        return read_table(path), str(path)
    upstream = ctx.inputs_of(PreparedData)
    data = ctx.input(PreparedData) if upstream else using.data
    if data is None:
        raise TaskInputError(
            f"task {ctx.task_id!r} scores registered model {params.model} and has no rows to "
            "score: give dataset_path (a CSV or Parquet file) or depend on a data_preprocessing "
            "task (its test split is scored)"
        )
    # The test split holds label codes in the target column; the model predicts it anyway.
    return data.test.drop(columns=[data.target]), f"test split of {data.source or 'the data'}"


def id_columns(df: pd.DataFrame, model: FittedModel, known: set[str]) -> list[str]:
    """Columns that identify rows: those preprocessing set aside, or named id / *_id."""
    inputs = set(model.input_columns)
    return [
        str(c)
        for c in df.columns
        if c not in inputs
        and (c in known or str(c).lower() == "id" or str(c).lower().endswith("_id"))
    ]


class PartitionScorer:
    """Scores one partition: prediction codes/values (+ binary probability), with progress.

    A class with its own dask token: dask hashes map_partitions' function to name the graph,
    and this one holds the task context, which cannot be hashed by pickling."""

    def __init__(self, ctx: TaskContext, model: FittedModel, n_partitions: int) -> None:
        self.ctx, self.model, self.n_partitions = ctx, model, n_partitions
        self.binary = model.problem is ProblemKind.CLASSIFICATION and len(model.class_labels) == 2
        self._lock = threading.Lock()
        self._done = 0
        self._token = uuid.uuid4().hex

    def __dask_tokenize__(self) -> str:
        return self._token

    def __call__(self, part: pd.DataFrame) -> pd.DataFrame:
        self.ctx.check_cancelled()
        out = pd.DataFrame(index=part.index)
        prediction = np.array([], dtype=np.float64)
        probability = np.array([], dtype=np.float64)
        if len(part):
            X = self.model.transform(part)
            prediction = np.asarray(self.model.estimator.predict(X), dtype=np.float64)
            if self.binary:
                probability = aligned_proba(self.model.estimator, X, 2)[:, 1]
        out["prediction"] = prediction
        if self.binary:
            out["probability"] = probability
        with self._lock:
            self._done += 1
            done = self._done
        message = f"scored partition {done}/{self.n_partitions}"
        self.ctx.report_progress(0.1 + 0.8 * done / self.n_partitions, message)
        return out


def score_in_partitions(
    ctx: TaskContext, model: FittedModel, df: pd.DataFrame, partitions: int
) -> tuple[pd.DataFrame, int]:
    """Predictions (float codes or values) and binary probability, row-aligned with `df`;
    and the number of partitions used."""
    import dask.dataframe as dd

    n = max(1, min(partitions, len(df)))
    binary = model.problem is ProblemKind.CLASSIFICATION and len(model.class_labels) == 2
    meta = pd.DataFrame({"prediction": pd.Series(dtype=np.float64)})
    if binary:
        meta["probability"] = pd.Series(dtype=np.float64)
    ddf = dd.from_pandas(df, npartitions=n, sort=False)
    scored = ddf.map_partitions(PartitionScorer(ctx, model, ddf.npartitions), meta=meta)
    # A local thread pool: this runs inside a task on a Dask worker, where blocking on the
    # cluster's client from within a task could deadlock.
    result: pd.DataFrame = scored.compute(
        scheduler="threads", num_workers=max(1, int(ctx.resources.cpu))
    )
    return result, int(ddf.npartitions)


def run(ctx: TaskContext) -> TaskResult:
    """Score a CSV/Parquet file (or the test split) in partitions; write Parquet."""
    params = cast(InferenceParams, ctx.params)
    using = _model_to_use(ctx, params)
    model = using.model
    ctx.report_progress(0.0, "loading rows to score")
    df, source = _rows_to_score(ctx, params, using)
    if df.empty:
        raise DataError(f"{source} has no rows to score")
    missing = [c for c in model.input_columns if c not in df.columns]
    if missing:
        raise DataError(
            f"{source} lacks column(s) {', '.join(missing)} that the model needs; "
            f"it needs: {', '.join(model.input_columns)}"
        )
    df = df.reset_index(drop=True)
    scored, n_partitions = score_in_partitions(ctx, model, df, params.partitions)

    known_ids = set(using.data.id_columns) if using.data is not None else set()
    ids = id_columns(df, model, known_ids)
    out = df[ids].copy() if ids else df.copy()
    metrics: dict[str, float] = {"rows_scored": float(len(out))}
    if model.problem is ProblemKind.CLASSIFICATION:
        codes = scored["prediction"].to_numpy().astype(np.int64)
        out["prediction"] = model.decode(codes)
        if "probability" in scored:
            out["probability"] = scored["probability"].to_numpy()
            metrics["predicted_positive_rate"] = float((codes == 1).mean())
    else:
        out["prediction"] = scored["prediction"].to_numpy()

    ctx.report_progress(0.95, "writing predictions")
    if params.output_path is not None:
        path = ctx.resolve_path(params.output_path)
    else:
        path = ctx.work_dir / "predictions.parquet"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        out.to_parquet(path, index=False)
    except OSError as exc:
        raise DataError(f"cannot write predictions to {path}: {exc}; check output_path") from exc
    summary: dict[str, Any] = {
        "source": source,
        "output_path": str(path),
        "columns": [str(c) for c in out.columns],
        "id_columns": ids,
        "partitions": n_partitions,
        "model": using.described,
    }
    if model.problem is ProblemKind.CLASSIFICATION and len(model.class_labels) == 2:
        summary["positive_label"] = json_safe(model.class_labels[1])
    ctx.report_progress(1.0, f"scored {len(out)} rows")
    return TaskResult(
        output=path, metrics=metrics, summary=summary, artifacts={"predictions": str(path)}
    )
