"""RecordedBackend: a deterministic stand-in for tui.backend.Backend, for the UI's tests.

Fixed executions (a succeeded, a failed and a cancelled run of the fraud workflow, all
finished, so every duration is fixed), a fixed event list, overview, study and registry. Every
timestamp is a constant: with TZ=UTC the screens that print clock times are stable too.
Actions are recorded in `calls` and answer at once.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tui.backend import ModelEntry
from workbench.client.overview import (
    ExecutionRow,
    InstanceRow,
    Overview,
    ServiceHealth,
    ServiceState,
    WorkerRow,
)
from workbench.config import Settings
from workbench.dag.records import ExecutionError, TaskRecord, WorkflowExecution
from workbench.dag.states import TaskState, WorkflowStatus
from workbench.events.models import Event, EventType
from workbench.events.sources import WatchMode, WatchUpdate
from workbench.hpo.optimizer import Trial
from workbench.hpo.studies import StudySummary
from workbench.registry.base import ModelVersion, Stage, Transition

T0 = 1_767_261_600.0  # 2026-01-01 10:00:00 UTC
LEADER, MEMBER = "orch-7f3a", "orch-b21c"
GRAPH: dict[str, list[str]] = {
    "prepare": [],
    "features": ["prepare"],
    "train": ["features"],
    "validate": ["train"],
    "evaluate": ["train"],
    "score": ["train", "validate"],
}
TASK_TYPES = {
    "prepare": "data_preprocessing",
    "features": "feature_extraction",
    "train": "model_training",
    "validate": "model_validation",
    "evaluate": "model_evaluation",
    "score": "batch_inference",
}
TRACEBACK = """Traceback (most recent call last):
  File "workbench/execution/runner.py", line 212, in run_task
    result = task.run(inputs, params)
  File "workbench/tasks/training.py", line 88, in run
    model.fit(x_train, y_train)
