"""Failover figures on this machine: how fast cluster mode notices and replaces a lost leader.

    python benchmarks/failover.py [--rounds 2000]

Each section is one `measure_*` function that `main` calls in turn (the leader-kill and
hand-over sections come later).

Lock latency: one uncontended acquire + release on a redis-server the benchmark starts on a
free port, three ways, taken in turn each round so drift hits them alike: a redis-py `Lock`,
our `RedisLeaderElection` (`try_acquire` + `release`: Lua scripts that also take a fencing
token) and a raw `SET NX PX` + `DEL`. Each is two round trips; the ratios show what the
scripts cost over the plain commands.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # workbench and tests.support, from a plain checkout

import redis  # noqa: E402

from tests.support.redis_server import RedisServer  # noqa: E402
from workbench.coordination.election import DEFAULT_LEASE_MS, RedisLeaderElection  # noqa: E402

WARMUP = 50


@dataclass(frozen=True)
class LatencyRow:
    name: str
    p50_ms: float
    p99_ms: float


def row(name: str, samples_ns: list[int]) -> LatencyRow:
    cuts = statistics.quantiles(samples_ns, n=100, method="inclusive")
    return LatencyRow(name, cuts[49] / 1e6, cuts[98] / 1e6)


def time_calls(*calls: Callable[[], object], rounds: int) -> list[list[int]]:
    """Nanoseconds per call for each of `calls`, taken in turn each round."""
    for _ in range(WARMUP):
        for call in calls:
            call()
    samples: list[list[int]] = [[] for _ in calls]
    clock = time.perf_counter_ns
    for _ in range(rounds):
        for call, taken in zip(calls, samples, strict=True):
            start = clock()
            call()
            taken.append(clock() - start)
    return samples


def measure_lock_latency(rounds: int = 2000) -> list[LatencyRow]:
    lease_s = DEFAULT_LEASE_MS / 1000
    with RedisServer() as server:
        client = redis.Redis.from_url(server.url)
        lock = client.lock("bench:lock", timeout=lease_s)
        election = RedisLeaderElection(
            client, "bench", namespace="bench", lease_ms=DEFAULT_LEASE_MS
        )

        def redis_py_lock() -> None:
            assert lock.acquire(blocking=False)
            lock.release()

        def ours() -> None:
            token = election.try_acquire()
            assert token is not None
            assert election.release(token)

        def raw() -> None:
            assert client.set("bench:raw", b"1", nx=True, px=DEFAULT_LEASE_MS)
            client.delete("bench:raw")

        samples = time_calls(redis_py_lock, ours, raw, rounds=rounds)
        client.close()
    names = ["redis-py Lock", "RedisLeaderElection", "raw SET NX PX + DEL"]
    rows = [row(name, taken) for name, taken in zip(names, samples, strict=True)]

    base = rows[-1]
    print(f"uncontended acquire + release, {rounds} rounds each (lease {DEFAULT_LEASE_MS} ms)")
    print(f"{'':<22}{'p50 ms':>9}{'p99 ms':>9}{'p50 / raw':>11}{'p99 / raw':>11}")
    for r in rows:
        print(
            f"{r.name:<22}{r.p50_ms:>9.3f}{r.p99_ms:>9.3f}"
            f"{r.p50_ms / base.p50_ms:>10.2f}x{r.p99_ms / base.p99_ms:>10.2f}x"
        )
    print(f"(p50 RedisLeaderElection / redis-py Lock: {rows[1].p50_ms / rows[0].p50_ms:.2f}x)")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2000, help="Timed rounds per lock kind.")
    args = parser.parse_args()

    measure_lock_latency(args.rounds)


if __name__ == "__main__":
    main()
