"""`model_evaluation`: score one or several trained models on their held-out test split."""

from __future__ import annotations

from typing import Any, cast

from workbench.errors import TaskInputError
from workbench.tasks.base import TaskContext, TaskResult
from workbench.tasks.data import ProblemKind, TrainedModel, json_safe, trained_models
from workbench.tasks.metrics import averaging, confusion, primary_metric, score_estimator
from workbench.tasks.params import (
    CLASSIFICATION_METRICS,
    LOWER_IS_BETTER,
    REGRESSION_METRICS,
    EvaluationParams,
)


def evaluate(trained: TrainedModel) -> tuple[dict[str, float], dict[str, Any]]:
    """Test-split metrics of one model, and details for the summary."""
    features, model = trained.features, trained.model
    scores, predicted = score_estimator(
        model.estimator, features.X_test, features.y_test, model.problem, trained.n_classes
    )
    details: dict[str, Any] = {
        "model": trained.task_id,
        "algorithm": trained.algorithm,
        "test_rows": len(features.y_test),
        "metrics": scores,
    }
    if model.problem is ProblemKind.CLASSIFICATION:
        details["labels"] = json_safe(model.class_labels)
        details["confusion_matrix"] = confusion(features.y_test, predicted, trained.n_classes)
    return scores, details


def _rank(results: dict[str, dict[str, float]], metric: str) -> list[str]:
    """Model ids best first; models without the metric last."""
    sign = 1.0 if metric in LOWER_IS_BETTER else -1.0
    return sorted(
        results,
        key=lambda tid: (metric not in results[tid], sign * results[tid].get(metric, 0.0)),
    )


def run(ctx: TaskContext) -> TaskResult:
    """Test-split metrics of one or more trained models; passes on the best one."""
    params = cast(EvaluationParams, ctx.params)
    models = trained_models(ctx)
    problems = {trained.model.problem for trained in models.values()}
    if len(problems) > 1:
        raise TaskInputError(
            f"task {ctx.task_id!r} got both classification and regression models "
            f"({', '.join(models)}); evaluate them in separate model_evaluation tasks"
        )
    problem = problems.pop()
    rank_by = params.rank_by or primary_metric(problem)
    produced = (
        CLASSIFICATION_METRICS if problem is ProblemKind.CLASSIFICATION else REGRESSION_METRICS
    )
    if rank_by not in produced:
        raise TaskInputError(
            f"rank_by {rank_by!r} is not a {problem.value} metric; use one of {', '.join(produced)}"
        )

    scores: dict[str, dict[str, float]] = {}
    details: dict[str, dict[str, Any]] = {}
    for index, (task_id, trained) in enumerate(models.items()):
        ctx.report_progress(index / len(models), f"evaluating {task_id}")
        scores[task_id], details[task_id] = evaluate(trained)
    ranking = _rank(scores, rank_by)
    best = ranking[0]

    summary: dict[str, Any]
    if len(models) == 1:
        metrics = dict(scores[best])
        summary = dict(details[best])
    else:
        metrics = {
            f"{tid}.{name}": value for tid, found in scores.items() for name, value in found.items()
        }
        leaderboard = [{"rank": rank, **details[tid]} for rank, tid in enumerate(ranking, 1)]
        summary = {"best_model": best, "rank_by": rank_by, "leaderboard": leaderboard}
    if problem is ProblemKind.CLASSIFICATION:
        summary["averaging"] = averaging(models[best].n_classes)
    ctx.report_progress(1.0, f"best model: {best}" if len(models) > 1 else "evaluated")
    # Passing on the best model lets batch_inference follow an evaluation directly.
    return TaskResult(output=models[best], metrics=metrics, summary=summary)
