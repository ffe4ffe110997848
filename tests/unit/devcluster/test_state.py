"""The state file: what `up` records is what `down` and `status` read back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from workbench.devcluster.errors import DevClusterError
from workbench.devcluster.state import (
    DevClusterState,
    ProcessRecord,
    ProcessRole,
    read_state,
)


def a_state(folder: Path) -> DevClusterState:
    state = DevClusterState(
        cluster_id="abcd1234",
        folder=str(folder),
        profile=str(folder / "profile.yaml"),
        namespace="workbench-dev-abcd1234",
        redis_url="redis://127.0.0.1:7000/0",
        scheduler_address="tcp://127.0.0.1:7001",
        kafka="127.0.0.1:7002",
        created_at=1.5,
    )
    for role, name, pid in [
        (ProcessRole.REDIS, "redis", 10),
        (ProcessRole.KAFKA, "kafka", 11),
        (ProcessRole.SCHEDULER, "scheduler", 12),
        (ProcessRole.WORKER, "cpu-0", 13),
        (ProcessRole.WORKER, "simulated-gpu-0", 14),
        (ProcessRole.ORCHESTRATOR, "dev-1", 15),
    ]:
        state.add(ProcessRecord(role, name, pid, str(folder / f"{name}.log"), None, ["x"], 99))
    return state


def test_a_state_file_reads_back_as_written(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    state = a_state(tmp_path)
    state.write(path)
    assert read_state(path) == state
    assert json.loads(path.read_text())["version"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]  # no temporary file left


def test_no_state_file_means_no_cluster(tmp_path: Path) -> None:
    assert read_state(tmp_path / "state.json") is None


@pytest.mark.parametrize("text", ["{not json", '{"version": 99}', '{"version": 1}', "[]"])
def test_a_foreign_state_file_is_a_clear_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "state.json"
    path.write_text(text)
    with pytest.raises(DevClusterError, match="not one this version wrote"):
        read_state(path)


def test_instances_stop_first_and_redis_last(tmp_path: Path) -> None:
    stages = [[p.name for p in stage] for stage in a_state(tmp_path).stop_order()]
    assert stages == [["dev-1"], ["cpu-0", "simulated-gpu-0"], ["scheduler"], ["kafka"], ["redis"]]


def test_a_process_leads_its_own_group(tmp_path: Path) -> None:
    record = a_state(tmp_path).processes[0]
    assert record.pgid == record.pid
