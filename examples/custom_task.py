"""A custom task type: undersample the majority class of the training split.

Register a type with @task_type and a pydantic model of its parameters; a spec loads this file
through `imports:` (see custom_task.yaml). Packages can ship types through the entry-point group
`workbench.tasks` instead.
"""

from __future__ import annotations

import dataclasses

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from workbench import TaskContext, TaskResult, task_type
from workbench.errors import DataError
from workbench.tasks.data import PreparedData, ProblemKind


class RebalanceParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    majority_per_minority: float = Field(
        5.0, gt=0, description="Majority-class rows kept per minority-class row."
    )
    random_state: int = 0


@task_type("rebalance", params=RebalanceParams)
def rebalance(ctx: TaskContext) -> TaskResult:
    """Undersample the majority class of the training split (the test split is untouched)."""
    params: RebalanceParams = ctx.params  # type: ignore[assignment]
    data = ctx.input(PreparedData)
    if data.problem is not ProblemKind.CLASSIFICATION:
        raise DataError(f"rebalance needs a classification target; {data.target!r} is numeric")
    counts = data.train[data.target].value_counts()
    minority = int(counts.min())
    keep = int(minority * params.majority_per_minority)
    parts = []
    for label, count in counts.items():
        rows = data.train[data.train[data.target] == label]
        if count > keep:
            rows = rows.sample(n=keep, random_state=params.random_state)
        parts.append(rows)
        ctx.report_progress(len(parts) / len(counts), f"class {label}: kept {len(rows)}")
    train = pd.concat(parts).sample(frac=1.0, random_state=params.random_state)
    return TaskResult(
        output=dataclasses.replace(data, train=train),
        metrics={
            "train_rows_before": float(len(data.train)),
            "train_rows_after": float(len(train)),
        },
        summary={"class_counts": {str(k): int(v) for k, v in counts.items()}},
    )
