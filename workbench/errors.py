"""One exception root for the whole project. Every message says what to do about it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


class WorkbenchError(Exception):
    """Root of every error Workbench raises on purpose."""

    exit_code = 1
    # Whether a task that raised this may succeed on another attempt. Bad input never does.
    retryable = False


@dataclass(frozen=True)
class SpecIssue:
    """One problem found in a workflow spec: where it is and what was expected."""

    path: str
    message: str
    line: int | None = None
    column: int | None = None

    def render(self, source: str | None = None) -> str:
        where = source or "<spec>"
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        field = f" {self.path}:" if self.path else ""
        return f"{where}:{field} {self.message}"


class SpecError(WorkbenchError):
    """The workflow spec is invalid. Nothing was executed or written."""

    exit_code = 2

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.issues, self.source))

    def __init__(self, issues: Sequence[SpecIssue], source: str | None = None) -> None:
        self.issues = list(issues)
        self.source = source
        lines = [issue.render(source) for issue in self.issues]
        noun = "problem" if len(lines) == 1 else "problems"
        super().__init__(
            f"invalid workflow spec ({len(lines)} {noun}); nothing was run:\n  "
            + "\n  ".join(lines)
        )


class UnknownTaskTypeError(WorkbenchError):
    exit_code = 2

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.name, self.known))

    def __init__(self, name: str, known: Sequence[str]) -> None:
        self.name = name
        self.known = sorted(known)
        super().__init__(
            f"unknown task type {name!r}; known types: {', '.join(self.known)}. "
            "Register a custom type with @task_type(...) or the 'workbench.tasks' entry point."
        )


class TaskInputError(WorkbenchError):
    """A task did not receive the upstream data it needs (wrong dependencies in the spec)."""

    exit_code = 2


class DataError(WorkbenchError):
    """A dataset cannot be used as asked (missing target column, unreadable file, ...)."""

    exit_code = 2


class ValidationGateError(WorkbenchError):
    """A model did not meet a validation gate declared in the spec."""


class TaskTimeoutError(WorkbenchError):
    """A task attempt ran longer than its timeout_s."""

    retryable = True


class TaskCancelledError(WorkbenchError):
    """A task noticed that it was cancelled (timeout or user cancel) and stopped."""


class ResourceUnavailableError(WorkbenchError):
    """No worker offers what a task asks for in `resources`."""

    exit_code = 2


class ExecutionNotFoundError(WorkbenchError):
    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.execution_id,))

    def __init__(self, execution_id: str) -> None:
        self.execution_id = execution_id
        super().__init__(
            f"no execution {execution_id!r} on this orchestrator; "
            "list executions with orchestrator.list_executions()"
        )


class WorkflowFailedError(WorkbenchError):
    """Raised by APIs that return a result only when the workflow succeeded."""


class CacheError(WorkbenchError):
    """The result cache cannot be used as configured (bad settings, unreachable backend)."""

    exit_code = 2


class CacheIntegrityError(CacheError):
    """A stored cache entry failed its integrity check; it is treated as a miss, never loaded."""

    exit_code = 1


class ProfileError(WorkbenchError):
    """A cluster profile is missing or invalid."""

    exit_code = 2


class ClusterUnavailableError(WorkbenchError):
    """A server cluster mode needs (Redis, the Dask scheduler) cannot be reached."""

    exit_code = 2
