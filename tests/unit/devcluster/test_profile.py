"""The profile a dev cluster writes is one every `--profile` command loads."""

from __future__ import annotations

from pathlib import Path

import pytest

from workbench.config import load_profile
from workbench.devcluster.launcher import UpOptions, _port
from workbench.devcluster.profile import TIMINGS, profile_values, write_profile


def test_the_written_profile_loads_with_the_cluster_addresses(tmp_path: Path) -> None:
    path = tmp_path / "dc" / "profile.yaml"
    values = profile_values(
        scheduler_address="tcp://127.0.0.1:7001",
        redis_url="redis://127.0.0.1:7000/0",
        namespace="workbench-dev-x",
        kafka="127.0.0.1:7002",
    )
    write_profile(path, values, tmp_path / "dc" / "state.json")
    settings = load_profile(path)
    assert settings.scheduler_address == "tcp://127.0.0.1:7001"
    assert settings.redis_url == "redis://127.0.0.1:7000/0"
    assert settings.namespace == "workbench-dev-x"
    assert settings.kafka_bootstrap_servers == "127.0.0.1:7002"
    assert {k: getattr(settings, k) for k in TIMINGS} == TIMINGS
    text = path.read_text()
    assert f"--profile {path}" in text and "dev-cluster down --state" in text


def test_without_kafka_the_profile_names_none() -> None:
    values = profile_values(
        scheduler_address="tcp://h:1", redis_url="redis://h:2/0", namespace="n", kafka=None
    )
    assert "kafka_bootstrap_servers" not in values


def test_worker_names_label_the_simulated_gpu() -> None:
    names = UpOptions(workers=2, simulate_gpu=True).worker_names(["0", "1"])
    assert names == {
        "cpu-0": None,
        "cpu-1": None,
        "gpu-0": "0",
        "gpu-1": "1",
        "simulated-gpu-0": "",
    }


@pytest.mark.parametrize(
    ("address", "port"),
    [
        ("redis://127.0.0.1:6380/0", 6380),
        ("redis://127.0.0.1:1230/0", 1230),
        ("tcp://127.0.0.1:8786", 8786),
        ("127.0.0.1:9092", 9092),
        ("redis://localhost/0", 0),
        (None, 0),
    ],
)
def test_ports_are_read_from_urls_and_addresses(address: str | None, port: int) -> None:
    assert _port(address) == port
