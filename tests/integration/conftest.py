from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def dask_cluster() -> Iterator[object]:
    """A real Dask cluster of separate processes: two CPU workers and one GPU-tagged worker."""
    from distributed import Nanny, Scheduler, SpecCluster

    cpu = {"cls": Nanny, "options": {"nthreads": 2, "memory_limit": "2GiB"}}
    gpu = {
        "cls": Nanny,
        "options": {"nthreads": 1, "memory_limit": "2GiB", "resources": {"GPU": 1}},
    }
    cluster = SpecCluster(
        scheduler={"cls": Scheduler, "options": {"dashboard_address": None}},
        workers={"cpu-0": cpu, "cpu-1": cpu, "gpu-0": gpu},
    )
    from distributed import Client

    with Client(cluster) as client:  # warm: workers import Workbench once, as in a live cluster
        client.run(__import__, "workbench.execution.worker")
    try:
        yield cluster
    finally:
        cluster.close()
