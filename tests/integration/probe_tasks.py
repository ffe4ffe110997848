"""Small task types used by the integration tests: they sleep, fail on demand and write a ledger
of every body execution to a file, so tests can see what ran where and when."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import cloudpickle
from pydantic import BaseModel, ConfigDict

from workbench.tasks.base import TaskContext, TaskResult
from workbench.tasks.registry import task_type

# Workers are separate processes: ship these functions by value, not by module reference.
cloudpickle.register_pickle_by_value(__import__(__name__))


class ProbeParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ledger: str
    sleep_s: float = 0.0
    fail_times: int = 0  # fail this many attempts, then succeed
    fail_always: bool = False
    steps: int = 1
    value: float = 1.0


def _record(path: Path, entry: dict) -> None:
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(entry) + "\n")


def read_ledger(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line]


@task_type("probe", params=ProbeParams)
def probe(ctx: TaskContext) -> TaskResult:
    params: ProbeParams = ctx.params  # type: ignore[assignment]
    ledger = Path(params.ledger)
    start = time.time()
    _record(
        ledger,
        {
            "task": ctx.task_id,
            "attempt": ctx.attempt,
            "event": "start",
            "at": start,
            "pid": os.getpid(),
        },
    )
    for step in range(params.steps):
        ctx.report_progress(step / params.steps, f"step {step + 1}/{params.steps}")
        time.sleep(params.sleep_s / params.steps)
    if params.fail_always or ctx.attempt <= params.fail_times:
        _record(
            ledger,
            {"task": ctx.task_id, "attempt": ctx.attempt, "event": "fail", "at": time.time()},
        )
        raise RuntimeError(f"probe {ctx.task_id} failing on attempt {ctx.attempt}")
    total = params.value + sum(float(v) for v in ctx.inputs.values())
    _record(
        ledger, {"task": ctx.task_id, "attempt": ctx.attempt, "event": "end", "at": time.time()}
    )
    return TaskResult(output=total, metrics={"total": total})
