"""Starting a dev cluster, part by part, each waited for before what depends on it:
Redis and Kafka, then the Dask scheduler, then the workers and the orchestrator instances
together (the slowest part, so they start in parallel). Anything going wrong, Ctrl-C included,
stops whatever had started and removes the state file and the profile."""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from workbench.devcluster import commands
from workbench.devcluster.errors import DevClusterError, DevClusterStartError
from workbench.devcluster.health import (
    Deadline,
    address_open,
    instances_ready,
    redis_answers,
    wait_for,
    workers_joined,
)
from workbench.devcluster.processes import (
    MARKER_ENV,
    free_port,
    spawn,
    start_time,
    stop_groups,
)
from workbench.devcluster.profile import write_profile
from workbench.devcluster.state import STATE_NAME, DevClusterState, ProcessRecord, ProcessRole
from workbench.tasks.devices import visible_gpu_ids

SIMULATED_GPU_WORKER = "simulated-gpu-0"


@dataclass(frozen=True)
class UpOptions:
    workers: int = 2  # CPU workers
    instances: int = 2  # orchestrator instances
    simulate_gpu: bool = False  # one more CPU worker, tagged GPU=1 and named as simulated
    gpus: tuple[str, ...] | None = None  # device ids for GPU workers; None: the visible ones
    redis_url: str | None = None  # a running Redis to use instead of starting one
    kafka: str | bool = True  # True: start a broker; False: none; "host:port": that one
    timeout_s: float = 60.0
    grace_s: float = 10.0  # when stopping after a failed start

    def worker_names(self, gpus: list[str]) -> dict[str, str | None]:
        """Worker name -> the GPU it is given ("" simulated; None a CPU worker)."""
        names: dict[str, str | None] = {f"cpu-{i}": None for i in range(self.workers)}
        names.update({f"gpu-{device}": device for device in gpus})
        if self.simulate_gpu:
            names[SIMULATED_GPU_WORKER] = ""
        return names


