"""Can every task be placed on some worker? Checked before anything is submitted, so a task
asking for a GPU that no worker has fails at once instead of waiting forever in Dask."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from workbench.execution.base import WorkerInfo
from workbench.spec.models import Resources


def _fits(worker: WorkerInfo, resources: Resources) -> bool:
    for name, amount in resources.dask_resources().items():
        if worker.resources.get(name, 0.0) < amount:
            return False
    return not (
        resources.memory is not None
        and worker.memory_limit
        and worker.memory_limit < resources.memory
    )


def _describe(worker: WorkerInfo) -> str:
    offered = ", ".join(f"{k}={v:g}" for k, v in sorted(worker.resources.items())) or "none"
    memory = f", memory {worker.memory_limit / 2**30:.1f} GiB" if worker.memory_limit else ""
    return f"{worker.name} (resources: {offered}{memory})"


def _needs(resources: Resources) -> str:
    parts = [f"{k}={v:g}" for k, v in sorted(resources.dask_resources().items())]
    if resources.memory is not None:
        parts.append(f"memory={resources.memory / 2**30:.1f} GiB")
    return ", ".join(parts)


def constrained(resources: Resources) -> bool:
    """Needs something not every worker has (a resource, an amount of memory)."""
    return bool(resources.dask_resources()) or resources.memory is not None


def placement_errors(
    tasks: Mapping[str, Resources], workers: Iterable[WorkerInfo]
) -> dict[str, str]:
    """task_id -> why no worker can run it; empty when every task fits somewhere."""
    pool = list(workers)
    errors: dict[str, str] = {}
    for task_id, resources in tasks.items():
        if not constrained(resources):
            continue
        if any(_fits(worker, resources) for worker in pool):
            continue
        existing = "; ".join(_describe(w) for w in pool) or "no workers at all"
        errors[task_id] = (
            f"task {task_id!r} needs {_needs(resources)} but no worker offers it. "
            f"Workers: {existing}. Start a worker with the capability "
            f'(e.g. `dask worker SCHEDULER --resources "GPU=1"`) or change the task\'s resources.'
        )
    return errors
