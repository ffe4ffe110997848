"""Runs one task on a Dask worker: attempts with backoff, per-attempt timeout, live reports.

Reports travel over a Dask event topic (worker -> scheduler -> subscribed orchestrators), so
workers need no access to Redis or Kafka.
"""

from __future__ import annotations

import json
import logging
import pickle
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
    wait_exponential_jitter,
)

from workbench.errors import TaskCancelledError, TaskTimeoutError, WorkbenchError
from workbench.execution.invocation import TASK_EVENTS_TOPIC, TaskInvocation, unpack
from workbench.execution.start_reports import AttemptReporter
from workbench.execution.stops import registered
from workbench.pickling import dumps
from workbench.tasks.base import CancelSignal, TaskContext, TaskEventSink, TaskResult


class _QuietStops(logging.Filter):
    """A task stopped on purpose (cancelled, timed out, pruned) is no fault of the worker: the
    orchestrator records why, so Dask's own "Compute Failed" error is not logged for it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not (isinstance(record.msg, str) and record.msg.startswith("Compute Failed")):
            return True
        args = record.args if isinstance(record.args, tuple) else ()
        exception_text = str(args[3]) if len(args) > 3 else ""  # key, state, task, exception
        return TaskCancelledError.__name__ not in exception_text


# Installed where tasks run: workers import this module to run their first task.
logging.getLogger("distributed.worker").addFilter(_QuietStops())


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, WorkbenchError):
        return exc.retryable
    return isinstance(exc, Exception)


# How long after a task returns its result report leaves the worker (see TopicSink).
RESULT_REPORT_DELAY_S = 0.005


class TopicSink:
    """Sends task reports to the orchestrator through the worker's batched scheduler stream."""

    def __init__(self, invocation: TaskInvocation) -> None:
        self._header = {"e": invocation.execution_id, "t": invocation.task_id}
        self._delay_result = invocation.has_dependents
        if invocation.run_tag:  # which owner's run, in a cluster (see TaskInvocation.run_tag)
            self._header["r"] = invocation.run_tag
        try:
            from distributed import get_worker

            worker = get_worker()
        except ValueError:  # not on a Dask worker (a direct call in a test or a script)
            self._log = None
            self.address = None
        else:
            self._log = worker.log_event
            self._loop = worker.loop
            self.address = worker.address

    def __call__(self, kind: str, payload: dict[str, Any]) -> None:
        if self._log is None:
            return
        message = {**self._header, "k": kind, "at": time.time(), **payload}
        if kind == "succeeded" and self._delay_result:
            # Sent just after Dask's own "task finished", so the scheduler releases the
            # dependents first: the report is off the critical path of the next layer. A task
            # nothing depends on reports at once: its report is what ends the run.
            self._loop.add_callback(
                self._loop.call_later, RESULT_REPORT_DELAY_S, self._send, message
            )
        else:
            self._send(message)

    def _send(self, message: dict[str, Any]) -> None:
        assert self._log is not None
        try:
            self._log(TASK_EVENTS_TOPIC, message)
        except TypeError:  # not msgpack-serialisable (numpy scalars, paths): send it as JSON does
            self._log(TASK_EVENTS_TOPIC, json.loads(json.dumps(message, default=_jsonable)))


def dump_result(result: TaskResult) -> bytes:
    """Runs on the worker that holds a result: its bytes for the cache (pickled here, once)."""
    return dumps(result)


def dump_results(*results: TaskResult) -> list[bytes]:
    """Several results held by one worker, pickled in one task (one message for a batch)."""
    return [dump_result(result) for result in results]


def load_result(payload: bytes) -> TaskResult:
    """Runs on a worker: a cached result, verified by the orchestrator, back as an object."""
    result: TaskResult = pickle.loads(payload)
    return result


def run_packed_task(payload: bytes, *upstream: TaskResult) -> TaskResult:
    """What Dask runs: the invocation arrives pickled (see invocation.pack)."""
    return run_task(unpack(payload), *upstream)


