"""`DevCluster`: the handle on a dev cluster, for the CLI, notebooks and tests.

    with DevCluster.up(workers=2, instances=2, folder=tmp) as cluster:
        wb = cluster.connect()            # a Workbench client of it
        wb.run("examples/fraud_detection.yaml")

`DevCluster.attach()` finds the one a state file records (another process started it).
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from workbench.devcluster.errors import DevClusterError, DevClusterRunningError
from workbench.devcluster.launcher import Launcher, UpOptions
from workbench.devcluster.processes import group_alive, stop_groups
from workbench.devcluster.state import (
    STATE_NAME,
    DevClusterState,
    ProcessRecord,
    ProcessState,
    read_state,
)

if TYPE_CHECKING:
    from workbench.client.overview import Overview
    from workbench.client.workbench import Workbench
    from workbench.config import Settings

DEFAULT_FOLDER = Path(".workbench") / "dev-cluster"
DEFAULT_STATE = DEFAULT_FOLDER / STATE_NAME
GRACE_S = 10.0  # SIGTERM, then SIGKILL after this long


@dataclass(frozen=True)
class ProcessStatus:
    record: ProcessRecord
    state: ProcessState

    def to_json(self) -> dict[str, Any]:
        return {**self.record.to_json(), "state": self.state.value}


class DevCluster:
    def __init__(
        self,
        state: DevClusterState,
        state_path: Path,
        children: Iterable[subprocess.Popen[bytes]] = (),
    ) -> None:
        self.state = state
        self.state_path = state_path
        self._children = list(children)  # held only by the process that started them

    # -- finding and starting ------------------------------------------------------------------
    @classmethod
    def up(
        cls,
        *,
        workers: int = 2,
        instances: int = 2,
        simulate_gpu: bool = False,
        gpus: Iterable[str] | None = None,
        folder: str | Path | None = None,
        profile_path: str | Path | None = None,
        redis_url: str | None = None,
        kafka: str | bool = True,
        timeout_s: float = 60.0,
    ) -> DevCluster:
        """Start a dev cluster and wait until it is healthy. Its profile is `profile_path`, or
        `profile.yaml` in `folder` (default .workbench/dev-cluster); its state file and logs go
        next to it. `kafka`: True starts a broker, False none, "host:port" names one.
        `gpus`: device ids for GPU workers (default: the visible GPUs)."""
        if workers < 0 or instances < 1:
            raise DevClusterError("a dev cluster needs workers >= 0 and instances >= 1")
        if profile_path is None:
            profile_path = Path(folder or DEFAULT_FOLDER) / "profile.yaml"
        profile = Path(profile_path).expanduser().absolute()
        state_path = profile.parent / STATE_NAME
        running = cls.find(state_path)
        if running is not None and running.running():
            raise DevClusterRunningError(
                f"a dev cluster is already running (state file {state_path}, profile "
                f"{running.profile_path}); use it, or stop it first: "
                f"workbench dev-cluster down --state {state_path}"
            )
        options = UpOptions(
            workers=workers,
            instances=instances,
            simulate_gpu=simulate_gpu,
            gpus=None if gpus is None else tuple(gpus),
            redis_url=redis_url,
            kafka=kafka,
            timeout_s=timeout_s,
        )
        launcher = Launcher(profile, options)
        state = launcher.start()
        return cls(state, state_path, [process for _, process, _ in launcher.children])

    @classmethod
    def find(cls, state_path: str | Path | None = None) -> DevCluster | None:
        """The dev cluster a state file records (running or not), or None without one."""
        path = Path(state_path or DEFAULT_STATE).expanduser().absolute()
        state = read_state(path)
        return None if state is None else cls(state, path)

    @classmethod
    def attach(cls, state_path: str | Path | None = None) -> DevCluster:
        found = cls.find(state_path)
        if found is None:
            raise DevClusterError(
                f"no dev cluster is recorded at {state_path or DEFAULT_STATE}: start one with "
                "`workbench dev-cluster up`, or name its state file with --state"
            )
        return found

    # -- looking at it -------------------------------------------------------------------------
    @property
    def profile_path(self) -> Path:
        return Path(self.state.profile)

    @property
    def folder(self) -> Path:
        return Path(self.state.folder)

    def processes(self) -> list[ProcessStatus]:
        for child in self._children:
            child.poll()  # reap ours, or an exited one would look alive
        return [
            ProcessStatus(
                record,
                ProcessState.RUNNING
                if group_alive(record, self.state.cluster_id)
                else ProcessState.GONE,
            )
            for record in self.state.processes
        ]

    def running(self) -> bool:
        return any(p.state is ProcessState.RUNNING for p in self.processes())

    def settings(self) -> Settings:
        """The cluster's settings as recorded (WORKBENCH_* variables do not change them)."""
        from workbench.config import Settings

        return Settings(**self.state.profile_values())

    def overview(self) -> Overview:
        """Instances, leader, workers by shard, service health: as `workbench cluster status`."""
        from workbench.client.overview import cluster_overview

        return cluster_overview(self.settings())

    def connect(self) -> Workbench:
        """A Workbench client of this cluster (close it when done)."""
        from workbench.client.workbench import Workbench

        return Workbench.connect(str(self.profile_path))

    # -- stopping ------------------------------------------------------------------------------
    def down(self, grace_s: float = GRACE_S) -> list[ProcessRecord]:
        """Stop what `up` started, instances first, and remove the state file. Returns the
        processes that were still running. Services named at `up` are left alone."""
        alive = {p.record.pid for p in self.processes() if p.state is ProcessState.RUNNING}
        handles = {child.pid: child for child in self._children}
        for stage in self.state.stop_order():
            stop_groups(
                [p for p in stage if p.pid in alive],
                self.state.cluster_id,
                grace_s,
                [handles[p.pid] for p in stage if p.pid in handles],
            )
        with contextlib.suppress(FileNotFoundError):
            self.state_path.unlink()
        return [p for p in self.state.processes if p.pid in alive]

    def __enter__(self) -> DevCluster:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.down()
