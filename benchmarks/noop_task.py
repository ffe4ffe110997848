"""The no-op task type the overhead benchmark runs through Workbench."""

from pydantic import BaseModel

from workbench.tasks.base import TaskContext
from workbench.tasks.registry import task_type


class NoopParams(BaseModel):
    index: int = 0  # distinct tasks, distinct cache keys (for runs that write the cache)


@task_type("noop", params=NoopParams)
def noop(ctx: TaskContext) -> None:
    """Does nothing: what remains is orchestration overhead."""
    return None
