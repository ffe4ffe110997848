"""One symbol per state, shared by the terminal UI and the notebooks, so that a state reads
the same in both; each adds its own colours. Keys are the states' values: task and workflow
states, trial states, model stages and service health."""

from __future__ import annotations

from workbench.client.overview import ServiceState
from workbench.dag.states import TaskState, WorkflowStatus

SYMBOLS: dict[str, str] = {
    TaskState.PENDING: "○",
    TaskState.SUBMITTED: "◌",
    TaskState.RUNNING: "▶",
    TaskState.RETRYING: "↻",
    TaskState.SUCCEEDED: "✔",
    TaskState.CACHED: "◆",
    TaskState.FAILED: "✘",
    TaskState.SKIPPED: "⊘",
    TaskState.CANCELLED: "■",
    WorkflowStatus.PENDING: "○",
    WorkflowStatus.RUNNING: "▶",
    WorkflowStatus.SUCCEEDED: "✔",
    WorkflowStatus.FAILED: "✘",
    WorkflowStatus.CANCELLED: "■",
    # trials
    "complete": "✔",
    "pruned": "✂",
    "fail": "✘",
    "retried": "↻",
    "waiting": "○",
    # model stages
    "production": "★",
    "staging": "◐",
    "archived": "▪",
    "none": "·",  # registered, in no stage yet
    # services
    ServiceState.OK: "●",
    ServiceState.DOWN: "●",
    ServiceState.NOT_CONFIGURED: "○",
    ServiceState.NOT_STARTED: "○",
}
