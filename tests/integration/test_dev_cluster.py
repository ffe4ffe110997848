"""`workbench dev-cluster`: a real cluster of separate processes on this machine. Started from
Python and from the command line, it runs the fraud example to success, shows its instances and
workers (the simulated GPU labelled), refuses a second start, and stops leaving no process
behind; a start that fails stops whatever it had started."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

import psutil
import pytest
from typer.testing import CliRunner

from tests.support.redis_server import free_port
from workbench.cli.app import app
from workbench.dag.states import WorkflowStatus
from workbench.devcluster import (
    DevCluster,
    DevClusterRunningError,
    DevClusterStartError,
    ProcessState,
)
from workbench.devcluster.processes import MARKER_ENV
from workbench.tasks.datasets import write_fraud_csv

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


@pytest.fixture(scope="module")
def fraud_example(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("example")
    shutil.copy(ROOT / "examples" / "fraud_detection.yaml", folder)
    write_fraud_csv(folder / "data" / "transactions.csv", n_rows=6000, seed=0)  # passes the gates
    return folder / "fraud_detection.yaml"


def marked_processes() -> set[int]:
    """Every process of any dev cluster (they carry the marker in their environment)."""
    found = set()
    for process in psutil.process_iter():
        try:
            if MARKER_ENV in process.environ() and process.status() != psutil.STATUS_ZOMBIE:
                found.add(process.pid)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def process_tree(pids: Iterable[int]) -> set[int]:
    """The PIDs and all their descendants (a nanny's worker process, ...)."""
    tree = set()
    for pid in pids:
        try:
            root = psutil.Process(pid)
            tree |= {pid, *(child.pid for child in root.children(recursive=True))}
        except psutil.NoSuchProcess:
            continue
    return tree


def still_running(pids: Iterable[int]) -> set[int]:
    alive = set()
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                alive.add(pid)
        except psutil.NoSuchProcess:
            continue
    return alive


def test_a_dev_cluster_runs_the_fraud_example_and_stops_clean(
    tmp_path: Path, fraud_example: Path
) -> None:
    folder = tmp_path / "dc"
    with DevCluster.up(workers=1, instances=2, simulate_gpu=True, folder=folder) as cluster:
        processes = cluster.processes()
        assert all(p.state is ProcessState.RUNNING for p in processes)
        roles = sorted(p.record.role.value for p in processes)
        assert (
            roles
            == ["kafka", "orchestrator", "orchestrator", "redis", "scheduler"] + ["worker"] * 2
        )
        pids = process_tree(p.record.pid for p in processes)
        assert cluster.profile_path == folder.absolute() / "profile.yaml"
        assert (folder / "state.json").is_file() and (folder / "logs" / "dev-1.log").is_file()

        with pytest.raises(DevClusterRunningError, match="dev-cluster down --state"):
            DevCluster.up(workers=1, instances=1, folder=folder)

        with cluster.connect() as workbench:  # a client through the written profile
            execution = workbench.run(fraud_example)
        assert execution.status is WorkflowStatus.SUCCEEDED, execution.to_summary()

        shown = CliRunner().invoke(
            app, ["dev-cluster", "status", "--state", str(folder / "state.json")]
        )
        assert shown.exit_code == 0, shown.output
        for expected in ("dev-1", "dev-2", "leader", "cpu-0", "simulated-gpu-0", "GPU=1"):
            assert expected in shown.output
        assert "succeeded" in shown.output  # the example's execution
        overview = cluster.overview()
        assert {w.name: w.shard for w in overview.workers} == {
            "cpu-0": "cpu",
            "simulated-gpu-0": "GPU=1",
        }
    assert still_running(pids) == set()
    assert not (folder / "state.json").exists()


def workbench_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "workbench", "dev-cluster", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def test_the_cli_starts_a_detached_cluster_and_stops_exactly_it(tmp_path: Path) -> None:
    state = tmp_path / ".workbench" / "dev-cluster" / "state.json"
    try:
        started = workbench_cli(
            "up", "--workers", "1", "--instances", "1", "--no-kafka", cwd=tmp_path
        )
        assert started.returncode == 0, started.stderr
        assert f"--profile {state.parent / 'profile.yaml'}" in started.stdout
        recorded = json.loads(state.read_text())
        assert "kafka_bootstrap_servers" not in (state.parent / "profile.yaml").read_text()
        pids = process_tree(p["pid"] for p in recorded["processes"])
        assert still_running(pids) == pids  # they outlived the command

        refused = workbench_cli("up", cwd=tmp_path)
        assert refused.returncode == 2 and "already running" in refused.stderr

        status = workbench_cli("status", "--json", cwd=tmp_path)
        assert status.returncode == 0, status.stderr
        report = json.loads(status.stdout)
        assert {p["state"] for p in report["processes"]} == {"running"}
        assert [i["instance_id"] for i in report["overview"]["instances"]] == ["dev-1"]
        assert report["overview"]["leader"]["instance_id"] == "dev-1"

        stopped = workbench_cli("down", cwd=tmp_path)
        assert stopped.returncode == 0, stopped.stderr
        assert "stopped 4 processes" in stopped.stdout
        assert still_running(pids) == set()
        assert not state.exists()
        again = workbench_cli("down", cwd=tmp_path)
        assert again.returncode == 0 and "nothing to stop" in again.stdout
    finally:
        leftover = DevCluster.find(state)
        if leftover is not None:
            leftover.down(grace_s=2)


@pytest.mark.parametrize(
    "options",
    [
        pytest.param({"redis_url": "redis://127.0.0.1:1/0"}, id="unreachable-redis"),
        pytest.param({"kafka": f"127.0.0.1:{free_port()}"}, id="unreachable-kafka"),
    ],
)
def test_a_failed_start_leaves_nothing_running(tmp_path: Path, options: dict[str, object]) -> None:
    """The Kafka case fails after its own Redis started: that one is stopped again."""
    before = marked_processes()
    children = {p.pid for p in psutil.Process().children(recursive=True)}
    with pytest.raises(DevClusterStartError, match="cannot reach"):
        DevCluster.up(workers=1, instances=1, folder=tmp_path, **options)  # type: ignore[arg-type]
    assert marked_processes() - before == set()
    now = {p.pid for p in psutil.Process().children(recursive=True)}
    assert still_running(now - children) == set()
    assert not (tmp_path / "state.json").exists() and not (tmp_path / "profile.yaml").exists()
