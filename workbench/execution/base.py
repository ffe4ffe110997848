"""The executor seam: how tasks reach compute. Dask is the implementation."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from workbench.execution.invocation import TaskInvocation

WorkerEventHandler = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class WorkerInfo:
    address: str
    name: str
    resources: dict[str, float] = field(default_factory=dict)
    memory_limit: int | None = None
    threads: int = 1


class Executor(Protocol):
    async def start(self) -> None: ...

    async def close(self) -> None: ...

    def on_worker_event(self, handler: WorkerEventHandler) -> None: ...

    async def workers(self) -> list[WorkerInfo]: ...

    def submit(self, invocation: TaskInvocation, upstream: Sequence[Any]) -> Any: ...

    async def fetch_report(self, handle: Any) -> dict[str, Any]:
        """The metrics, artifacts and summary of a finished task whose report was lost."""
        ...

    async def failure(self, handle: Any) -> tuple[str, str]:
        """A failed task's error ("Type: message") and traceback text."""
        ...

    def bulk(self, streaming: bool) -> None:
        """A big graph is being submitted (True) or that is over (False)."""
        ...

    async def drain(self) -> None:
        """Wait while the compute side is behind on submissions (backpressure)."""
        ...

    async def cancel(self, handles: Sequence[Any]) -> None:
        """Drop the tasks and stop the bodies of those running."""
        ...

    async def stop(self, handles: Sequence[Any], reason: str, worker: str | None = None) -> None:
        """Stop the bodies of running tasks: each fails with TaskCancelledError(reason).
        `worker`: where they run, when known; else every worker is told."""
        ...

    async def seed(self, invocation: TaskInvocation, payload: bytes | memoryview) -> Any:
        """A handle that holds a cached result (pickled TaskResult bytes) for dependents."""
        ...

    async def fetch_payloads(self, handles: Sequence[Any]) -> list[bytes]:
        """Finished tasks' results as pickled bytes, each pickled where it lives."""
        ...
