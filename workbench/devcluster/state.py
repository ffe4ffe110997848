"""The state file: what one `up` started (each process's group, port and log) and where it
lives, so that `down` and `status` in another process find exactly those and nothing else.

It is written after every process that starts, so a start that is interrupted half-way can
still be stopped with `down`.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from workbench.devcluster.errors import DevClusterError

STATE_VERSION = 1
STATE_NAME = "state.json"


class ProcessRole(StrEnum):
    """In start order; `down` stops them in the reverse order (instances hand over first)."""

    REDIS = "redis"
    KAFKA = "kafka"
    SCHEDULER = "scheduler"
    WORKER = "worker"
    ORCHESTRATOR = "orchestrator"


class ProcessState(StrEnum):
    RUNNING = "running"
    GONE = "gone"


@dataclass(frozen=True)
class ProcessRecord:
    role: ProcessRole
    name: str
    pid: int
    log: str
    port: int | None = None
    command: list[str] = field(default_factory=list)
    started: int | None = None  # start time (see processes.start_time): PIDs get reused

    @property
    def pgid(self) -> int:
        return self.pid  # started in a session of its own: it leads its group

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "role": self.role.value}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ProcessRecord:
        return cls(**{**data, "role": ProcessRole(data["role"])})


@dataclass
class DevClusterState:
    cluster_id: str  # the marker in every process's environment
    folder: str
    profile: str
    namespace: str
    redis_url: str
    scheduler_address: str
    kafka: str | None = None  # bootstrap address; None without Kafka
    external: list[str] = field(default_factory=list)  # services named by the user, not ours
    processes: list[ProcessRecord] = field(default_factory=list)
    dashboard: str | None = None
    created_at: float = 0.0

    def add(self, record: ProcessRecord) -> None:
        self.processes.append(record)

    def by_role(self, role: ProcessRole) -> list[ProcessRecord]:
        return [p for p in self.processes if p.role is role]

    def profile_values(self) -> dict[str, Any]:
        """The settings its profile holds (WORKBENCH_* variables must not change them)."""
        from workbench.devcluster.profile import profile_values

        return profile_values(
            scheduler_address=self.scheduler_address,
            redis_url=self.redis_url,
            namespace=self.namespace,
            kafka=self.kafka,
        )

    def stop_order(self) -> list[list[ProcessRecord]]:
        """Stages for `down`: the last role started is stopped first."""
        stages = [self.by_role(role) for role in reversed(ProcessRole)]
        return [stage for stage in stages if stage]

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["processes"] = [p.to_json() for p in self.processes]
        return {"version": STATE_VERSION, **data}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DevClusterState:
        values = {k: v for k, v in data.items() if k != "version"}
        values["processes"] = [ProcessRecord.from_json(p) for p in data.get("processes", [])]
        return cls(**values)

    def write(self, path: Path) -> None:
        """Atomically: a reader never sees half a file."""
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        temporary.write_text(json.dumps(self.to_json(), indent=2) + "\n", encoding="utf-8")
        temporary.replace(path)


def read_state(path: Path) -> DevClusterState | None:
    """The recorded dev cluster, or None when there is no state file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise DevClusterError(f"cannot read the dev cluster's state file {path}: {exc}") from exc
    try:
        data = json.loads(text)
        if data.get("version") != STATE_VERSION:
            raise ValueError(f"version {data.get('version')!r}, expected {STATE_VERSION}")
        return DevClusterState.from_json(data)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise DevClusterError(
            f"the dev cluster's state file {path} is not one this version wrote ({exc}); stop "
            "its processes by hand (their PIDs are in it), then delete it"
        ) from None
