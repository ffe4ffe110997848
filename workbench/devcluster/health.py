"""Waiting until each part of a starting dev cluster answers, with one deadline for all.

A probe returns something truthy once its part is up. A started process that exits meanwhile
ends the wait at once, with its log, rather than after the whole timeout.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from workbench.devcluster.errors import DevClusterStartError
from workbench.devcluster.processes import port_open, tail

if TYPE_CHECKING:
    import subprocess

    from workbench.config import Settings

T = TypeVar("T")
POLL_S = 0.2


class Deadline:
    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self.at = time.monotonic() + timeout_s

    def left(self) -> float:
        return max(0.0, self.at - time.monotonic())


Watched = Sequence[tuple[str, "subprocess.Popen[bytes]", Path]]  # (name, process, log)


def wait_for(
    probe: Callable[[], T], what: str, deadline: Deadline, watched: Watched, logs: Sequence[Path]
) -> T:
    """`probe()` until truthy; DevClusterStartError naming `what` (with the tail of `logs`) when
    the deadline passes, or naming the process of `watched` that exited."""
    from tenacity import RetryError, Retrying, retry_if_result, stop_after_delay, wait_fixed

    def attempt() -> T:
        for name, process, log in watched:
            if process.poll() is not None:
                raise DevClusterStartError(
                    f"{name} exited with status {process.returncode} while waiting for {what}; "
                    f"its log ({log}) ends:\n{tail(log)}"
                )
        return probe()

    retrying = Retrying(
        stop=stop_after_delay(deadline.left()),
        wait=wait_fixed(POLL_S),
        retry=retry_if_result(lambda value: not value),
    )
    try:
        return retrying(attempt)
    except RetryError:
        shown = "\n".join(f"--- {log} ---\n{tail(log)}" for log in logs)
        raise DevClusterStartError(
            f"{what} did not come up within {deadline.timeout_s:g} s (raise it with --timeout); "
            f"the logs:\n{shown}"
        ) from None


def redis_answers(url: str) -> bool:
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=1.0)
    try:
        return bool(client.ping())
    except redis.exceptions.RedisError:
        return False
    finally:
        client.close()


def address_open(address: str) -> bool:
    """One of `host:port[,host:port...]` (or `tcp://host:port`) accepts TCP connections."""
    for server in address.split(","):
        host, _, port = server.strip().removeprefix("tcp://").rpartition(":")
        if port.isdigit() and port_open(host, int(port)):
            return True
    return False


def workers_joined(scheduler_address: str, names: set[str]) -> bool:
    from workbench.client.overview import scheduler_workers

    rows, _ = scheduler_workers(scheduler_address)
    return names <= {row.name for row in rows}


def instances_ready(settings: Settings, instance_ids: set[str]) -> bool:
    """Every instance heartbeats, and one of them holds the lease."""
    from workbench.client.overview import ServiceState, cluster_overview

    report = cluster_overview(settings)
    if report.service("redis").state is not ServiceState.OK:
        return False
    live = {row.instance_id for row in report.instances}
    return instance_ids <= live and report.leader is not None
