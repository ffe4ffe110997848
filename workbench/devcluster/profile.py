"""The profile a dev cluster writes: the shape of clusters/dev.yaml, with this cluster's
addresses, so every `--profile` command (run, cluster status, tui, hpo) reaches it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

# The timings of clusters/dev.yaml: a crashed leader is replaced within about two seconds.
TIMINGS: dict[str, int] = {
    "capacity": 4,
    "lease_ms": 2000,
    "renew_interval_ms": 500,
    "renew_deadline_ms": 1500,
    "heartbeat_interval_ms": 500,
    "heartbeat_ttl_ms": 2000,
}


def profile_values(
    *, scheduler_address: str, redis_url: str, namespace: str, kafka: str | None
) -> dict[str, Any]:
    values: dict[str, Any] = {
        "scheduler_address": scheduler_address,
        "redis_url": redis_url,
        "namespace": namespace,
    }
    if kafka:
        values["kafka_bootstrap_servers"] = kafka
    return {**values, **TIMINGS}


def write_profile(path: Path, values: dict[str, Any], state_path: Path) -> None:
    import yaml

    header = (
        "# A dev cluster on this machine, written by `workbench dev-cluster up`.\n"
        f"# Use it: workbench run examples/fraud_detection.yaml --profile {path}\n"
        f"# Stop it: workbench dev-cluster down --state {state_path}\n"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + yaml.safe_dump(values, sort_keys=False), encoding="utf-8")