xgboost.core.XGBoostError: [10:20:12] out of memory: tried to allocate 2.1 GiB"""


def _task(
    task_id: str,
    state: TaskState,
    start: float | None,
    seconds: float,
    *,
    worker: str | None = "cpu-0",
    attempts: int = 1,
    **extra: object,
) -> TaskRecord:
    return TaskRecord(
        task_id=task_id,
        task_type=TASK_TYPES[task_id],
        state=state,
        attempts=attempts if start is not None else 0,
        started_at=start,
        finished_at=None if start is None else start + seconds,
        worker=worker if start is not None else None,
        progress=1.0 if state.terminal and start is not None else 0.0,
        **extra,
    )


def _execution(
    execution_id: str,
    status: WorkflowStatus,
    at: float,
    seconds: float,
    tasks: list[TaskRecord],
    error: ExecutionError | None = None,
) -> WorkflowExecution:
    return WorkflowExecution(
        execution_id=execution_id,
        workflow_id="fraud_detection",
        name="Fraud detection (XGBoost)",
        status=status,
        tasks={t.task_id: t for t in tasks},
        submitted_at=at,
        started_at=at + 0.5,
        finished_at=at + 0.5 + seconds,
        error=error,
    )


def executions() -> list[WorkflowExecution]:
    s, f, c = T0, T0 + 1200, T0 + 600  # the failed run is the newest: first in the list
    ok = TaskState.SUCCEEDED
    succeeded = _execution(
        "exec-1a2b3c",
        WorkflowStatus.SUCCEEDED,
        s,
        48.3,
        [
            _task("prepare", ok, s + 1, 3.2, message="49,850 rows, 0.5% fraud"),
            _task("features", ok, s + 4.5, 1.8, worker="cpu-1"),
            _task(
                "train",
                ok,
                s + 6.5,
                31.4,
                worker="gpu-0",
                metrics={"f1_score": 0.8312, "roc_auc": 0.9874, "precision": 0.9041},
            ),
            _task("validate", ok, s + 38, 7.9, metrics={"cv_f1_mean": 0.8207, "cv_f1_std": 0.012}),
            _task(
                "evaluate",
                ok,
                s + 38.1,
                2.3,
                worker="cpu-1",
                metrics={"accuracy": 0.9981, "recall": 0.7712},
            ),
            _task("score", ok, s + 46.1, 2.6, message="8 partitions, 250 flagged"),
        ],
    )
    failed = _execution(
        "exec-9f8e7d",
        WorkflowStatus.FAILED,
        f,
        20.6,
        [
            _task("prepare", TaskState.CACHED, f + 1, 0.1, message="from the cache"),
            _task("features", ok, f + 1.2, 1.7, worker="cpu-1"),
            _task(
                "train",
                TaskState.FAILED,
                f + 3,
                17.9,
                worker="gpu-0",
                attempts=3,
                message="attempt 3 of 3",
                error="XGBoostError: out of memory: tried to allocate 2.1 GiB",
                traceback=TRACEBACK,
            ),
            _task("validate", TaskState.SKIPPED, None, 0),
            _task("evaluate", TaskState.SKIPPED, None, 0),
            _task("score", TaskState.SKIPPED, None, 0),
        ],
        ExecutionError(
            task_id="train",
            message="task 'train' failed after 3 attempts: XGBoostError: out of memory",
            traceback=TRACEBACK,
        ),
    )
    cancelled = _execution(
        "exec-4c5d6e",
        WorkflowStatus.CANCELLED,
        c,
        12.4,
        [
            _task("prepare", TaskState.CACHED, c + 1, 0.1),
            _task("features", TaskState.CACHED, c + 1.1, 0.1),
            _task("train", TaskState.CANCELLED, c + 1.3, 11.5, worker="gpu-0"),
            _task("validate", TaskState.CANCELLED, None, 0),
            _task("evaluate", TaskState.CANCELLED, None, 0),
            _task("score", TaskState.CANCELLED, None, 0),
        ],
    )
    return [succeeded, cancelled, failed]


def _events_of(execution: WorkflowExecution, owner: str) -> list[Event]:
    """Its events in time order, as the watch would see them."""
    base = {
        "execution_id": execution.execution_id,
        "workflow_id": execution.workflow_id,
        "instance_id": owner,
    }
    assert execution.started_at is not None and execution.finished_at is not None
    rows: list[tuple[float, EventType, dict[str, object]]] = [
        (execution.submitted_at, EventType.WORKFLOW_SUBMITTED, {}),
        (execution.started_at, EventType.WORKFLOW_STARTED, {}),
    ]
    for task in execution.tasks.values():
        one: dict[str, object] = {"task_id": task.task_id, "status": task.state.value}
        if task.started_at is None:
            rows.append((execution.finished_at - 0.1, EventType(f"task.{task.state.value}"), one))
            continue
        assert task.finished_at is not None
        if task.state is not TaskState.CACHED:
            rows.append((task.started_at, EventType.TASK_STARTED, {"task_id": task.task_id}))
        if task.metrics:
            rows.append(
                (task.finished_at - 0.05, EventType.TASK_METRIC, {**one, "metrics": task.metrics})
            )
        end: dict[str, object] = {**one, "message": task.error or task.message or None}
        rows.append((task.finished_at, EventType(f"task.{task.state.value}"), end))
    rows.append(
        (execution.finished_at, EventType.WORKFLOW_FINISHED, {"status": execution.status.value})
    )
    rows.sort(key=lambda row: row[0])
    return [
        Event(type=kind, seq=seq, timestamp=at, **base, **extra)
        for seq, (at, kind, extra) in enumerate(rows)
    ]


def other_events() -> list[Event]:
    """Events of no execution: the cluster, trials, the registry."""

    def other(kind: EventType, at: float, about: str, message: str, **extra: object) -> Event:
        return Event(
            type=kind,
            execution_id="",
            workflow_id=about,
            instance_id=LEADER,
            seq=0,
            timestamp=T0 + at,
            message=message,
            **extra,
        )

    return [
        other(EventType.LEADER_ELECTED, -300, "default", "token 7"),
        other(EventType.INSTANCE_JOINED, -290, "default", MEMBER),
        other(EventType.WORKER_JOINED, -280, "default", "gpu-0 (GPU=1)"),
        other(
            EventType.TRIAL_FINISHED,
            1800,
            "fraud_xgb",
            "trial 6",
            status="complete",
            metrics={"f1_score": 0.8421},
        ),
        other(EventType.TRIAL_FINISHED, 1860, "fraud_xgb", "trial 7", status="pruned"),
        other(EventType.MODEL_REGISTERED, 1900, "fraud", "fraud v3"),
        other(EventType.MODEL_TRANSITION, 1910, "fraud", "fraud v3 none → staging"),
    ]


def overview() -> Overview:
    ok = ServiceState.OK
    gib = 2**30
    return Overview(
        mode="cluster",
        namespace="default",
        instances=[
            InstanceRow(LEADER, True, 7, 0.4, 8, 2, host="node-a", pid=4121),
            InstanceRow(MEMBER, False, None, 1.3, 8, 1, host="node-b", pid=3377),
        ],
        workers=[
            WorkerRow(
                "cpu-0",
                "tcp://10.0.0.11:40331",
                cpu_percent=42.0,
                memory_bytes=1_932_735_283,
                running=1,
                processing=2,
                threads=2,
                memory_limit=8 * gib,
            ),
            WorkerRow(
                "cpu-1",
                "tcp://10.0.0.12:40331",
                cpu_percent=8.0,
                memory_bytes=734_003_200,
                threads=2,
                memory_limit=8 * gib,
            ),
            WorkerRow(
                "gpu-0",
                "tcp://10.0.0.21:40331",
                4,
                resources={"GPU": 1.0},
                cpu_percent=97.0,
                memory_bytes=6_120_328_396,
                memory_limit=32 * gib,
                running=1,
                processing=1,
            ),
        ],
        services=[
            ServiceHealth("redis", ok, "redis://redis.workbench:6379/0"),
            ServiceHealth("kafka", ok, "kafka.workbench:9092"),
            ServiceHealth("scheduler", ok, "tcp://scheduler.workbench:8786"),
        ],
        executions=[
            ExecutionRow("exec-1a2b3c", LEADER, "succeeded", 0),
            ExecutionRow("exec-4c5d6e", MEMBER, "cancelled", 0),
            ExecutionRow("exec-9f8e7d", MEMBER, "failed", 1),
        ],
        taken_at=T0 + 2000,
    )


def studies() -> list[StudySummary]:
    rows = [  # number, state, value, seconds, n_estimators, learning_rate, max_depth
        (0, "complete", 0.8012, 41.2, 150, 0.0731, 5),
        (1, "complete", 0.7655, 38.9, 75, 0.0213, 3),
        (2, "pruned", 0.6934, 22.0, 275, 0.2412, 8),
        (3, "complete", 0.8237, 44.5, 200, 0.1109, 6),
        (4, "fail", None, 3.1, 300, 0.2871, 8),
        (5, "complete", 0.8190, 40.3, 225, 0.0912, 6),
        (6, "complete", 0.8421, 46.8, 250, 0.1284, 5),
        (7, "pruned", 0.7012, 21.7, 50, 0.0204, 4),
    ]
    trials = [
        Trial(
            number,
            {"n_estimators": trees, "learning_rate": rate, "max_depth": depth},
            None if state == "pruned" else value,
            state,
            seconds,
            execution_id=f"exec-t{number:02d}",
            error="worker lost: gpu-0 restarted" if state == "fail" else None,
        )
        for number, state, value, seconds, trees, rate, depth in rows
    ]
    return [StudySummary("fraud_xgb", "maximize", trials)]


def models() -> list[ModelEntry]:
    def version(number: int, stage: Stage, f1: float, auc: float, at: float) -> ModelVersion:
        return ModelVersion(
            name="fraud",
            version=number,
            stage=stage,
            aliases=("champion",) if stage is Stage.PRODUCTION else (),
            artifact_path=f"registry/fraud/{number}/model.pkl",
            checksum=f"sha256:{number}e3b0c44298fc1c1",
            flavor="xgboost",
            signature={"inputs": 28, "output": "is_fraud"},
            metrics={"f1_score": f1, "roc_auc": auc},
            params={"n_estimators": 200 + 25 * number, "max_depth": 5},
            lineage={
                "workflow_id": "fraud_lifecycle",
                "execution_id": f"exec-m{number:02d}",
                "task_id": "train",
                "dataset": "data/transactions.csv@9c1d2e",
            },
            created_at=at,
            created_by="ci@workbench",
        )

    versions = [
        version(1, Stage.ARCHIVED, 0.7811, 0.9702, T0 - 86_400),
        version(2, Stage.PRODUCTION, 0.8312, 0.9874, T0 - 3_600),
        version(3, Stage.STAGING, 0.8421, 0.9890, T0 + 1900),
    ]

    def moved(number: int, src: Stage, dst: Stage, why: str, at: float) -> Transition:
        return Transition("fraud", number, src, dst, (), "ci@workbench", why, at)

    history = [
        moved(1, Stage.NONE, Stage.PRODUCTION, "first model", T0 - 86_000),
        moved(2, Stage.NONE, Stage.STAGING, "gates passed", T0 - 3_500),
        moved(2, Stage.STAGING, Stage.PRODUCTION, "f1 +0.05 over v1", T0 - 3_000),
        moved(1, Stage.PRODUCTION, Stage.ARCHIVED, "replaced by v2", T0 - 3_000),
        moved(3, Stage.NONE, Stage.STAGING, "gates passed", T0 + 1910),
    ]
    return [ModelEntry("fraud", versions, history)]


class RecordedWatch:
    """What `watch` returns: like WatchThread, something to `.stop()`."""

    def __init__(self) -> None:
        self.stopped = False

    def stop(self, timeout: float | None = None) -> None:
        self.stopped = True


class RecordedBackend:
    """The Backend interface over the fixed data above."""

    def __init__(self) -> None:
        self.settings = Settings()
        self.calls: list[tuple[str, object]] = []
        self._executions = executions()
        self._watch: RecordedWatch | None = None

    @property
    def where(self) -> str:
        return "cluster 'default' (profile recorded)"

    # -- live ----------------------------------------------------------------------------------
    def watch(
        self,
        on_update: Callable[[WatchUpdate], None],
        on_other: Callable[[Event], None],
        on_mode: Callable[[WatchMode], None],
    ) -> RecordedWatch:
        """Delivers everything at once, on the caller's thread (the app's worker), as the
        watch thread would: each event with its execution as it ends up."""
        owners = {row.execution_id: row.owner or LEADER for row in overview().executions}
        for event in other_events()[:3]:
            on_other(event)
        for execution in self._executions:
            for event in _events_of(execution, owners[execution.execution_id]):
                on_update(WatchUpdate(execution, event, WatchMode.LIVE))
        for event in other_events()[3:]:
            on_other(event)
        self._watch = RecordedWatch()
        return self._watch

    def stop_watch(self) -> None:
        watch, self._watch = self._watch, None
        if watch is not None:
            watch.stop()

    # -- reads ---------------------------------------------------------------------------------
    def overview(self) -> Overview:
        return overview()

    def studies(self) -> list[StudySummary]:
        return studies()

    def models(self) -> list[ModelEntry]:
        return models()

    def dependencies(self, execution_id: str) -> dict[str, list[str]]:
        return {task: list(upstream) for task, upstream in GRAPH.items()}

    # -- actions -------------------------------------------------------------------------------
    def submit(self, path: Path) -> str:
        self.calls.append(("submit", path))
        return "exec-5e6f7a"

    def cancel(self, execution_id: str) -> None:
        self.calls.append(("cancel", execution_id))

    def rerun(self, execution_id: str) -> str:
        self.calls.append(("rerun", execution_id))
        return "exec-0b1c2d"

    def promote(self, name: str, version: int) -> list[Transition]:
        self.calls.append(("promote", (name, version)))
        return []

    def rollback(self, name: str) -> list[Transition]:
        self.calls.append(("rollback", name))
        return []

    def close(self) -> None:
        self.stop_watch()
        self.calls.append(("close", None))
