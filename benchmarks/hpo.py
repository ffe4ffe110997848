"""Hyperparameter search through Workbench against plain Optuna, on the same machine.

    python benchmarks/hpo.py [--trials 64] [--workers 2] [--sleep-s 1.0] [--seed 0]

The same search both ways: x continuous in [0, 6], maximize score = -(x - 3)^2, a random
sampler with a seed, `--trials` trials, `--workers` (N) at a time, and a trial body that sleeps
`--sleep-s` seconds and does nothing else, so what is left over is orchestration.

- Workbench: `optimize_hyperparameters` on a one-task workflow (task type `sleep_objective`,
  benchmarks/sleep_objective.py, cache strategy none, so every trial really runs), with
  `n_parallel = N`, on a LocalCluster of N workers x 1 thread in a process of its own (as in
  benchmarks/overhead.py); the orchestrator connects to it and runs one untimed warm-up
  workflow first (the trials' code path, a zero-second body). The optimizer's Optuna study
  lives in a private, temporary cache folder.
- Plain Optuna: `study.optimize(objective, n_trials=trials, n_jobs=N)` in this process, the
  objective sleeping the same time and returning the same score (in-memory storage; Optuna
  reseeds the sampler when n_jobs > 1, so its x values differ from Workbench's).

For each: wall time; sequential time = the sum of the trial bodies' own durations, each timed
around the sleep (Workbench: inside the task, which reports it as its `body_s` metric; Optuna:
inside the objective); parallel efficiency = sequential / (N x wall); orchestration overhead per
trial = (N x wall - sequential) / trials. The execution records' task `duration_s` is printed
beside as a cross-check, not used: it starts at the worker's deferred start report, not at the
task's start, so it reads up to ~0.15 s short for a task longer than 0.1 s. For Workbench the
wall is also split: call to the first trial's execution, the trials, last trial to the return.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # workbench and benchmarks.overhead, from a plain checkout

from benchmarks.overhead import ClusterProcess  # noqa: E402

TASK_ID = "objective"
TARGET_EFFICIENCY = 0.9  # at N = 2
TARGET_OVERHEAD_MS = 20.0


@dataclass(frozen=True)
class Outcome:
    name: str
    wall_s: float
    body_s: list[float]  # each completed trial body's own duration
    latency_s: list[float]  # each trial, as its optimizer timed it
    best_x: float
    notes: list[str] = field(default_factory=list)


def score(x: float) -> float:
    return -((x - 3) ** 2)


def run_workbench(address: str, trials: int, workers: int, sleep_s: float, seed: int) -> Outcome:
    import asyncio

    from workbench.dag.states import TaskState, WorkflowStatus
    from workbench.orchestrator.orchestrator import DistributedOrchestrator

    spec = {
        "workflow_id": "hpo_bench",
        "imports": ["sleep_objective"],  # importable: benchmarks/ is on sys.path
        "tasks": [
            {
                "task_id": TASK_ID,
                "task_type": "sleep_objective",
                "parameters": {"sleep_s": sleep_s},
                "cache_strategy": "none",  # every trial runs its body
            }
        ],
    }
    request = {
        "workflow_spec": spec,
        "hyperparameter_config": {
            "search_space": {"x": {"type": "continuous", "min": 0, "max": 6}},
            "max_trials": trials,
            "objective_metric": "score",
            "direction": "maximize",
            "sampler": "random",
            "pruner": "none",
            "seed": seed,
            "n_parallel": workers,
            "target_tasks": [TASK_ID],
        },
    }

    async def main() -> Outcome:
        async with DistributedOrchestrator("bench-hpo", cluster=address) as orchestrator:
            # Warm-up, untimed: the connection, imports, the task module on the workers, the
            # cache planning a trial goes through (strategy none: nothing is written).
            warm = {**spec, "tasks": [{**spec["tasks"][0], "parameters": {"x": 0, "sleep_s": 0}}]}
            warmed = await orchestrator.run_workflow(warm)
            if warmed.status is not WorkflowStatus.SUCCEEDED:
                raise SystemExit(f"the warm-up workflow failed: {warmed.error}")
            called_at = time.time()
            start = time.perf_counter()
            result = await orchestrator.optimize_hyperparameters(request)
            wall = time.perf_counter() - start
            returned_at = time.time()

            failed = [t for t in result.trials if t.state != "complete"]
            if failed:
                raise SystemExit(f"{len(failed)} Workbench trials failed, e.g. {failed[0].error}")
            assert len(result.trials) == trials, f"{len(result.trials)} trials, not {trials}"
            assert len({t.params["x"] for t in result.trials}) == trials, "a repeated x"
            executions = []
            for trial in result.trials:
                assert trial.execution_id is not None
                execution = orchestrator.get_execution(trial.execution_id)
                record = execution.tasks[TASK_ID]
                # SUCCEEDED, not CACHED: the body really ran in this trial.
                assert record.state is TaskState.SUCCEEDED, record.state
                executions.append(execution)
            records = [e.tasks[TASK_ID] for e in executions]
            first = min(e.started_at or called_at for e in executions)
            last = max(e.finished_at or returned_at for e in executions)
            notes = [
                f"Workbench's wall: {first - called_at:.2f} s from the call to the first trial's "
                f"execution, {last - first:.2f} s of trials, {returned_at - last:.2f} s from the "
                "last trial's end to the return",
                f"sum of the task's duration_s in the execution records: "
                f"{sum(r.duration_s or 0.0 for r in records):.2f} s, against "
                f"{sum(r.metrics['body_s'] for r in records):.2f} s timed in the task itself",
            ]
            return Outcome(
                "workbench",
                wall,
                [r.metrics["body_s"] for r in records],
                [t.duration_s for t in result.trials],
                result.best_params["x"],
                notes,
            )

    return asyncio.run(main())


def run_optuna(trials: int, workers: int, sleep_s: float, seed: int) -> Outcome:
    import optuna

    bodies: list[float] = []
    lock = threading.Lock()

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0, 6)
        started = time.perf_counter()
        time.sleep(sleep_s)
        taken = time.perf_counter() - started
        with lock:
            bodies.append(taken)
        return score(x)

    study = optuna.create_study(
        direction="maximize", sampler=optuna.samplers.RandomSampler(seed=seed)
    )
    start = time.perf_counter()
    study.optimize(objective, n_trials=trials, n_jobs=workers)
    wall = time.perf_counter() - start
    done = study.trials
    assert len(done) == trials and len(bodies) == trials
    assert len({t.params["x"] for t in done}) == trials, "two trials sampled the same x"
    latencies = [
        (t.datetime_complete - t.datetime_start).total_seconds()
        for t in done
        if t.datetime_complete is not None and t.datetime_start is not None
    ]
    return Outcome(
        "plain optuna",
        wall,
        bodies,
        latencies,
        study.best_params["x"],
    )


def figures(o: Outcome, trials: int, workers: int) -> tuple[float, float, float]:
    """Sequential seconds, parallel efficiency and overhead per trial (ms)."""
    sequential = sum(o.body_s)
    efficiency = sequential / (workers * o.wall_s)
    overhead_ms = (workers * o.wall_s - sequential) / trials * 1000
    return sequential, efficiency, overhead_ms


def report(outcomes: list[Outcome], trials: int, workers: int, sleep_s: float) -> None:
    print(
        f"{'':<14}{'wall s':>8}{'sequential s':>14}{'efficiency':>12}{'overhead ms/trial':>19}"
        f"{'latency-body ms':>17}{'best x':>8}  targets"
    )
    for o in outcomes:
        sequential, efficiency, overhead_ms = figures(o, trials, workers)
        gap_ms = (statistics.mean(o.latency_s) - statistics.mean(o.body_s)) * 1000
        if workers == 2:
            eff = "met" if efficiency >= TARGET_EFFICIENCY else "MISSED"
        else:
            eff = f"n/a at N = {workers}"
        over = "met" if overhead_ms <= TARGET_OVERHEAD_MS else "MISSED"
        print(
            f"{o.name:<14}{o.wall_s:>8.2f}{sequential:>14.2f}{efficiency:>12.3f}"
            f"{overhead_ms:>19.1f}{gap_ms:>17.1f}{o.best_x:>8.3f}  "
            f"efficiency >= {TARGET_EFFICIENCY:g} at N = 2: {eff}; "
            f"overhead <= {TARGET_OVERHEAD_MS:g} ms: {over}"
        )
    for o in outcomes:
        for note in o.notes:
            print(note)
    print(
        f"sequential = the trial bodies' own durations summed ({trials} x ~{sleep_s:g} s), "
        "each timed around the sleep (Workbench: in the task, reported as its body_s metric; "
        "Optuna: in the objective). efficiency = sequential / (N x wall); overhead = "
        "(N x wall - sequential) / trials; latency-body = the mean trial as its optimizer "
        "timed it (Workbench: spec to result; Optuna: start to complete), less its body."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2, help="N: workers and trials at once.")
    parser.add_argument("--sleep-s", type=float, default=1.0, help="Each trial body's sleep.")
    parser.add_argument("--seed", type=int, default=0, help="The random sampler's seed.")
    args = parser.parse_args()

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no line per trial
    with tempfile.TemporaryDirectory(prefix="wb-bench-hpo-") as tmp:
        # Private cache (and the optimizer's study journal, kept in it): the user's is untouched.
        os.environ["WORKBENCH_CACHE_DIR"] = str(Path(tmp) / "cache")
        os.environ["WORKBENCH_CACHE_KEY_FILE"] = str(Path(tmp) / "cache.key")
        print(
            f"{args.trials} trials of a {args.sleep_s:g} s objective, {args.workers} at a time; "
            f"Workbench on a LocalCluster of {args.workers} workers x 1 thread in its own "
            f"process, plain Optuna with n_jobs={args.workers} in this one",
            flush=True,
        )
        cluster = ClusterProcess(args.workers)
        try:
            cluster.wait_idle()
            ours = run_workbench(
                cluster.address, args.trials, args.workers, args.sleep_s, args.seed
            )
        finally:
            cluster.close()
        plain = run_optuna(args.trials, args.workers, args.sleep_s, args.seed)
    report([ours, plain], args.trials, args.workers, args.sleep_s)


if __name__ == "__main__":
    main()
