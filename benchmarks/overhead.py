"""Workbench's orchestration overhead against raw Dask, on the same cluster in the same run.

    python benchmarks/overhead.py [--sizes 1000 10000] [--shapes fan-out layered]
                                  [--workers 2] [--repeat 1] [--cache off|cold]

No-op task DAGs (a fan-out, and a layered DAG 10 wide where each task depends on the whole
previous layer) run through raw `distributed` (`client.submit`, futures feeding futures) and
through Workbench (spec validation included). Each run is a fresh child process connected to
the same scheduler, so each reports its own wall time and peak memory (RSS). With
`--cache cold` Workbench also writes every task's result to an empty disk cache, which shows
what caching costs; the default leaves the cache off, like for like with raw Dask.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
WIDTH = 10


def edges(shape: str, n: int) -> dict[str, list[str]]:
    if shape == "fan-out":
        return {f"t{i}": [] for i in range(n)}
    layers = n // WIDTH
    return {
        f"t{layer}_{i}": [f"t{layer - 1}_{j}" for j in range(WIDTH)] if layer else []
        for layer in range(layers)
        for i in range(WIDTH)
    }


def noop(*_: Any) -> None:
    return None


def run_raw(address: str, graph: dict[str, list[str]]) -> tuple[float, float]:
    from distributed import Client, wait

    with Client(address) as client:
        client.submit(noop, pure=False).result()  # warm-up, untimed, as for Workbench
        start, cpu = time.perf_counter(), time.process_time()
        futures: dict[str, Any] = {}
        for key, deps in graph.items():
            futures[key] = client.submit(noop, *[futures[d] for d in deps], key=key, pure=False)
        wait(list(futures.values()))
        return time.perf_counter() - start, time.process_time() - cpu


def run_workbench(address: str, graph: dict[str, list[str]], cache: str) -> tuple[float, float]:
    import asyncio
    import os
    import tempfile

    from workbench.dag.states import WorkflowStatus
    from workbench.orchestrator.orchestrator import DistributedOrchestrator

    spec = {
        "workflow_id": "overhead",
        "imports": ["noop_task"],  # importable: benchmarks/ is on sys.path
        "tasks": [
            {
                "task_id": key,
                "task_type": "noop",
                "dependencies": deps,
                "parameters": {"index": index},
            }
            for index, (key, deps) in enumerate(graph.items())
        ],
    }
    # "cold": every result is written to an empty disk cache (the default strategy locally).
    os.environ["WORKBENCH_CACHE_DIR"] = tempfile.mkdtemp(prefix="wb-bench-cache-")
    os.environ["WORKBENCH_CACHE_KEY_FILE"] = os.path.join(os.environ["WORKBENCH_CACHE_DIR"], "k")
    mode = "use" if cache == "cold" else "off"

    async def main() -> tuple[float, float]:
        async with DistributedOrchestrator("bench", cluster=address) as orchestrator:
            # Warm-up, untimed: imports and first connection, as the raw client gets.
            await orchestrator.run_workflow({**spec, "tasks": spec["tasks"][:1]}, cache="off")
            start, cpu = time.perf_counter(), time.process_time()
            execution = await orchestrator.run_workflow(spec, cache=mode)
            elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
            if execution.status is not WorkflowStatus.SUCCEEDED:
                raise SystemExit(f"workbench run failed: {execution.error}")
            return elapsed, cpu

    return asyncio.run(main())


def child(mode: str, shape: str, n: int, address: str, cache: str) -> None:
    graph = edges(shape, n)
    run = run_raw(address, graph) if mode == "raw" else run_workbench(address, graph, cache)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"wall_s": run[0], "cpu_s": run[1], "peak_rss_mb": peak_mb}))


def serve_cluster(workers: int) -> None:
    """Runs in its own process, like `dask scheduler` + `dask worker` would: the scheduler
    shares no process with the benchmark, so nothing it does there skews the figures."""
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0"
    ) as cluster:
        print(cluster.scheduler_address, flush=True)
        sys.stdin.read()  # until the benchmark closes our stdin


class ClusterProcess:
    def __init__(self, workers: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--serve-cluster", str(workers)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            cwd=ROOT,
        )
        assert self.proc.stdout is not None
        self.address = self.proc.stdout.readline().strip()
        if not self.address:
            raise SystemExit("the benchmark cluster failed to start")

    def wait_idle(self, settle_s: float = 1.0, limit_s: float = 300.0) -> None:
        """Let the scheduler finish forgetting the last run's tasks, so no run pays for another."""
        from distributed import Client

        with Client(self.address) as client:
            deadline = time.monotonic() + limit_s
            idle_since = None
            while time.monotonic() < deadline:
                tasks = client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks))
                if tasks <= 1:  # this very call
                    idle_since = idle_since or time.monotonic()
                    if time.monotonic() - idle_since >= settle_s:
                        return
                else:
                    idle_since = None
                time.sleep(0.2)

    def cpu_s(self) -> float:
        """CPU seconds the scheduler and the workers have used so far: wall times on a small
        shared machine spread widely, the work done far less."""
        from distributed import Client

        with Client(self.address) as client:
            scheduler = client.run_on_scheduler(time.process_time)
            return float(scheduler + sum(client.run(time.process_time).values()))

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def measure(mode: str, shape: str, n: int, cluster: ClusterProcess, cache: str) -> dict[str, float]:
    cluster.wait_idle()
    before = cluster.cpu_s()
    proc = subprocess.run(
        [sys.executable, __file__, "--child", mode, shape, str(n), cluster.address, cache],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"{mode} {shape} {n} failed:\n{proc.stderr[-3000:]}")
    result: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
    result["cluster_cpu_s"] = cluster.cpu_s() - before
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument(
        "--shapes", nargs="+", choices=["fan-out", "layered"], default=["fan-out", "layered"]
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=1, help="Runs per case; the best counts.")
    parser.add_argument(
        "--cache",
        choices=["off", "cold"],
        default="off",
        help="Workbench's result cache: off (like for like with raw Dask, the default) or "
        "cold (every result written to an empty disk cache: what caching costs).",
    )
    parser.add_argument("--child", nargs=5, metavar=("MODE", "SHAPE", "N", "ADDRESS", "CACHE"))
    parser.add_argument("--serve-cluster", type=int, metavar="WORKERS")
    args = parser.parse_args()
    if args.serve_cluster:
        serve_cluster(args.serve_cluster)
        return
    if args.child:
        mode, shape, n, address, cache = args.child
        child(mode, shape, int(n), address, cache)
        return

    print(f"a fresh LocalCluster per case, in its own process: {args.workers} workers x 1 thread")
    print(f"Workbench's result cache: {args.cache}")
    print(
        f"{'dag':<10}{'tasks':>7}{'raw dask s':>12}{'workbench s':>13}{'ratio':>8}"
        f"{'raw MB':>9}{'wb MB':>8}{'client cpu s raw/wb':>21}{'cluster cpu s raw/wb':>22}"
    )
    for n in args.sizes:
        for shape in args.shapes:
            # A fresh cluster per case: no case pays for the scheduler state another left.
            cluster = ClusterProcess(args.workers)
            raw: list[dict[str, float]] = []
            ours: list[dict[str, float]] = []
            try:
                for _ in range(args.repeat):  # alternate, so drift hits both alike
                    raw.append(measure("raw", shape, n, cluster, args.cache))
                    ours.append(measure("workbench", shape, n, cluster, args.cache))
            finally:
                cluster.close()
            best_raw = min(r["wall_s"] for r in raw)
            best_ours = min(r["wall_s"] for r in ours)
            print(
                f"{shape:<10}{n:>7}{best_raw:>12.2f}{best_ours:>13.2f}"
                f"{best_ours / best_raw:>7.2f}x"
                f"{max(r['peak_rss_mb'] for r in raw):>9.0f}"
                f"{max(r['peak_rss_mb'] for r in ours):>8.0f}"
                + f"{_cpu(raw, 'cpu_s')}/{_cpu(ours, 'cpu_s')}".rjust(21)
                + f"{_cpu(raw, 'cluster_cpu_s')}/{_cpu(ours, 'cluster_cpu_s')}".rjust(22),
                flush=True,
            )
    print(
        "ratio = workbench / raw dask (target <= 1.25x); MB = peak RSS of the "
        "orchestrating process (target <= 300 MB at 10,000 tasks); cpu s = the fewest CPU "
        "seconds of the runs: the orchestrating process's during the timed run, the "
        "scheduler's and workers' over the whole child run"
    )


def _cpu(runs: list[dict[str, float]], field: str) -> str:
    return f"{min(r[field] for r in runs):.2f}"


if __name__ == "__main__":
    main()
