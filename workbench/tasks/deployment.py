"""`model_deployment`: register the upstream model with its lineage, check it against gates on
held-out data (the champion scored on the same rows), promote it and deploy it to a target.

A version that fails its gates stays registered (its report says why) and is not promoted."""

from __future__ import annotations

import hashlib
import math
import platform
from importlib.metadata import PackageNotFoundError, version
from typing import Any, cast

import pandas as pd

from workbench.errors import TaskInputError
from workbench.registry.base import ValidationReport
from workbench.registry.errors import RegistryConflictError, StaleValidationError
from workbench.registry.manager import ModelLifecycleManager
from workbench.tasks.base import TaskContext, TaskResult
from workbench.tasks.data import TrainedModel, single_trained_model
from workbench.tasks.holdout import HeldOut
from workbench.tasks.params import DeploymentParams

# Validate-then-promote rounds when concurrent deployments keep moving the champion.
PROMOTION_ATTEMPTS = 3
LIBRARIES = ("workbench", "scikit-learn", "xgboost", "pandas", "numpy")


def run(ctx: TaskContext) -> TaskResult:
    """Register the upstream model, run its gates, promote it and deploy it."""
    params = cast(DeploymentParams, ctx.params)
    trained = single_trained_model(ctx)
    held_out = _held_out(ctx, params, trained)
    ctx.report_progress(0.1, f"scoring on {held_out.source}")
    metrics = held_out.score(trained.model)
    with ctx.model_registry() as registry:
        ctx.report_progress(0.3, f"registering {params.model_name}")
        registered = registry.register(
            params.model_name,
            trained.model,
            metrics=metrics,
            params=_plain_params({"algorithm": trained.algorithm, **trained.params}),
            lineage=_lineage(ctx, trained),
        )
        name, number = registered.name, registered.version
        report = _validate_and_promote(ctx, registry, params, number, held_out)
        summary: dict[str, Any] = {
            "model": name,
            "version": number,
            "validation": {"passed": report.passed, "gates": report.gates},
            "champion_version": report.champion_version,
            "held_out": held_out.source,
        }
        out = {"registered_version": float(number), "gates_passed": float(report.passed)}
        out.update({f"holdout_{k}": v for k, v in report.metrics.items()})
        if not report.passed:
            if params.fail_on_gates:
                raise RegistryConflictError(
                    f"{name} v{number} failed its gates ({report.failures}); it is registered "
                    f"but not promoted. See `workbench models show {name}@{number}`."
                )
            summary["promoted"] = False
            ctx.report_progress(1.0, f"{name} v{number} failed its gates; not promoted")
            return TaskResult(output=trained, metrics=out, summary=summary)
        ctx.report_progress(0.85, f"deploying {name} v{number} to {params.target}")
        deployment = registry.deploy(name, number, params.target, params.target_options)
    summary.update(
        promoted=True,
        stage=params.stage,
        deployment={
            "target": deployment.target,
            "ref": deployment.ref,
            "address": deployment.address,
        },
    )
    ctx.report_progress(1.0, f"{name} v{number} deployed: {deployment.address}")
    return TaskResult(
        output=trained, metrics=out, summary=summary, artifacts={"model": deployment.ref}
    )


def _validate_and_promote(
    ctx: TaskContext,
    registry: ModelLifecycleManager,
    params: DeploymentParams,
    number: int,
    held_out: HeldOut,
) -> ValidationReport:
    """The version's gates on the held-out rows; when they pass, the version promoted. Another
    deployment of this model may promote its own version between the two steps: the report
    is then stale, and the version is validated again against the new champion."""
    name = params.model_name
    for attempt in range(1, PROMOTION_ATTEMPTS + 1):
        ctx.report_progress(0.5, f"validating {name} v{number} on {held_out.source}")
        report = registry.validate(
            name,
            number,
            params.gates,
            against=params.against,
            scorer=held_out.score,
            dataset=held_out.source,
        )
        if not report.passed:
            return report
        ctx.report_progress(0.7, f"promoting {name} v{number} to {params.stage}")
        try:
            registry.promote(
                name,
                number,
                params.stage,
                why=f"passed its gates on {held_out.source}",
                archive_previous=params.archive_previous,
                require_validation=True,
            )
            return report
        except StaleValidationError:
            if attempt == PROMOTION_ATTEMPTS:
                raise
    raise AssertionError("unreachable: the last attempt returns or raises")


def _plain_params(params: dict[str, Any]) -> dict[str, Any]:
    """Strict JSON: an estimator's NaN default (XGBoost's `missing`) is kept as text."""
    return {
        k: str(v) if isinstance(v, float) and not math.isfinite(v) else v for k, v in params.items()
    }


def _held_out(ctx: TaskContext, params: DeploymentParams, trained: TrainedModel) -> HeldOut:
    if params.holdout_path is not None:
        return HeldOut.from_file(ctx.resolve_path(params.holdout_path), trained.model.target)
    if len(trained.features.y_test) == 0:
        raise TaskInputError(
            f"task {ctx.task_id!r}: the upstream test split is empty, so there is nothing to "
            "validate on; set test_size in data_preprocessing or give holdout_path"
        )
    return HeldOut.test_split(trained)


def _lineage(ctx: TaskContext, trained: TrainedModel) -> dict[str, Any]:
    """Where the model comes from: the run, the task that trained it, the cache keys of its
    upstream results, a fingerprint of the data it was trained and tested on, the versions."""
    data = trained.features.data
    return {
        **ctx.lineage,
        "execution_id": ctx.execution_id,
        "task_id": trained.task_id,
        "registered_by_task": ctx.task_id,
        "data_source": data.source,
        "dataset_fingerprint": _fingerprint(data.train, data.test),
        "train_rows": len(data.train),
        "test_rows": len(data.test),
        "versions": {"python": platform.python_version(), **_versions()},
    }


def _fingerprint(*frames: pd.DataFrame) -> str:
    digest = hashlib.sha256()
    for frame in frames:
        digest.update(",".join(map(str, frame.columns)).encode())
        digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return "sha256:" + digest.hexdigest()


def _versions() -> dict[str, str]:
    found = {}
    for name in LIBRARIES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found
