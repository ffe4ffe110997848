"""The worker-side wrapper run without Dask: attempts, backoff, timeouts and reports."""

from __future__ import annotations

import time
from typing import Any

import pytest

from workbench.errors import DataError, TaskTimeoutError
from workbench.execution.invocation import TaskInvocation
from workbench.execution.worker import run_task
from workbench.spec.models import Resources, RetryPolicy
from workbench.tasks.base import NoParameters, TaskContext, TaskResult


class Recorder:
    def __init__(self) -> None:
        self.reports: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, kind: str, payload: dict[str, Any]) -> None:
        self.reports.append((kind, payload))

    def kinds(self) -> list[str]:
        return [kind for kind, _ in self.reports]


def invocation(fn, *, retries: int = 0, timeout_s: float | None = None, deps=()) -> TaskInvocation:
    return TaskInvocation(
        execution_id="x",
        task_id="t",
        task_type="probe",
        fn=fn,
        params=NoParameters(),
        global_parameters={"seed": 1},
        resources=Resources(),
        retry_policy=RetryPolicy(
            max_retries=retries, backoff_base_s=0.05, backoff_max_s=0.2, jitter=False
        ),
        timeout_s=timeout_s,
        base_dir="/tmp",
        dependencies=tuple(deps),
    )


def test_inputs_are_upstream_outputs_and_a_plain_return_becomes_the_output():
    def body(ctx: TaskContext) -> float:
        assert ctx.global_parameters["seed"] == 1
        return ctx.inputs["a"] + ctx.inputs["b"]

    sink = Recorder()
    result = run_task(
        invocation(body, deps=("a", "b")), TaskResult(output=2), TaskResult(output=3), sink=sink
    )
    assert result.output == 5
    assert sink.kinds() == ["succeeded"]  # a short attempt's start travels with its result
    assert sink.reports[0][1]["started"]["attempt"] == 1


def test_retries_with_exponential_backoff_then_success():
    calls: list[float] = []

    def flaky(ctx: TaskContext) -> TaskResult:
        calls.append(time.perf_counter())
        if ctx.attempt < 3:
            raise OSError("transient")
        return TaskResult(output="ok", metrics={"attempt": float(ctx.attempt)})

    sink = Recorder()
    result = run_task(invocation(flaky, retries=3), sink=sink)
    assert result.metrics == {"attempt": 3.0}
    assert sink.kinds() == ["started", "retrying", "started", "retrying", "succeeded"]
    delays = [payload["delay_s"] for kind, payload in sink.reports if kind == "retrying"]
    assert delays == [0.05, 0.1]
    assert calls[1] - calls[0] >= 0.05 and calls[2] - calls[1] >= 0.1


def test_bad_input_is_not_retried_and_is_reported_with_its_traceback():
    def broken(ctx: TaskContext) -> None:
        raise DataError("column 'amount' is missing")

    sink = Recorder()
    with pytest.raises(DataError):
        run_task(invocation(broken, retries=5), sink=sink)
    assert sink.kinds() == ["started", "failed"]
    failed = sink.reports[-1][1]
    assert failed["error"] == "DataError: column 'amount' is missing"
    assert "Traceback" in failed["traceback"]


def test_timeout_fails_the_attempt_and_tells_the_body_to_stop():
    stopped: list[bool] = []

    def slow(ctx: TaskContext) -> None:
        try:
            for _ in range(200):
                time.sleep(0.01)
                ctx.report_progress(0.1)
        except Exception:
            stopped.append(True)
            raise

    started = time.perf_counter()
    with pytest.raises(TaskTimeoutError, match=r"timeout_s=0\.2"):
        run_task(invocation(slow, timeout_s=0.2), sink=Recorder())
    assert time.perf_counter() - started < 1.0
    time.sleep(0.1)
    assert stopped == [True]  # the body noticed at its next progress report


def test_a_timed_out_attempt_is_retried():
    def sometimes_slow(ctx: TaskContext) -> str:
        if ctx.attempt == 1:
            time.sleep(0.5)
        return "fast enough"

    sink = Recorder()
    result = run_task(invocation(sometimes_slow, retries=1, timeout_s=0.2), sink=sink)
    assert result.output == "fast enough"
    assert sink.kinds() == ["started", "retrying", "succeeded"]


def test_progress_is_throttled_but_the_final_report_always_goes_out():
    def chatty(ctx: TaskContext) -> None:
        for i in range(1000):
            ctx.report_progress(i / 1000)
        ctx.report_progress(1.0, "done")

    sink = Recorder()
    run_task(invocation(chatty), sink=sink)
    progress = [p for kind, p in sink.reports if kind == "progress"]
    assert 1 <= len(progress) < 20
    assert progress[-1] == {"fraction": 1.0, "message": "done"}


def test_a_long_attempt_announces_its_start_while_running():
    seen: list[list[str]] = []
    sink = Recorder()

    def long(ctx: TaskContext) -> None:
        time.sleep(0.4)
        seen.append(sink.kinds())

    run_task(invocation(long), sink=sink)
    assert seen == [["started"]]  # announced during the run, not with the result
    assert sink.kinds() == ["started", "succeeded"]
    assert "started" not in sink.reports[-1][1]


def test_a_progress_report_is_preceded_by_the_start():
    def quick(ctx: TaskContext) -> None:
        ctx.report_progress(1.0, "all at once")

    sink = Recorder()
    run_task(invocation(quick), sink=sink)
    assert sink.kinds() == ["started", "progress", "succeeded"]
