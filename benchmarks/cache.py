"""Result cache figures on this machine.

    python benchmarks/cache.py [--repeat 3] [--rows 20000] [--size 1000000] [--rounds 2000]

Cold vs warm: examples/fraud_detection.yaml with an empty cache, then again, in one session
(the cluster started beforehand, untimed), median of --repeat pairs; the warm run must execute
no task body (counted on the workers). Then the same pair as `workbench run` commands.

Latency: `get` of one entry (1 MB by default) from each backend: memory, disk (a temp dir) and
Redis (a redis-server the benchmark starts on a free port), and a raw redis-py GET of the same
bytes timed right beside the Redis backend, alternating, so the backend's own overhead shows as
a ratio. Backend calls only: no sealing, no unpickling.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # workbench and tests.support, from a plain checkout

import redis  # noqa: E402

from benchmarks.timing import LatencyRow, row, time_calls  # noqa: E402
from tests.support.redis_server import RedisServer  # noqa: E402
from workbench.cache.disk import DiskBackend  # noqa: E402
from workbench.cache.memory import MemoryBackend  # noqa: E402
from workbench.cache.redis_backend import RedisBackend  # noqa: E402


def measure_get_latency(size_bytes: int = 1_000_000, rounds: int = 2000) -> list[LatencyRow]:
    payload = os.urandom(size_bytes)
    key = hashlib.sha256(payload).hexdigest()
    rows: list[LatencyRow] = []

    memory = MemoryBackend()
    memory.put(key, payload)
    assert memory.get(key) == payload
    [samples] = time_calls(lambda: memory.get(key), rounds=rounds)
    rows.append(row("memory", samples, target_p50_ms=0.1))

    with tempfile.TemporaryDirectory(prefix="workbench-bench-") as directory:
        disk = DiskBackend(Path(directory))
        disk.put(key, payload)
        assert disk.get(key) == payload
        [samples] = time_calls(lambda: disk.get(key), rounds=rounds)
        disk.close()
    rows.append(row("disk", samples))

    with RedisServer() as server:
        backend = RedisBackend(server.url)
        raw = redis.Redis.from_url(server.url)
        backend.put(key, payload)
        raw.set("bench:raw", payload)
        assert backend.get(key) == payload and raw.get("bench:raw") == payload
        ours, plain = time_calls(
            lambda: backend.get(key), lambda: raw.get("bench:raw"), rounds=rounds
        )
        backend.close()
        raw.close()
    rows.append(row("redis", ours, target_p50_ms=5.0))
    rows.append(row("raw redis-py GET", plain))

    print(f"get latency, one {size_bytes:,}-byte entry, {rounds} rounds each")
    print(f"{'backend':<18}{'p50 ms':>9}{'p99 ms':>9}  target")
    for r in rows:
        target = ""
        if r.target_p50_ms is not None:
            verdict = "met" if r.p50_ms <= r.target_p50_ms else "MISSED"
            target = f"p50 <= {r.target_p50_ms:g} ms: {verdict}"
        print(f"{r.name:<18}{r.p50_ms:>9.3f}{r.p99_ms:>9.3f}  {target}")
    redis_row, raw_row = rows[-2], rows[-1]
    print(
        f"redis / raw redis-py GET: p50 {redis_row.p50_ms / raw_row.p50_ms:.2f}x, "
        f"p99 {redis_row.p99_ms / raw_row.p99_ms:.2f}x",
        flush=True,
    )
    return rows


def measure_cold_warm(repeat: int = 3, rows: int = 20_000) -> None:
    """examples/fraud_detection.yaml with an empty cache (cold) and again (warm), on one local
    cluster started beforehand, so both times are the run alone; then the same as a user types
    it, `workbench run` from a new process each time (the warm one starts no cluster)."""
    import shutil
    import subprocess

    from workbench.client.workbench import Workbench
    from workbench.dag.states import TaskState
    from workbench.tasks.datasets import write_fraud_csv

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        shutil.copy(ROOT / "examples" / "fraud_detection.yaml", folder)
        write_fraud_csv(folder / "data" / "transactions.csv", n_rows=rows, seed=0)
        os.environ["WORKBENCH_CACHE_DIR"] = str(folder / "cache")
        os.environ["WORKBENCH_CACHE_KEY_FILE"] = str(folder / "cache.key")
        spec = folder / "fraud_detection.yaml"
        cold_s: list[float] = []
        warm_s: list[float] = []
        with Workbench.local() as wb:
            wb.run(spec, cache="off")  # untimed: starts the cluster, imports the libraries
            for _ in range(repeat):
                wb.orchestrator.cache.clear()
                start = time.perf_counter()
                cold = wb.run(spec)
                cold_s.append(time.perf_counter() - start)
                bodies_before = _bodies_executed(wb)
                start = time.perf_counter()
                warm = wb.run(spec)
                warm_s.append(time.perf_counter() - start)
                bodies_on_warm = _bodies_executed(wb) - bodies_before
                states = {t.state for t in warm.tasks.values()}
                assert cold.status.value == "succeeded", cold.error
                assert states == {TaskState.CACHED}, f"warm run states: {states}"
                assert bodies_on_warm == 0, f"{bodies_on_warm} tasks ran on the warm run"
        cold_med, warm_med = statistics.median(cold_s), statistics.median(warm_s)
        print(f"\n{spec.name} ({rows:,} rows), in one session, median of {repeat}:")
        print(f"{'run':<8}{'wall s':>10}")
        print(f"{'cold':<8}{cold_med:>10.3f}")
        print(f"{'warm':<8}{warm_med:>10.4f}")
        ratio = cold_med / warm_med
        verdict = "met" if ratio >= 50 else "NOT met"
        print(f"warm is {ratio:,.0f}x faster (target >= 50x: {verdict}); task bodies run warm: 0")

        command = [sys.executable, "-m", "workbench", "run", str(spec), "--json"]
        timings = []
        for label in ("cold", "warm"):
            if label == "cold":
                shutil.rmtree(folder / "cache", ignore_errors=True)
            start = time.perf_counter()
            done = subprocess.run(command, capture_output=True, text=True, cwd=folder)
            timings.append(time.perf_counter() - start)
            assert done.returncode == 0, done.stderr
        print(
            f"as a command (new process, `workbench run`): cold {timings[0]:.2f} s "
            f"(starts a local cluster), warm {timings[1]:.2f} s (needs none)"
        )


def _bodies_executed(wb: object) -> int:
    """Tasks the cluster's workers have executed so far, all workers together."""

    async def count() -> int:
        client = wb.orchestrator.executor.client  # type: ignore[attr-defined]
        done = await client.run(lambda dask_worker: dask_worker.state.executed_count)
        return int(sum(done.values()))

    return int(wb._call(count))  # type: ignore[attr-defined]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1_000_000, help="Entry size in bytes.")
    parser.add_argument("--rounds", type=int, default=2000, help="Timed gets per backend.")
    parser.add_argument("--repeat", type=int, default=3, help="Cold/warm pairs of runs.")
    parser.add_argument("--rows", type=int, default=20_000, help="Rows of the example data.")
    args = parser.parse_args()

    measure_cold_warm(args.repeat, args.rows)
    measure_get_latency(args.size, args.rounds)


if __name__ == "__main__":
    main()
