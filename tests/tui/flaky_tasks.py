"""A task type for the UI tests: it fails while a marker file exists, so a test can make a run
fail, fix the cause, and re-run it."""

from __future__ import annotations

import time
from pathlib import Path

import cloudpickle
from pydantic import BaseModel, ConfigDict

from workbench.tasks.base import TaskContext, TaskResult
from workbench.tasks.registry import task_type

cloudpickle.register_pickle_by_value(__import__(__name__))  # workers are other processes


class FlakyParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    broken_while: str = ""  # fail while this file exists
    sleep_s: float = 0.0
    value: float = 1.0


@task_type("ui_probe", params=FlakyParams)
def ui_probe(ctx: TaskContext) -> TaskResult:
    params: FlakyParams = ctx.params  # type: ignore[assignment]
    steps = 20
    for step in range(steps):
        ctx.report_progress(step / steps, f"step {step + 1}/{steps}")
        time.sleep(params.sleep_s / steps)
    if params.broken_while and Path(params.broken_while).exists():
        raise RuntimeError(f"{ctx.task_id} is broken while {params.broken_while} exists")
    total = params.value + sum(float(v) for v in ctx.inputs.values())
    return TaskResult(output=total, metrics={"total": total})
