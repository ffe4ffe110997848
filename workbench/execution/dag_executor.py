"""Drives one workflow execution: the pure state machine on one side, Dask on the other."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from workbench.cache.entry import CacheEntry
from workbench.dag.machine import (
    CacheHit,
    CancelRequested,
    CancelTasks,
    DAGStateMachine,
    Finished,
    Input,
    Instruction,
    NoticeKind,
    Notify,
    Reject,
    Start,
    SubmitTasks,
    TaskFailed,
    TaskMetric,
    TaskProgress,
    TaskRetrying,
    TaskStarted,
    TaskSucceeded,
)
from workbench.dag.records import WorkflowExecution
from workbench.dag.states import TaskState, WorkflowStatus
from workbench.events.models import Event, EventType
from workbench.execution.base import Executor
from workbench.execution.invocation import TaskInvocation
from workbench.execution.placement import constrained, placement_errors
from workbench.execution.run_cache import RunCache

log = logging.getLogger(__name__)

_TASK_EVENT = {
    TaskState.SUBMITTED: EventType.TASK_QUEUED,
    TaskState.RUNNING: EventType.TASK_STARTED,
    TaskState.RETRYING: EventType.TASK_RETRYING,
    TaskState.SUCCEEDED: EventType.TASK_SUCCEEDED,
    TaskState.CACHED: EventType.TASK_CACHED,
    TaskState.FAILED: EventType.TASK_FAILED,
    TaskState.SKIPPED: EventType.TASK_SKIPPED,
    TaskState.CANCELLED: EventType.TASK_CANCELLED,
}

# Tasks handed to Dask between two yields to the event loop.
SUBMIT_BATCH = 200
# Results fetched for the cache in one round.
STORE_BATCH = 256

# How often the watchdog looks at the futures' states.
WATCH_INTERVAL_S = 0.5
# How long a finished future may wait for its worker's result report before it is fetched.
REPORT_GRACE_S = 10.0


class ExecutionRun:
    """One execution: submits its tasks, follows their reports, publishes its events."""

    def __init__(
        self,
        execution: WorkflowExecution,
        invocations: Mapping[str, TaskInvocation],
        order: list[str],
        executor: Executor,
        publish: Callable[[Event], None],
        instance_id: str,
        cache: RunCache | None = None,
        *,
        seq_start: int = 0,
    ) -> None:
        self.execution = execution
        self.cache = cache
        self.invocations = invocations
        self.executor = executor
        self._publish = publish
        self._instance_id = instance_id
        self._seq = seq_start  # events are numbered from seq_start + 1
        self._dependencies = {tid: inv.dependencies for tid, inv in invocations.items()}
        self._run_tag = next(iter(invocations.values())).run_tag if invocations else ""
        self.machine = DAGStateMachine(execution, self._dependencies, order)
        self.futures: dict[str, Any] = {}
        self._done = asyncio.Event()
        self._to_submit: list[str] = []
        self._to_store: list[str] = []
        self._storing: asyncio.Future[None] | None = None
        self._background: set[asyncio.Future[None]] = set()
        # A hyperparameter search's pruning watch: (task id, step, value) as the task trains.
        self.on_intermediate: Callable[[str, int, float], None] | None = None
        self._emit(
            EventType.WORKFLOW_SUBMITTED,
            None,
            status=execution.status.value,
            data={
                "name": execution.name,
                "tasks": {tid: rec.task_type for tid, rec in execution.tasks.items()},
            },
        )

    # -- the run -------------------------------------------------------------------------------
    async def run(self) -> WorkflowExecution:
        try:
            await self._run()
        finally:
            if self.cache is not None:
                await self.cache.finish()
        return self.execution

    async def _run(self) -> None:
        hits = await self._find_hits()
        to_run = [tid for tid in self.machine.order if tid not in hits]
        if to_run:  # a run served wholly from the cache never needs the cluster
            await self.executor.start()
            resources = {tid: self.invocations[tid].resources for tid in to_run}
            if any(constrained(r) for r in resources.values()):  # else: no need to ask Dask
                errors = placement_errors(resources, await self.executor.workers())
                if errors:
                    self._apply(self.machine.handle(Reject(errors, time.time())))
                    return
            await self._seed_inputs(hits, set(to_run))
        cached = {
            tid: CacheHit(
                key=str(entry.meta.get("key", "")),
                metrics=entry.metrics,
                artifacts=entry.artifacts,
                summary=entry.summary,
                source_execution=entry.meta.get("execution_id"),
            )
            for tid, entry in hits.items()
        }
        self._apply(self.machine.handle(Start(time.time(), cached)))
        await self._submit_pending()
        if not self.machine.finished:
            watchdog = asyncio.create_task(self._watch_futures())
            try:
                await self._done.wait()
            finally:
                watchdog.cancel()
        if self._storing is not None and self.execution.status is WorkflowStatus.CANCELLED:
            # A cancelled run keeps nothing more: its workers may be busy with a task body
            # that cannot be interrupted, and the results would wait behind it.
            self._storing.cancel()
        while self._background:  # cache writes and cancels still on their way
            for outcome in await asyncio.gather(*list(self._background), return_exceptions=True):
                if isinstance(outcome, Exception):
                    log.warning(
                        "a background step of %s failed: %r", self.execution.execution_id, outcome
                    )

    async def _find_hits(self) -> dict[str, CacheEntry]:
        if self.cache is None:
            return {}
        try:
            return await self.cache.resolve()
        except Exception as exc:  # an unreachable cache slows a run down; it never fails it
            log.warning("the cache is unavailable, running without it: %s", exc)
            self.cache.release_all()
            self.cache = None
            return {}

    async def _seed_inputs(self, hits: Mapping[str, CacheEntry], to_run: set[str]) -> None:
        """Cached results that tasks about to run need as inputs go to the cluster first."""
        needed = {dep for tid in to_run for dep in self._dependencies[tid] if dep in hits}
        for tid in self.machine.order:
            if tid in needed:
                self.futures[tid] = await self.executor.seed(
                    self.invocations[tid], hits[tid].result
                )

    def cancel(self, reason: str = "cancelled by the user") -> None:
        self.handle(CancelRequested(time.time(), reason))

    async def stop_task(self, task_id: str, reason: str) -> None:
        """Stop a running task's body; it fails with `reason` (a pruned trial's training)."""
        future = self.futures.get(task_id)
        if future is not None and not self._state(task_id).terminal:
            # The worker its start report named; before that report, every worker is told.
            await self.executor.stop([future], reason, self.execution.tasks[task_id].worker)

    def handle(self, event: Input) -> None:
        self._apply(self.machine.handle(event))

    async def _watch_futures(self) -> None:
        """Worker reports drive the run; this catches what no worker can report: a worker lost
        mid-task, a task cancelled by the cluster, a report lost on the way. It reads the
        futures' client-side status (no network) a few times a second."""
        finished_unreported: dict[str, float] = {}
        try:
            while not self.machine.finished:
                await asyncio.sleep(WATCH_INTERVAL_S)
                for task_id, future in list(self.futures.items()):
                    if self.machine.finished:
                        return
                    if self._state(task_id).terminal:
                        continue
                    status = future.status
                    if status == "error":
                        await self._settle_error(task_id)
                    elif status == "cancelled":
                        self.handle(
                            TaskFailed(task_id, "the cluster cancelled the task", time.time())
                        )
                    elif status == "finished":
                        seen = finished_unreported.setdefault(task_id, time.monotonic())
                        if time.monotonic() - seen > REPORT_GRACE_S:
                            log.warning(
                                "no report from task %r of %s after %ss; fetching its result",
                                task_id,
                                self.execution.execution_id,
                                REPORT_GRACE_S,
                            )
                            report = await self.executor.fetch_report(future)
                            self.handle(TaskSucceeded(task_id, time.time(), **report))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug here must end the run, never hang it
            log.exception("lost track of execution %s", self.execution.execution_id)
            self.cancel(f"internal error while following the execution: {exc!r}")

    async def _settle_error(self, task_id: str) -> None:
        # Dask also errs every dependent of a failed task; settle the real failure first so the
        # dependents are marked skipped, not failed with someone else's error.
        for dep in self._dependencies[task_id]:
            dep_future = self.futures[dep]
            if dep_future.status == "error" and not self._state(dep).terminal:
                await self._settle_error(dep)
        if self._state(task_id).terminal:
            return
        error, text = await self.executor.failure(self.futures[task_id])
        self.handle(TaskFailed(task_id, error, time.time(), text))

    def _state(self, task_id: str) -> TaskState:
        return self.execution.tasks[task_id].state

    # -- reports from workers ------------------------------------------------------------------
    def on_worker_event(self, message: dict[str, Any]) -> None:
        task_id = message["t"]
        if task_id not in self.invocations or message.get("r", "") != self._run_tag:
            return  # not ours: another task, or an earlier owner's run of this execution
        kind, at = message["k"], message["at"]
        if kind == "started":
            # A start is announced late (after 100 ms, or with its first progress): the
            # attempt's own start time is in the message.
            started = message.get("started_at", at)
            self.handle(TaskStarted(task_id, message["attempt"], message.get("worker"), started))
        elif kind == "progress":
            self.handle(TaskProgress(task_id, message["fraction"], message.get("message", "")))
        elif kind == "metric":
            self.handle(TaskMetric(task_id, message["name"], message["value"], message["step"]))
        elif kind == "intermediate":
            name, step, value = message["name"], message["step"], message["value"]
            self.handle(TaskMetric(task_id, f"intermediate_{name}", value, step))
            if self.on_intermediate is not None:
                self.on_intermediate(task_id, step, value)
        elif kind == "retrying":
            self.handle(
                TaskRetrying(task_id, message["attempt"], message["error"], message["delay_s"])
            )
        elif kind == "succeeded":
            start = message.get("started")
            if start is not None:  # a short attempt's start comes with its result
                self.handle(
                    TaskStarted(task_id, start["attempt"], start["worker"], start["started_at"])
                )
            self.handle(
                TaskSucceeded(
                    task_id, at, message["metrics"], message["artifacts"], message["summary"]
                )
            )
        elif kind == "failed":
            self.handle(TaskFailed(task_id, message["error"], at, message.get("traceback")))
        elif kind == "model_event":  # the task changed the model registry: pass it on as is
            self._publish(Event.model_validate(message["event"]))

    # -- instructions --------------------------------------------------------------------------
    def _apply(self, instructions: list[Instruction]) -> None:
        for instruction in instructions:
            match instruction:
                case SubmitTasks(task_ids=task_ids):
                    self._to_submit.extend(task_ids)
                case CancelTasks(task_ids=task_ids):
                    handles = [self.futures[t] for t in task_ids if t in self.futures]
                    if handles:  # sent in the background; run() waits for them before it ends
                        cancelling = asyncio.ensure_future(self.executor.cancel(handles))
                        self._background.add(cancelling)
                        cancelling.add_done_callback(self._background.discard)
                case Notify():
                    self._notify(instruction)
                case Finished():
                    self._done.set()

    async def _submit_pending(self) -> None:
        """Hand the tasks to Dask in batches; between batches the client streams them to the
        scheduler, and waits for it when it falls behind, instead of buffering the whole graph."""
        task_ids, self._to_submit = self._to_submit, []
        streaming = len(task_ids) > SUBMIT_BATCH
        if streaming:
            self.executor.bulk(True)
        try:
            for count, tid in enumerate(task_ids, 1):
                if self.machine.finished:
                    return  # cancelled while submitting
                if self._state(tid).terminal:
                    continue  # skipped: an upstream task failed while submitting
                invocation = self._with_lineage(self.invocations[tid])
                upstream = [self.futures[dep] for dep in invocation.dependencies]
                self.futures[tid] = self.executor.submit(invocation, upstream)
                if count % SUBMIT_BATCH == 0:
                    await self.executor.drain()
        finally:
            if streaming:
                self.executor.bulk(False)

    def _with_lineage(self, invocation: TaskInvocation) -> TaskInvocation:
        """A task that records lineage gets its upstream results' cache keys: each is a content
        address of everything that made that result (a Merkle chain)."""
        if invocation.lineage is None or self.cache is None:
            return invocation
        plans = self.cache.plans
        keys = {d: plans[d].key for d in invocation.dependencies if d in plans and plans[d].key}
        return replace(invocation, lineage={**invocation.lineage, "cache_keys": keys})

    def _store(self, task_id: str) -> None:
        if self.cache is None or not self.cache.wants(task_id) or task_id not in self.futures:
            return
        self._to_store.append(task_id)
        if self._storing is None:  # results that finish while a batch is stored join the next
            self._storing = storing = asyncio.ensure_future(self._store_pending())
            self._background.add(storing)
            storing.add_done_callback(self._background.discard)

    async def _store_pending(self) -> None:
        assert self.cache is not None
        try:
            await self._store_batches(self.cache)
        finally:
            self._storing = None

    async def _store_batches(self, cache: RunCache) -> None:
        while self._to_store:
            batch, self._to_store = self._to_store[:STORE_BATCH], self._to_store[STORE_BATCH:]
            try:
                payloads = await self.executor.fetch_payloads([self.futures[t] for t in batch])
            except Exception as exc:  # e.g. the worker holding them died: no entry, no harm
                log.warning("results of %s were not cached: %s", ", ".join(batch), exc)
                cache.give_up(batch)
                continue
            await cache.store([(t, self.execution.tasks[t]) for t in batch], payloads)

    def _notify(self, notice: Notify) -> None:
        data = dict(notice.data)
        if notice.kind is NoticeKind.WORKFLOW:
            status: WorkflowStatus = data["status"]
            kind = (
                EventType.WORKFLOW_STARTED
                if status is WorkflowStatus.RUNNING
                else EventType.WORKFLOW_FINISHED
            )
            error = self.execution.error
            extra = {"error": error.model_dump()} if error and status.terminal else {}
            self._emit(kind, None, status=status.value, data=extra)
        elif notice.kind is NoticeKind.TASK_STATE:
            state: TaskState = data.pop("state")
            if state is TaskState.SUCCEEDED:
                self._store(notice.task_id or "")
            metrics = data.pop("metrics", None) or {}
            # The worker's clock, not the publishing moment: a short task's start and end are
            # published together, when its result arrives.
            record = self.execution.tasks[notice.task_id or ""]
            if state is TaskState.RUNNING and record.started_at is not None:
                data["started_at"] = record.started_at
            elif state.terminal and record.finished_at is not None:
                data["finished_at"] = record.finished_at
            if state is TaskState.FAILED and record.traceback:
                data["traceback"] = record.traceback  # every UI shows where it failed
            message = data.get("error") or data.get("reason")
            self._emit(
                _TASK_EVENT[state],
                notice.task_id,
                status=state.value,
                metrics=metrics,
                message=message,
                data=data,
            )
        elif notice.kind is NoticeKind.TASK_PROGRESS:
            self._emit(
                EventType.TASK_PROGRESS,
                notice.task_id,
                progress=data["progress"],
                message=data["message"],
            )
        else:
            self._emit(
                EventType.TASK_METRIC,
                notice.task_id,
                metrics={data["name"]: data["value"]},
                data={"step": data["step"]} if data["step"] is not None else {},
            )

    def _emit(
        self,
        kind: EventType,
        task_id: str | None,
        *,
        status: str | None = None,
        progress: float | None = None,
        message: str | None = None,
        metrics: dict[str, float] | None = None,
        data: dict[str, Any] | None = None,
    ) -> None:
        self._seq += 1
        # model_construct: these fields are built here from typed values; skip re-validation on
        # what is the hottest path of a 10,000-task run.
        event = Event.model_construct(
            schema_version=1,
            type=kind,
            execution_id=self.execution.execution_id,
            workflow_id=self.execution.workflow_id,
            task_id=task_id,
            status=status,
            progress=progress,
            message=message,
            metrics=metrics or {},
            data=data or {},
            instance_id=self._instance_id,
            seq=self._seq,
            timestamp=time.time(),
        )
        self._publish(event)
