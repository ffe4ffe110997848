"""A real cluster-mode deployment on this machine, for fault tests and benchmarks.

    with ClusterHarness(tmp_path, instances=3) as cluster:
        execution_id = cluster.submit(spec)
        cluster.kill(cluster.wait_leader()[0])
        done = cluster.wait_finished([execution_id])

Every server is a real process on a free port, in its own process group (so teardown reaches
its children too): a `redis-server` (optionally persistent, so a restart on the same port keeps
the data), a Dask scheduler with workers (one child process running a `LocalCluster`), and N
`python -m workbench orchestrator` processes that log to files under the harness's folder.
Leaving the block kills whatever is left, whatever happened; on an error it prints the tail
of every log (pytest shows it with the failure).

`python -m tests.support.cluster dask WORKERS PORT` is the Dask child: it prints the
scheduler address and serves until its stdin closes.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import redis
import yaml

from tests.support.redis_server import NOT_INSTALLED, free_port
from workbench.config import Settings, load_profile
from workbench.coordination.base import InstanceInfo, StoredExecution
from workbench.coordination.election import RedisLeaderElection
from workbench.coordination.redis_store import RedisStateStore

REPO_ROOT = Path(__file__).resolve().parents[2]
WORKBENCH = [sys.executable, "-m", "workbench"]
T = TypeVar("T")

# Short but realistic: the defaults of `Settings`, written out so tests can reason about them.
TIMINGS: dict[str, int] = {
    "lease_ms": 2000,
    "renew_interval_ms": 500,
    "renew_deadline_ms": 1500,
    "heartbeat_interval_ms": 500,
    "heartbeat_ttl_ms": 2000,
    "poll_interval_ms": 50,
}


def wait_for(check: Callable[[], T | None], timeout: float, what: str, interval: float = 0.02) -> T:
    """Poll `check` until it returns something truthy; TimeoutError naming `what` if not."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:.1f} s waiting for {what}")
        time.sleep(interval)


def _kill_group(proc: subprocess.Popen[Any], sig: int = signal.SIGKILL) -> None:
    """Signal the whole process group (the process and whatever it started)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def _stop_process(proc: subprocess.Popen[Any], sig: int, timeout: float) -> int:
    """Send `sig`, wait up to `timeout`, then SIGKILL the group. Returns the exit status."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            proc.wait()
    _kill_group(proc)  # children left behind, if any
    return int(proc.returncode)


def _tail(path: Path, lines: int = 60) -> str:
    """The last `lines` lines, runs of lines that differ only in numbers shown once (an
    instance cut off from Redis says the same thing every poll)."""
    if not path.exists():
        return "(no log)"
    collapsed: list[tuple[str, str, int]] = []  # (shape, last line, count)
    for line in path.read_text(errors="replace").splitlines():
        shape = re.sub(r"\d+(\.\d+)?", "#", line)
        if collapsed and collapsed[-1][0] == shape:
            collapsed[-1] = (shape, line, collapsed[-1][2] + 1)
        else:
            collapsed.append((shape, line, 1))
    shown = [line if n == 1 else f"{line}  [x{n}]" for _, line, n in collapsed]
    return "\n".join(shown[-lines:])