def run_task(
    invocation: TaskInvocation, *upstream: TaskResult, sink: TaskEventSink | None = None
) -> TaskResult:
    """The function Dask runs for every workflow task. Its return value stays on the worker.

    `sink` receives the reports; by default they go to the Dask event topic.
    """
    if sink is None:
        sink = TopicSink(invocation)
    address = getattr(sink, "address", None)
    inputs = {
        tid: result.output for tid, result in zip(invocation.dependencies, upstream, strict=True)
    }
    policy = invocation.retry_policy
    wait: wait_exponential | wait_exponential_jitter
    if policy.jitter:
        wait = wait_exponential_jitter(
            initial=policy.backoff_base_s, max=policy.backoff_max_s, jitter=policy.backoff_base_s
        )
    else:
        wait = wait_exponential(multiplier=policy.backoff_base_s, max=policy.backoff_max_s)

    def report_retry(state: RetryCallState) -> None:
        outcome = state.outcome
        error = outcome.exception() if outcome is not None else None
        delay = state.next_action.sleep if state.next_action else 0.0
        sink(
            "retrying",
            {"attempt": state.attempt_number, "error": _describe(error), "delay_s": delay},
        )

    retrying = Retrying(
        stop=stop_after_attempt(policy.max_retries + 1),
        wait=wait,
        retry=retry_if_exception(_retryable),
        before_sleep=report_retry,
        reraise=True,
    )
    started = time.perf_counter()
    unannounced_start: dict[str, Any] | None = None

    def attempt_once(number: int) -> TaskResult:
        nonlocal unannounced_start
        reporter = AttemptReporter(sink, number, address)
        try:
            return _run_attempt(invocation, inputs, number, reporter)
        except BaseException:
            reporter.announce()  # a failed attempt's start precedes its retry or failure
            raise
        finally:
            unannounced_start = reporter.close()

    try:
        if policy.max_retries == 0:  # nothing to retry: skip the retry machinery
            result = attempt_once(1)
        else:
            for attempt in retrying:
                with attempt:
                    result = attempt_once(attempt.retry_state.attempt_number)
    except Exception as exc:
        sink("failed", {"error": _describe(exc), "traceback": traceback.format_exc()})
        raise
    result.summary.setdefault("duration_s", round(time.perf_counter() - started, 6))
    report: dict[str, Any] = {
        "metrics": result.metrics,
        "artifacts": result.artifacts,
        "summary": result.summary,
    }
    if unannounced_start is not None:
        report["started"] = unannounced_start
    sink("succeeded", report)
    return result


def _run_attempt(
    invocation: TaskInvocation, inputs: dict[str, Any], attempt: int, sink: TaskEventSink
) -> TaskResult:
    cancel = CancelSignal()
    ctx = TaskContext(
        execution_id=invocation.execution_id,
        task_id=invocation.task_id,
        task_type=invocation.task_type,
        params=invocation.params,
        inputs=inputs,
        global_parameters=invocation.global_parameters,
        resources=invocation.resources,
        base_dir=Path(invocation.base_dir),
        work_dir=(
            Path(invocation.work_root, invocation.execution_id, invocation.task_id)
            if invocation.work_root
            else None
        ),
        attempt=attempt,
        sink=sink,
        cancel_event=cancel,
        intermediate_metric=invocation.intermediate_metric,
        registry=invocation.registry,
        lineage=invocation.lineage,
    )
    with registered(invocation.dask_key, cancel):
        if invocation.timeout_s is None:
            return _as_result(invocation.fn(ctx))
        return _run_with_timeout(invocation, ctx, cancel)


def _run_with_timeout(
    invocation: TaskInvocation, ctx: TaskContext, cancel: CancelSignal
) -> TaskResult:
    """Python cannot kill a thread: on timeout the attempt is failed at once and the task body,
    told through its context, stops at its next progress report or cancellation check."""
    box: dict[str, Any] = {}

    def body() -> None:
        try:
            box["result"] = _as_result(invocation.fn(ctx))
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=body, name=f"workbench-{invocation.task_id}", daemon=True)
    thread.start()
    thread.join(invocation.timeout_s)
    if thread.is_alive():
        cancel.stop(f"it exceeded timeout_s={invocation.timeout_s:g}")
        raise TaskTimeoutError(
            f"task {invocation.task_id!r} exceeded timeout_s={invocation.timeout_s:g} "
            f"(attempt {ctx.attempt}); raise timeout_s in the spec if it needs longer"
        )
    if "error" in box:
        raise box["error"]
    result: TaskResult = box["result"]
    return result


def _as_result(value: Any) -> TaskResult:
    return value if isinstance(value, TaskResult) else TaskResult(output=value)


def _describe(error: BaseException | None) -> str:
    if error is None:
        return ""
    return f"{type(error).__name__}: {error}"


def _jsonable(value: Any) -> Any:
    item = getattr(value, "item", None)  # numpy scalars
    return item() if callable(item) else str(value)
