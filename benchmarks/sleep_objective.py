"""The objective the HPO benchmark tunes through Workbench: sleep, then report a score."""

import time

from pydantic import BaseModel

from workbench.tasks.base import TaskContext, TaskResult
from workbench.tasks.registry import task_type


class SleepObjectiveParams(BaseModel):
    x: float
    sleep_s: float = 1.0


@task_type("sleep_objective", params=SleepObjectiveParams)
def sleep_objective(ctx: TaskContext) -> TaskResult:
    """Sleeps `sleep_s` (the trial's work), then reports score = -(x - 3)^2 (best at x = 3)
    and body_s, the time the sleep itself took (the benchmark's measure of the trial body)."""
    params = ctx.params
    assert isinstance(params, SleepObjectiveParams)
    started = time.perf_counter()
    time.sleep(params.sleep_s)
    body_s = time.perf_counter() - started
    return TaskResult(metrics={"score": -((params.x - 3) ** 2), "body_s": body_s})
