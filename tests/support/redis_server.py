"""A throwaway redis-server for tests and benchmarks: a free local port, no persistence."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import redis

from workbench.devcluster.processes import free_port

NOT_INSTALLED = (
    "redis-server is not installed: apt-get install redis-server (make test installs it)"
)


@dataclass(frozen=True)
class RedisTls:
    """PEM files for redis-server's TLS port (clients are not asked for certificates)."""

    ca_file: Path
    cert: Path
    key: Path


class RedisServer:
    """`with RedisServer() as server:` starts redis-server and waits until it answers PING;
    `server.url` reaches it; leaving the block terminates it.

    Optional security, for tests of authenticated and encrypted connections: `password` is
    the default user's (`requirepass`), `acl_users` are ACL rules, one per user, e.g.
    "alice on >secret ~* &* +@all"; with `tls` the server also listens for TLS on `tls_port`.
    `url` never holds credentials: tests put them in themselves."""

    def __init__(
        self,
        startup_timeout_s: float = 10.0,
        *,
        password: str | None = None,
        acl_users: Sequence[str] = (),
        tls: RedisTls | None = None,
    ) -> None:
        self.startup_timeout_s = startup_timeout_s
        self.password = password
        self.acl_users = list(acl_users)
        self.tls = tls
        self.port = 0
        self.tls_port = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._dir: tempfile.TemporaryDirectory[str] | None = None

    @property
    def url(self) -> str:
        if self._proc is None:
            raise RuntimeError("the Redis server is not running: use `with RedisServer() as s:`")
        return f"redis://127.0.0.1:{self.port}/0"

    def __enter__(self) -> RedisServer:
        executable = shutil.which("redis-server")
        if executable is None:
            raise RuntimeError(NOT_INSTALLED)
        self._dir = tempfile.TemporaryDirectory(prefix="workbench-redis-")
        for attempt in range(3):  # the free port may be taken before the server binds it
            self.port = free_port()
            options = {
                "--port": str(self.port),
                "--bind": "127.0.0.1",
                "--save": "",  # no snapshots, no append-only file: nothing outlives the test
                "--appendonly": "no",
                "--dir": self._dir.name,
                "--logfile": self._log_path(),  # a file: a pipe nobody reads would fill up
            }
            args = [part for option in options.items() for part in option]
            self._proc = subprocess.Popen(
                [executable, *args, *self._security_args()],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                self._wait_ready()
                return self
            except RuntimeError as exc:
                self._stop()
                if attempt == 2:
                    log = Path(self._log_path())
                    output = log.read_text(errors="replace") if log.exists() else ""
                    self._dir.cleanup()
                    raise RuntimeError(f"redis-server did not start ({exc}):\n{output}") from None
        raise AssertionError("unreachable")

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop()
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    def _security_args(self) -> list[str]:
        args = [] if self.password is None else ["--requirepass", self.password]
        for rule in self.acl_users:
            args += ["--user", *rule.split()]  # one word per argument: redis-server quotes each
        if self.tls is not None:
            self.tls_port = free_port()
            args += [
                *("--tls-port", str(self.tls_port)),
                *("--tls-cert-file", str(self.tls.cert)),
                *("--tls-key-file", str(self.tls.key)),
                *("--tls-ca-cert-file", str(self.tls.ca_file)),
                *("--tls-auth-clients", "no"),
            ]
        return args

    def _wait_ready(self) -> None:
        assert self._proc is not None
        client = redis.Redis(
            host="127.0.0.1", port=self.port, password=self.password, socket_connect_timeout=0.5
        )
        deadline = time.monotonic() + self.startup_timeout_s
        try:
            while time.monotonic() < deadline:
                if self._proc.poll() is not None:
                    raise RuntimeError("redis-server exited")
                try:
                    if client.ping():
                        return
                except redis.exceptions.ConnectionError:
                    time.sleep(0.02)
            raise RuntimeError(f"redis-server did not answer PING in {self.startup_timeout_s} s")
        finally:
            client.close()

    def _log_path(self) -> str:
        assert self._dir is not None
        return str(Path(self._dir.name) / "redis.log")

    def _stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
