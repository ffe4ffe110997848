"""The task seam: what a task function receives (TaskContext), returns (TaskResult), and how
task types are registered (@task_type, entry-point group `workbench.tasks`)."""

from __future__ import annotations

import importlib
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict

from workbench.errors import TaskCancelledError, TaskInputError
from workbench.registry.address import RegistryAddress
from workbench.spec.models import Resources

if TYPE_CHECKING:
    from workbench.events.models import Event
    from workbench.registry.manager import ModelLifecycleManager

T = TypeVar("T")


class NoParameters(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TaskEventSink(Protocol):
    """Where a running task's progress and metrics go (a Dask event topic on a worker)."""

    def __call__(self, kind: str, payload: dict[str, Any]) -> None: ...


def _discard(kind: str, payload: dict[str, Any]) -> None:
    return None


@dataclass
class TaskResult:
    """What a task returns. `output` stays on the worker and feeds downstream tasks; the rest is
    small and travels to the orchestrator and the UIs."""

    output: Any = None
    metrics: dict[str, float] = field(default_factory=dict)
    artifacts: dict[str, str] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)


class CancelSignal(threading.Event):
    """Set when a running task should stop, with why (a timeout, a user's cancel, pruning)."""

    reason = "it was cancelled or timed out"

    def stop(self, reason: str) -> None:
        self.reason = reason
        self.set()


# Progress events are throttled so a tight training loop cannot flood the scheduler.
PROGRESS_MIN_INTERVAL_S = 0.1


