"""The executions this instance owns: it runs each one and commits its progress to the shared
store, every commit guarded by owner and ownership epoch.

Resume: a new owner runs the execution again from its spec. Tasks that had completed are found
in the cache (their checkpoints) and are not run again; in-flight ones run again. A task's
completion is committed only once its checkpoint is stored, so a committed task is never lost
with its owner. A refused commit means another instance owns the execution now: this one stops
its local run and commits nothing more.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from workbench.coordination.base import JobKind, StateStore, StoredExecution, WriteResult
from workbench.dag.records import TaskRecord, WorkflowExecution
from workbench.dag.states import TaskState, WorkflowStatus
from workbench.events.models import Event
from workbench.execution.cache_plan import CacheMode
from workbench.execution.dag_executor import ExecutionRun
from workbench.orchestrator.owned_study import OwnedStudy, StudyDriver
from workbench.tasks.checks import CheckedWorkflow, load_workflow

log = logging.getLogger(__name__)

RunFactory = Callable[
    [CheckedWorkflow, WorkflowExecution, CacheMode, int, Mapping[str, Any]], Awaitable[ExecutionRun]
]
Subscribe = Callable[[Callable[[Event], None], str], Any]


def execution_from_store(stored: StoredExecution) -> WorkflowExecution:
    """The record every instance and client shows, rebuilt from the shared store."""
    record = dict(stored.record)
    tasks = {tid: TaskRecord.model_validate(data) for tid, data in stored.tasks.items()}
    for task in stored.spec.get("tasks", []):
        tasks.setdefault(
            task["task_id"], TaskRecord(task_id=task["task_id"], task_type=task["task_type"])
        )
    return WorkflowExecution.model_validate(
        {
            "execution_id": stored.execution_id,
            "workflow_id": stored.workflow_id,
            "name": stored.spec.get("name") or stored.workflow_id,
            "submitted_at": stored.submitted_at,
            **record,
            "status": stored.status,
            "tasks": {tid: tasks[tid] for tid in sorted(tasks, key=_spec_order(stored))},
        }
    )


def _spec_order(stored: StoredExecution) -> Callable[[str], int]:
    order = {t["task_id"]: i for i, t in enumerate(stored.spec.get("tasks", []))}
    return lambda tid: order.get(tid, len(order))


class OwnedRun:
    """One execution at one ownership epoch."""

    def __init__(
        self,
        stored: StoredExecution,
        instance_id: str,
        store: StateStore,
        make_run: RunFactory,
        subscribe: Subscribe,
    ) -> None:
        self.execution_id = stored.execution_id
        self.epoch = stored.epoch
        self.stored = stored
        self.instance_id = instance_id
        self.store = store
        self._make_run = make_run
        self._subscribe = subscribe
        self.run: ExecutionRun | None = None
        self.lost = False  # another instance owns it now: commit nothing more
        self._commits: asyncio.Queue[Callable[[], WriteResult] | None] = asyncio.Queue()
        # Completed under an earlier owner: their records stand, whatever this run shows.
        self._settled = {
            tid for tid, data in stored.tasks.items() if TaskState(data["state"]).succeeded
        }
        self._deferred: set[str] = set()  # succeeded, waiting for their checkpoint
        self.task: asyncio.Task[None] | None = None

    @property
    def finishing(self) -> bool:
        return self.run is not None and self.run.machine.finished

    def start(self) -> None:
        self.task = asyncio.create_task(self._drive(), name=f"owned-{self.execution_id}")

    async def _drive(self) -> None:
        committer = asyncio.create_task(self._commit_loop())
        subscription = None
        try:
            checked = await asyncio.to_thread(stored_workflow, self.stored)
            execution = WorkflowExecution(
                execution_id=self.execution_id,
                workflow_id=self.stored.workflow_id,
                name=checked.spec.name or checked.spec.workflow_id,
                submitted_at=self.stored.submitted_at,
                tasks={
                    t.task_id: TaskRecord(task_id=t.task_id, task_type=t.task_type)
                    for t in checked.spec.tasks
                },
            )
            run = self.run = await self._make_run(
                checked,
                execution,
                CacheMode(self.stored.cache_mode),
                self.epoch,
                self.stored.options,
            )
            if self.lost:  # handed back or taken over while it was loading
                return
            if run.cache is not None:
                run.cache.on_settled = self._checkpointed
            subscription = self._subscribe(self._on_event, self.execution_id)
            if self.stored.cancel_requested:
                run.cancel("cancelled by the user")
            await run.run()
            self._enqueue_execution(run.execution)
        except Exception as exc:
            log.exception("%s could not run %s", self.instance_id, self.execution_id)
            self._fail(str(exc))
        finally:
            if subscription is not None:
                subscription.close()
            self._commits.put_nowait(None)
            await committer

    def cancel(self, reason: str = "cancelled by the user") -> None:
        if self.run is not None:
            self.run.cancel(reason)

    def abandon(self) -> None:
        """Ownership moved elsewhere: stop running it here, quietly."""
        self.lost = True
        if self.run is not None:
            self.run.cancel("ownership moved to another instance")

    # -- commits -------------------------------------------------------------------------------
    def _on_event(self, event: Event) -> None:
        if self.run is None or event.task_id is None or event.status is None:
            return
        task_id = event.task_id
        if task_id in self._settled:
            return
        record = self.run.execution.tasks[task_id]
        if record.state is TaskState.SUCCEEDED and self._checkpoints(task_id):
            self._deferred.add(task_id)  # committed once its checkpoint is stored
            return
        self._enqueue_task(task_id, record)

    def _checkpoints(self, task_id: str) -> bool:
        assert self.run is not None
        return self.run.cache is not None and self.run.cache.wants(task_id)

    def _checkpointed(self, task_ids: list[str]) -> None:
        assert self.run is not None
        for task_id in task_ids:
            if task_id in self._deferred:
                self._deferred.discard(task_id)
                self._enqueue_task(task_id, self.run.execution.tasks[task_id])

    def _enqueue_task(self, task_id: str, record: TaskRecord) -> None:
        data = record.model_dump(mode="json")
        plan = self.run.cache.plans.get(task_id) if self.run and self.run.cache else None
        if plan is not None and plan.key is not None:
            data["summary"] = {
                **data["summary"],
                "cache_key": plan.key,
                "cache_strategy": plan.strategy.value,
            }
        owner, epoch = self.instance_id, self.epoch
        self._commits.put_nowait(
            lambda: self.store.commit_task(self.execution_id, owner, epoch, task_id, data)
        )

    def _enqueue_execution(self, execution: WorkflowExecution) -> None:
        record = execution.model_dump(mode="json", exclude={"tasks", "status"})
        status, owner, epoch = execution.status, self.instance_id, self.epoch
        self._commits.put_nowait(
            lambda: self.store.commit_execution(self.execution_id, owner, epoch, status, record)
        )

    def _fail(self, message: str) -> None:
        record = {"error": {"task_id": None, "message": message, "traceback": None}}
        owner, epoch = self.instance_id, self.epoch
        self._commits.put_nowait(
            lambda: self.store.commit_execution(
                self.execution_id, owner, epoch, WorkflowStatus.FAILED, record
            )
        )

    def mark_running(self) -> None:
        owner, epoch = self.instance_id, self.epoch
        self._commits.put_nowait(
            lambda: self.store.commit_execution(
                self.execution_id, owner, epoch, WorkflowStatus.RUNNING, {}
            )
        )

    async def _commit_loop(self) -> None:
        while (commit := await self._commits.get()) is not None:
            if self.lost:
                continue
            try:
                result = await asyncio.to_thread(commit)
            except Exception as exc:
                log.warning(
                    "%s: a commit for %s failed: %s", self.instance_id, self.execution_id, exc
                )
                continue
            if not result.ok:
                log.warning(
                    "%s no longer owns %s at epoch %d (%s): stopping its local run",
                    self.instance_id,
                    self.execution_id,
                    self.epoch,
                    result.refusal.value if result.refusal else "refused",
                )
                self.abandon()


class OwnedRuns:
    """Finds what this instance owns, starts and stops local runs to match."""

    def __init__(
        self,
        instance_id: str,
        store: StateStore,
        make_run: RunFactory,
        subscribe: Subscribe,
        forget: Callable[[str], None],
        drive_study: StudyDriver,
    ) -> None:
        self.instance_id = instance_id
        self.store = store
        self._make_run = make_run
        self._subscribe = subscribe
        self._forget = forget  # the orchestrator stops routing worker reports to it
        self._drive_study = drive_study
        self.active: dict[str, OwnedRun | OwnedStudy] = {}

    @property
    def load(self) -> int:
        return sum(run.stored.capacity_used for run in self.active.values())

    async def poll_once(self) -> None:
        owned: dict[str, StoredExecution] = {}
        for status in (WorkflowStatus.PENDING, WorkflowStatus.RUNNING):  # owner index: cheap
            mine = await asyncio.to_thread(
                self.store.list_executions, owner=self.instance_id, status=status
            )
            owned.update((e.execution_id, e) for e in mine)
        for execution_id, stored in owned.items():
            current = self.active.get(execution_id)
            if current is not None and current.epoch != stored.epoch:
                current.abandon()  # re-assigned to us at a new epoch: start over
                current = None
            if current is None:
                run = self.active[execution_id] = self._owned(stored)
                run.mark_running()
                run.start()
                assert run.task is not None
                run.task.add_done_callback(functools.partial(self._done, execution_id, run))
            elif stored.cancel_requested:
                current.cancel()
        for execution_id, run in list(self.active.items()):
            ended = run.finishing or (run.task is not None and run.task.done())
            if execution_id not in owned and not ended:
                run.abandon()  # re-assigned elsewhere while this instance was cut off

    def _owned(self, stored: StoredExecution) -> OwnedRun | OwnedStudy:
        if stored.kind is JobKind.STUDY:
            return OwnedStudy(stored, self.instance_id, self.store, self._drive_study)
        return OwnedRun(stored, self.instance_id, self.store, self._make_run, self._subscribe)

    def _done(self, execution_id: str, run: OwnedRun | OwnedStudy, _: object = None) -> None:
        if self.active.get(execution_id) is run:
            del self.active[execution_id]
            self._forget(execution_id)

    async def release_all(self) -> None:
        """Graceful shutdown: hand every unfinished execution back, stop running them here."""
        for execution_id, run in list(self.active.items()):
            try:
                await asyncio.to_thread(
                    self.store.release, execution_id, self.instance_id, run.epoch
                )
            except Exception as exc:
                log.warning("could not hand %s back: %s", execution_id, exc)
            run.abandon()
        tasks = [r.task for r in self.active.values() if r.task is not None]
        await asyncio.gather(*tasks, return_exceptions=True)


def stored_workflow(stored: StoredExecution) -> CheckedWorkflow:
    """The checked workflow of an execution in the state store (blocking: it reads files)."""
    return load_workflow(dict(stored.spec), base_dir=Path(stored.base_dir))
