"""A hyperparameter study this instance owns in a cluster.

The owner asks the study for trials and submits each as a workflow execution of its own (which
the leader assigns like any other). The study itself lives in the cluster's Redis (an Optuna
journal), so when its owner dies the leader gives it to another instance, which resumes it:
trials the dead owner was running are failed and asked again, completed ones are never repeated.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from workbench.coordination.base import StateStore, StoredExecution
from workbench.dag.states import WorkflowStatus

log = logging.getLogger(__name__)

StudyDriver = Callable[[StoredExecution], Awaitable[None]]


class OwnedStudy:
    def __init__(
        self, stored: StoredExecution, instance_id: str, store: StateStore, drive: StudyDriver
    ) -> None:
        self.execution_id = stored.execution_id
        self.epoch = stored.epoch
        self.stored = stored
        self.instance_id = instance_id
        self.store = store
        self._drive_study = drive
        self.lost = False
        self.finishing = False  # its final status is being committed
        self.task: asyncio.Task[None] | None = None
        self._cancel_reason: str | None = None
        self._started_at: float | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self._drive(), name=f"study-{self.execution_id}")

    async def _drive(self) -> None:
        status, error = WorkflowStatus.SUCCEEDED, None
        try:
            if self._started_at is not None:
                await self._commit(WorkflowStatus.RUNNING, {"started_at": self._started_at})
            if self.stored.cancel_requested:
                raise asyncio.CancelledError
            await self._drive_study(self.stored)
        except asyncio.CancelledError:
            if self.lost:
                return  # another instance owns it now and carries on
            status, error = WorkflowStatus.CANCELLED, self._cancel_reason or "cancelled"
        except Exception as exc:
            log.exception("%s: study %s failed", self.instance_id, self.execution_id)
            status, error = WorkflowStatus.FAILED, str(exc)
        self.finishing = True
        record: dict[str, Any] = {"finished_at": time.time()}
        if error is not None:
            record["error"] = {"task_id": None, "message": error, "traceback": None}
        await self._commit(status, record)

    async def _commit(self, status: WorkflowStatus, record: dict[str, Any]) -> None:
        try:
            result = await asyncio.to_thread(
                self.store.commit_execution,
                self.execution_id,
                self.instance_id,
                self.epoch,
                status,
                record,
            )
        except Exception as exc:
            log.warning(
                "%s: a commit for study %s failed: %s", self.instance_id, self.execution_id, exc
            )
            return
        if not result.ok:
            log.warning("%s no longer owns study %s", self.instance_id, self.execution_id)
            self.abandon()

    def mark_running(self) -> None:
        """Committed first thing in `_drive`, so it can never land after the final status."""
        self._started_at = time.time()

    def cancel(self, reason: str = "cancelled by the user") -> None:
        if self.task is not None and not self.finishing:
            self._cancel_reason = reason
            self.task.cancel()

    def abandon(self) -> None:
        """Ownership moved elsewhere: stop asking for trials here; the new owner resumes."""
        self.lost = True
        if self.task is not None and not self.finishing:
            self.task.cancel()