class TaskContext:
    """Handed to every task function: its parameters, upstream outputs and a way to report."""

    def __init__(
        self,
        *,
        execution_id: str,
        task_id: str,
        task_type: str,
        params: BaseModel,
        inputs: Mapping[str, Any] | None = None,
        global_parameters: Mapping[str, Any] | None = None,
        resources: Resources | None = None,
        base_dir: Path | None = None,
        work_dir: Path | None = None,
        attempt: int = 1,
        sink: TaskEventSink = _discard,
        cancel_event: threading.Event | None = None,
        intermediate_metric: str | None = None,
        registry: RegistryAddress | None = None,
        lineage: Mapping[str, Any] | None = None,
    ) -> None:
        self.execution_id = execution_id
        self.task_id = task_id
        self.task_type = task_type
        self.params = params
        self.inputs: Mapping[str, Any] = dict(inputs or {})
        self.global_parameters: Mapping[str, Any] = dict(global_parameters or {})
        self.resources = resources or Resources()
        self.base_dir = base_dir or Path.cwd()
        self._work_dir = work_dir  # built on first use: most tasks never write files
        self.attempt = attempt
        self._sink = sink
        self._cancel = cancel_event or CancelSignal()
        # Set when a hyperparameter search may prune this task: the metric to report while it
        # trains (report_intermediate), so a poor trial is stopped early.
        self.intermediate_metric = intermediate_metric
        self._registry = registry
        # Where this run comes from (workflow, upstream cache keys), for tasks that record it.
        self.lineage: Mapping[str, Any] = dict(lineage or {})
        self._last_progress = 0.0
        self._progress_lock = threading.Lock()

    # -- data ---------------------------------------------------------------------------------
    def resolve_path(self, path: str | Path) -> Path:
        """Relative paths in a spec are relative to the spec file's folder."""
        candidate = Path(path).expanduser()
        return candidate if candidate.is_absolute() else self.base_dir / candidate

    @property
    def work_dir(self) -> Path:
        """A folder for this task's files, created on first use."""
        if self._work_dir is None:
            runs = self.base_dir / ".workbench" / "runs"
            self._work_dir = runs / self.execution_id / self.task_id
        self._work_dir.mkdir(parents=True, exist_ok=True)
        return self._work_dir

    def inputs_of(self, kind: type[T]) -> dict[str, T]:
        return {tid: value for tid, value in self.inputs.items() if isinstance(value, kind)}

    def input(self, kind: type[T]) -> T:
        """The one upstream output of type `kind`; a clear error when there is none or several."""
        found = self.inputs_of(kind)
        if len(found) == 1:
            return next(iter(found.values()))
        upstream = ", ".join(f"{tid} ({type(v).__name__})" for tid, v in self.inputs.items())
        if not found:
            raise TaskInputError(
                f"task {self.task_id!r} ({self.task_type}) needs a {kind.__name__} from an "
                f"upstream task, but its dependencies give: {upstream or 'nothing'}. "
                "Add the producing task to its 'dependencies'."
            )
        raise TaskInputError(
            f"task {self.task_id!r} ({self.task_type}) got {len(found)} {kind.__name__} inputs "
            f"({', '.join(found)}) and can use only one; keep one in its 'dependencies'."
        )

    @contextmanager
    def model_registry(self) -> Iterator[ModelLifecycleManager]:
        """The orchestrator's model registry, open for this block. What the task changes there
        is recorded as done by this task and reaches the event stream like its progress."""
        if self._registry is None:
            raise TaskInputError(
                f"task {self.task_id!r} ({self.task_type}) needs the model registry, and this "
                "run was started without one; run it through an orchestrator or Workbench"
            )
        from workbench.registry.manager import ModelLifecycleManager

        def publish(event: Event) -> None:
            self._sink("model_event", {"event": event.model_dump(mode="json")})

        manager = ModelLifecycleManager.at(
            self._registry, publish=publish, who=f"{self.execution_id}/{self.task_id}"
        )
        try:
            yield manager
        finally:
            manager.close()

    # -- reporting ----------------------------------------------------------------------------
    def report_progress(self, fraction: float, message: str = "") -> None:
        """Report how far the task is (0..1). Also the point where a cancelled task stops."""
        self.check_cancelled()
        now = time.monotonic()
        with self._progress_lock:  # tasks may report from several threads (partitions)
            if fraction < 1.0 and now - self._last_progress < PROGRESS_MIN_INTERVAL_S:
                return
            self._last_progress = now
        fraction = max(0.0, min(1.0, float(fraction)))
        self._sink("progress", {"fraction": fraction, "message": message})

    def log_metric(self, name: str, value: float, step: int | None = None) -> None:
        self.check_cancelled()
        self._sink("metric", {"name": name, "value": float(value), "step": step})

    def report_intermediate(self, step: int, value: float) -> None:
        """The value of `intermediate_metric` after `step` (a boosting round, a batch of trees).
        The task stops at its next report once the search prunes it."""
        self.check_cancelled()
        self._sink(
            "intermediate", {"name": self.intermediate_metric, "value": float(value), "step": step}
        )

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def check_cancelled(self) -> None:
        if self._cancel.is_set():
            reason = getattr(self._cancel, "reason", CancelSignal.reason)
            raise TaskCancelledError(f"task {self.task_id!r} stopped: {reason}")


TaskFunction = Callable[[TaskContext], Any]


def uncached_reason(params: BaseModel) -> str | None:
    """Why a task with these parameters is never taken from the cache, or None. A parameters
    model says so with an `uncached_reason()` method: a task that changes or reads state outside
    its inputs (the model registry) is not a function of them."""
    reason = getattr(params, "uncached_reason", None)
    return reason() if callable(reason) else None


@dataclass(frozen=True)
class TaskRef:
    """A task function named by module and attribute, imported where it first runs.

    Built-in types register this way, so the orchestrator validates and schedules them without
    importing pandas or scikit-learn; only the workers that run them do.
    """

    module: str
    attribute: str = "run"

    def load(self) -> TaskFunction:
        fn: TaskFunction = getattr(importlib.import_module(self.module), self.attribute)
        return fn

    def __call__(self, ctx: TaskContext) -> Any:
        return self.load()(ctx)


@dataclass(frozen=True)
class TaskDefinition:
    """A registered task type. An unavailable one is known (so specs name it) but rejected."""

    name: str
    fn: TaskFunction | None
    params: type[BaseModel]
    description: str = ""
    unavailable_reason: str | None = None
    # Its runs are handed their lineage (workflow, upstream cache keys): TaskContext.lineage.
    records_lineage: bool = False

    @property
    def available(self) -> bool:
        return self.fn is not None and self.unavailable_reason is None