class Launcher:
    def __init__(self, profile_path: Path, options: UpOptions) -> None:
        self.options = options
        self.profile_path = profile_path
        self.folder = profile_path.parent
        self.state_path = self.folder / STATE_NAME
        self.logs = self.folder / "logs"
        self.children: list[tuple[str, subprocess.Popen[bytes], Path]] = []
        cluster_id = secrets.token_hex(4)
        self.state = DevClusterState(
            cluster_id=cluster_id,
            folder=str(self.folder),
            profile=str(profile_path),
            namespace=f"workbench-dev-{cluster_id}",
            redis_url=options.redis_url or f"redis://127.0.0.1:{free_port()}/0",
            scheduler_address=f"tcp://127.0.0.1:{free_port()}",
            created_at=time.time(),
        )
        if isinstance(options.kafka, str):
            self.state.kafka = options.kafka
        elif options.kafka:
            self.state.kafka = f"127.0.0.1:{free_port()}"
        self.state.external = [
            name
            for name, given in (("redis", options.redis_url), ("kafka", options.kafka))
            if isinstance(given, str)
        ]
        self.values = self.state.profile_values()
        self.env = self._child_env()

    def _child_env(self) -> dict[str, str]:
        """This environment, less the variables that would point the processes at another
        cluster, plus the marker that tells our processes from any other."""
        hidden = {f"WORKBENCH_{key.upper()}" for key in self.values}
        env = {k: v for k, v in os.environ.items() if k not in hidden}
        env[MARKER_ENV] = self.state.cluster_id
        env["PYTHONUNBUFFERED"] = "1"  # logs as they happen
        return env

    # -- starting ------------------------------------------------------------------------------
    def start(self) -> DevClusterState:
        try:
            self._start()
        except BaseException:
            self.stop_started()
            raise
        return self.state

    def _start(self) -> None:
        options, state = self.options, self.state
        deadline = Deadline(options.timeout_s)
        # Every program looked up before anything starts: a missing one leaves nothing behind.
        gpus = list(options.gpus) if options.gpus is not None else visible_gpu_ids()
        workers = options.worker_names(gpus)
        if not workers:
            raise DevClusterError(
                "no workers to start: give --workers N (N >= 1) or --simulate-gpu"
            )
        redis_port = _port(state.redis_url)
        redis_cmd = None if options.redis_url else commands.redis_command(redis_port, self.folder)
        kafka_port = _port(state.kafka) if state.kafka else 0
        kafka_cmd = commands.broker_command(kafka_port) if options.kafka is True else None
        write_profile(self.profile_path, self.values, self.state_path)
        self.state.write(self.state_path)

        if redis_cmd is None:
            self._check_external("Redis", state.redis_url, redis_answers, "--redis")
        else:
            self._launch(ProcessRole.REDIS, "redis", redis_cmd, redis_port)
            self._wait("redis-server", lambda: redis_answers(state.redis_url), deadline, ["redis"])
        if state.kafka and kafka_cmd is None:
            self._check_external("Kafka", state.kafka, address_open, "--kafka")
        elif kafka_cmd is not None:
            self._launch(ProcessRole.KAFKA, "kafka", kafka_cmd, kafka_port)
            self._wait("the Kafka broker", lambda: address_open(state.kafka or ""), deadline)

        scheduler_port = _port(state.scheduler_address)
        dashboard = free_port() if commands.dashboard_available() else None
        state.dashboard = f"http://127.0.0.1:{dashboard}/status" if dashboard else None
        command = commands.scheduler_command(scheduler_port, dashboard)
        self._launch(ProcessRole.SCHEDULER, "scheduler", command, scheduler_port)
        self._wait("the Dask scheduler", lambda: address_open(state.scheduler_address), deadline)

        for name, device in workers.items():
            command = commands.worker_command(state.scheduler_address, name, gpu=device is not None)
            # A GPU worker sees its GPU only; CPU and simulated ones none, as on a CPU host.
            env = {"CUDA_VISIBLE_DEVICES": device or ""}
            self._launch(ProcessRole.WORKER, name, command, env=env)
        instance_ids = [f"dev-{i}" for i in range(1, options.instances + 1)]
        for instance_id in instance_ids:
            command = commands.orchestrator_command(self.profile_path, instance_id)
            self._launch(ProcessRole.ORCHESTRATOR, instance_id, command)

        self._wait(
            f"the Dask workers ({', '.join(workers)})",
            lambda: workers_joined(state.scheduler_address, set(workers)),
            deadline,
            ["scheduler", *workers],
        )
        from workbench.config import Settings

        settings = Settings(**self.values)  # not load_profile: WORKBENCH_* must not override
        self._wait(
            f"the orchestrator instances ({', '.join(instance_ids)}) and a leader",
            lambda: instances_ready(settings, set(instance_ids)),
            deadline,
            instance_ids,
        )

    def _launch(
        self,
        role: ProcessRole,
        name: str,
        command: list[str],
        port: int | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        log = self.logs / f"{name}.log"
        process = spawn(command, log, {**self.env, **(env or {})}, Path.cwd())
        self.children.append((name, process, log))
        started = start_time(process.pid)  # our child: not reaped, so still there to read
        self.state.add(ProcessRecord(role, name, process.pid, str(log), port, command, started))
        self.state.write(self.state_path)  # at once: an interrupted start can still be stopped

    def _wait(
        self,
        what: str,
        probe: Callable[[], object],
        deadline: Deadline,
        logs: list[str] | None = None,
    ) -> None:
        shown = [self.logs / f"{name}.log" for name in (logs or [self.children[-1][0]])]
        wait_for(probe, what, deadline, self.children, shown)

    def _check_external(
        self, service: str, address: str, probe: Callable[[str], bool], option: str
    ) -> None:
        if not probe(address):
            from workbench.cache.redis_backend import mask_url

            raise DevClusterStartError(
                f"cannot reach {service} at {mask_url(address)} ({option}): start it, fix "
                f"the address, or leave out {option} to have the dev cluster start its own"
            )

    # -- undoing a failed start ----------------------------------------------------------------
    def stop_started(self) -> None:
        handles = {name: process for name, process, _ in self.children}
        for stage in self.state.stop_order():
            stop_groups(
                stage,
                self.state.cluster_id,
                self.options.grace_s,
                [handles[p.name] for p in stage if p.name in handles],
            )
        for path in (self.state_path, self.profile_path):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


def _port(address: str | None) -> int:
    """The port of a URL (`redis://h:p/0`, `tcp://h:p`) or of `host:port`; 0 where none."""
    from urllib.parse import urlsplit

    if not address:
        return 0
    if "://" in address:
        return urlsplit(address).port or 0
    return int(address.rpartition(":")[2])