# -- Redis ---------------------------------------------------------------------------------------
class RedisProcess:
    """A redis-server on a free port; with `persistent`, every write goes to an append-only file
    (fsync always) in `directory`, so `stop()` + `start()` on the same port keeps the data."""

    def __init__(self, directory: Path, *, persistent: bool = False) -> None:
        self.directory = directory
        self.persistent = persistent
        self.port = free_port()
        self.log_path = directory / "redis.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        executable = shutil.which("redis-server")
        if executable is None:
            raise RuntimeError(NOT_INSTALLED)
        self.directory.mkdir(parents=True, exist_ok=True)
        aof = ["--appendonly", "yes", "--appendfsync", "always"]
        options = [
            *("--port", str(self.port), "--bind", "127.0.0.1", "--save", ""),
            *(aof if self.persistent else ["--appendonly", "no"]),
            *("--dir", str(self.directory), "--logfile", str(self.log_path)),
        ]
        self.proc = subprocess.Popen(
            [executable, *options],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=0.5)
        try:

            def answers() -> bool:
                assert self.proc is not None
                if self.proc.poll() is not None:
                    raise RuntimeError(f"redis-server exited:\n{_tail(self.log_path)}")
                with contextlib.suppress(redis.exceptions.ConnectionError):
                    return bool(client.ping())
                return False

            wait_for(answers, timeout, f"redis-server on port {self.port}")
        finally:
            client.close()

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM: Redis finishes its append-only file and exits."""
        proc, self.proc = self.proc, None
        if proc is not None:
            _stop_process(proc, signal.SIGTERM, timeout)


# -- Dask ----------------------------------------------------------------------------------------
def serve_dask(workers: int, port: int) -> None:
    """The Dask child: a scheduler on `port` and `workers` worker processes of one thread each,
    warmed up (Workbench's worker module imported); prints the address, serves until stdin
    closes."""
    from distributed import Client, LocalCluster

    with LocalCluster(
        n_workers=workers,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        scheduler_port=port,
        host="127.0.0.1",
    ) as cluster:
        with Client(cluster) as client:
            client.run(__import__, "workbench.execution.worker")
        print(cluster.scheduler_address, flush=True)
        sys.stdin.read()


class DaskProcess:
    def __init__(self, directory: Path, workers: int = 2) -> None:
        self.workers = workers
        self.port = free_port()
        self.log_path = directory / "dask.log"
        self.address = ""
        self.proc: subprocess.Popen[str] | None = None

    @property
    def _args(self) -> list[str]:
        return [str(self.workers), str(self.port)]

    def start(self, timeout: float = 60.0) -> None:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tests.support.cluster", "dask", *self._args],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                cwd=REPO_ROOT,
                text=True,
                start_new_session=True,
            )
        line: list[str] = []
        assert self.proc.stdout is not None
        reader = threading.Thread(target=lambda: line.append(self.proc.stdout.readline()))  # type: ignore[union-attr]
        reader.start()
        reader.join(timeout)
        self.address = line[0].strip() if line else ""
        if not self.address:
            self.stop()
            raise RuntimeError(f"the Dask cluster did not start:\n{_tail(self.log_path)}")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        with contextlib.suppress(OSError):
            assert proc.stdin is not None
            proc.stdin.close()  # serve_dask returns and closes the LocalCluster
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
        _kill_group(proc)
        proc.wait()


# -- orchestrator instances ----------------------------------------------------------------------
class InstanceProcess:
    """One `workbench orchestrator` process; its stdout and stderr go to `log_path`."""

    def __init__(
        self, instance_id: str, profile: Path, log_path: Path, env: Mapping[str, str], **extra: Any
    ) -> None:
        self.instance_id = instance_id
        self.log_path = log_path
        command = [
            *WORKBENCH,
            "orchestrator",
            "--profile",
            str(profile),
            "--instance-id",
            instance_id,
        ]
        if extra.get("capacity") is not None:
            command += ["--capacity", str(extra["capacity"])]
        self.proc = self.spawn(command, log_path, env)

    def spawn(
        self, command: list[str], log_path: Path, env: Mapping[str, str]
    ) -> subprocess.Popen[bytes]:
        """Start the process (a subclass may start it elsewhere: another network namespace)."""
        with log_path.open("ab") as log:
            return subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=REPO_ROOT,
                env=dict(env),
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, sig)

    def kill(self) -> None:
        """kill -9, and reap it so it is surely gone when this returns."""
        self.signal(signal.SIGKILL)
        self.proc.wait()

    def terminate(self, timeout: float = 20.0) -> int:
        """SIGTERM (graceful hand-over); SIGKILL after `timeout`. Returns the exit status."""
        return _stop_process(self.proc, signal.SIGTERM, timeout)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


# -- the whole cluster ---------------------------------------------------------------------------
class ClusterHarness:
    """Redis + Dask + `instances` orchestrator processes (ids `i1`, `i2`, ...), under `root`."""

    def __init__(
        self,
        root: Path,
        *,
        instances: int = 2,
        capacity: int = 4,
        workers: int = 2,
        persistent_redis: bool = False,
        timings: Mapping[str, int] | None = None,
        start_timeout: float = 60.0,
        profile_extra: Mapping[str, Any] | None = None,
    ) -> None:
        self.root = root
        self.profile_extra = dict(profile_extra or {})
        self.root.mkdir(parents=True, exist_ok=True)
        self.initial_instances = instances
        self.capacity = capacity
        self.start_timeout = start_timeout
        self.timings = {**TIMINGS, **(timings or {})}
        self.namespace = f"t{secrets.token_hex(4)}"
        self.redis = RedisProcess(root / "redis", persistent=persistent_redis)
        self.dask = DaskProcess(root, workers)
        self.profile_path = root / "profile.yaml"
        self.instances: dict[str, InstanceProcess] = {}
        self._next_id = 1
        self._client: redis.Redis | None = None
        self._store: RedisStateStore | None = None
        self._workbench: Any = None
        self.settings: Settings | None = None

    # -- lifecycle -----------------------------------------------------------------------------
    def __enter__(self) -> ClusterHarness:
        try:
            self.redis.start()
            self.dask.start()
            self.write_profile()
            started = [self.start_instance() for _ in range(self.initial_instances)]
            if started:
                self.wait_live([i.instance_id for i in started], timeout=self.start_timeout)
        except BaseException:
            self.close(failed=True)
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close(failed=exc_type is not None)

    def close(self, *, failed: bool = False) -> None:
        """Kill everything that is left. With `failed`, print every log's tail first."""
        if failed:
            print(self.logs(), file=sys.stderr)
        if self._workbench is not None:
            with contextlib.suppress(Exception):
                self._workbench.close()
            self._workbench = None
        for instance in self.instances.values():
            instance.signal(signal.SIGCONT)  # a stopped process would not die of SIGTERM
            _kill_group(instance.proc)
            instance.proc.wait()
        self.dask.stop()
        if self._client is not None:
            self._client.close()
            self._client, self._store = None, None
        self.redis.stop()

    def write_profile(self, **overrides: Any) -> Path:
        values = {
            "redis_url": self.redis.url,
            "scheduler_address": self.dask.address,
            "namespace": self.namespace,
            "capacity": self.capacity,
            **self.timings,
            **self.profile_extra,
            **overrides,
        }
        self.profile_path.write_text(yaml.safe_dump(values), encoding="utf-8")
        # This process (a client) shares the instances' cache key, not their cache folders.
        self.settings = load_profile(self.profile_path).model_copy(
            update={"cache_dir": self.root / "cache-client", "cache_key_file": self.key_file}
        )
        return self.profile_path

    @property
    def key_file(self) -> Path:
        return self.root / "cache.key"

    def env(self, instance_id: str) -> dict[str, str]:
        """The environment of an instance: its own cache folder, the cluster's shared key."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("WORKBENCH_")}
        env["WORKBENCH_CACHE_DIR"] = str(self.root / f"cache-{instance_id}")
        env["WORKBENCH_CACHE_KEY_FILE"] = str(self.key_file)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p
        )
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def start_instance(
        self, instance_id: str | None = None, *, capacity: int | None = None
    ) -> InstanceProcess:
        if instance_id is None:
            instance_id = f"i{self._next_id}"
            self._next_id += 1
        previous = self.instances.get(instance_id)
        if previous is not None and previous.alive:
            raise RuntimeError(f"instance {instance_id} is already running")
        instance = InstanceProcess(
            instance_id,
            self.profile_path,
            self.root / f"{instance_id}.log",
            self.env(instance_id),
            capacity=capacity,
        )
        self.instances[instance_id] = instance
        return instance

    # -- looking at the cluster ----------------------------------------------------------------
    @property
    def client(self) -> redis.Redis:
        """A plain redis-py client for checks (no retries: an outage raises at once)."""
        if self._client is None:
            self._client = redis.Redis.from_url(
                self.redis.url, socket_connect_timeout=1.0, socket_timeout=2.0
            )
        return self._client

    @property
    def store(self) -> RedisStateStore:
        """The raw Redis state store (not the resilient one): what Redis says, now."""
        if self._store is None:
            self._store = RedisStateStore(self.client, namespace=self.namespace)
        return self._store

    def election(self, instance_id: str = "probe") -> RedisLeaderElection:
        return RedisLeaderElection(
            self.client,
            instance_id,
            namespace=self.namespace,
            lease_ms=self.timings["lease_ms"],
        )

    def leader(self) -> tuple[str, int] | None:
        return self.election().holder()

    def live(self) -> list[InstanceInfo]:
        return self.store.instances()

    def wait_live(self, instance_ids: Iterable[str], timeout: float = 60.0) -> list[InstanceInfo]:
        """Until every one of `instance_ids` heartbeats; fails at once if one of them exited."""
        wanted = set(instance_ids)

        def all_live() -> list[InstanceInfo] | None:
            for iid in wanted:
                proc = self.instances.get(iid)
                if proc is not None and not proc.alive:
                    status, log = proc.proc.returncode, _tail(proc.log_path)
                    raise RuntimeError(f"instance {iid} exited with {status}:\n{log}")
            live = self.live()
            return live if wanted <= {i.instance_id for i in live} else None

        return wait_for(all_live, timeout, f"instances {sorted(wanted)} to heartbeat", 0.1)

    def wait_leader(
        self, timeout: float = 10.0, *, other_than: str | None = None, interval: float = 0.005
    ) -> tuple[str, int]:
        """The lease holder, once there is one (and it is not `other_than`)."""

        def found() -> tuple[str, int] | None:
            holder = self.leader()
            if holder is None or holder[0] == other_than:
                return None
            return holder

        return wait_for(found, timeout, f"a leader other than {other_than}", interval)

    def execution(self, execution_id: str) -> StoredExecution:
        found = self.store.get_execution(execution_id)
        if found is None:
            raise KeyError(execution_id)
        return found

    def wait_finished(
        self, execution_ids: Iterable[str], timeout: float = 60.0
    ) -> dict[str, StoredExecution]:
        ids = list(execution_ids)

        def finished() -> dict[str, StoredExecution] | None:
            found = {i: self.execution(i) for i in ids}
            return found if all(e.status.terminal for e in found.values()) else None

        try:
            return wait_for(finished, timeout, f"{len(ids)} executions to finish", 0.1)
        except TimeoutError as exc:
            states = {i: (e.status.value, e.owner, e.epoch) for i, e in self._states(ids)}
            raise TimeoutError(f"{exc}; (status, owner, epoch) now: {states}") from None

    def _states(self, ids: list[str]) -> Iterator[tuple[str, StoredExecution]]:
        for execution_id in ids:
            found = self.store.get_execution(execution_id)
            if found is not None:
                yield execution_id, found

    # -- clients -------------------------------------------------------------------------------
    @property
    def workbench(self) -> Any:
        """A blocking `Workbench` over a client `DistributedOrchestrator` (member=False)."""
        if self._workbench is None:
            from workbench.client.workbench import Workbench
            from workbench.orchestrator.orchestrator import DistributedOrchestrator

            assert self.settings is not None
            self._workbench = Workbench(
                DistributedOrchestrator("client", settings=self.settings, member=False)
            )
        return self._workbench

    def submit(self, spec: Any) -> str:
        """Submit through the client API; returns the execution id at once."""
        execution_id: str = self.workbench.submit_blocking(spec)
        return execution_id

    def status_json(self) -> dict[str, Any]:
        """`workbench cluster status --json`, run as its own process."""
        done = subprocess.run(
            [*WORKBENCH, "cluster", "status", "--profile", str(self.profile_path), "--json"],
            capture_output=True,
            text=True,
            cwd=REPO_ROOT,
            env=self.env("status"),
            timeout=60,
        )
        if done.returncode != 0:
            raise RuntimeError(f"cluster status failed ({done.returncode}): {done.stderr}")
        report: dict[str, Any] = json.loads(done.stdout)
        return report

    # -- faults --------------------------------------------------------------------------------
    def kill(self, instance_id: str) -> None:
        self.instances[instance_id].kill()

    def pause(self, instance_id: str) -> None:
        self.instances[instance_id].signal(signal.SIGSTOP)

    def resume(self, instance_id: str) -> None:
        self.instances[instance_id].signal(signal.SIGCONT)

    def terminate(self, instance_id: str, timeout: float = 20.0) -> int:
        return self.instances[instance_id].terminate(timeout)

    def logs(self, lines: int = 60) -> str:
        parts = [f"--- {p.name} ---\n{_tail(p, lines)}" for p in sorted(self.root.glob("*.log"))]
        parts.append(f"--- redis.log ---\n{_tail(self.redis.log_path, 20)}")
        return "\n".join(parts)


def main(argv: list[str]) -> None:
    if len(argv) == 3 and argv[0] == "dask":
        serve_dask(int(argv[1]), int(argv[2]))
        return
    raise SystemExit("usage: python -m tests.support.cluster dask WORKERS PORT")


if __name__ == "__main__":
    main(sys.argv[1:])
