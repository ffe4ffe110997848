"""The no-op task type the overhead benchmark runs through Workbench."""

from workbench.tasks.base import TaskContext
from workbench.tasks.registry import task_type


@task_type("noop")
def noop(ctx: TaskContext) -> None:
    """Does nothing: what remains is orchestration overhead."""
    return None
