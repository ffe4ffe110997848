"""The execution state machine and the execution record. Pure: no Dask, no Redis, no clock."""

from workbench.dag.machine import DAGStateMachine
from workbench.dag.records import ExecutionError, TaskRecord, WorkflowExecution
from workbench.dag.states import TaskState, WorkflowStatus

__all__ = [
    "DAGStateMachine",
    "ExecutionError",
    "TaskRecord",
    "TaskState",
    "WorkflowExecution",
    "WorkflowStatus",
]
