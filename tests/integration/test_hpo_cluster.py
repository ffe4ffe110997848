"""A hyperparameter study in cluster mode, with real processes: the study lives in the cluster's
Redis and survives the death (kill -9) of the instance running it."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_local_execution import probe, workflow
from tests.support.cluster import ClusterHarness, wait_for
from workbench.coordination.base import JobKind, StoredExecution
from workbench.dag.states import WorkflowStatus
from workbench.hpo.optimizer import RETRIED, RETRY_OF, OptimizationResult
from workbench.hpo.storage import study_storage
from workbench.orchestrator.orchestrator import DistributedOrchestrator

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

MAX_TRIALS = 8


def probe_study(ledger: Path) -> dict[str, Any]:
    """Trials of one probe task that sleeps a second and reports `total` = its `value`."""
    spec = {**workflow(probe("score", ledger, sleep_s=1.0)), "workflow_id": "probe_study"}
    return {
        "workflow_spec": spec,
        "hyperparameter_config": {
            "search_space": {"value": {"type": "continuous", "min": 0.0, "max": 10.0}},
            "max_trials": MAX_TRIALS,
            "objective_metric": "total",
            "target_tasks": ["score"],
            "sampler": "random",
            "pruner": "none",
            "n_parallel": 2,
            "seed": 3,
        },
    }


def test_a_study_resumes_on_another_instance_when_its_owner_is_killed(tmp_path: Path) -> None:
    import optuna

    with ClusterHarness(tmp_path, instances=2) as cluster:
        cluster.wait_leader()
        assert cluster.settings is not None
        settings = cluster.settings

        async def optimize() -> OptimizationResult:
            client = DistributedOrchestrator("client", settings=settings, member=False)
            try:
                result: OptimizationResult = await client.optimize_hyperparameters(
                    probe_study(tmp_path / "ledger.jsonl")
                )
                return result
            finally:
                await client.close()

        def assigned_study() -> StoredExecution | None:
            studies = [e for e in cluster.store.list_executions() if e.kind is JobKind.STUDY]
            return next((e for e in studies if e.owner), None)

        with ThreadPoolExecutor(1) as pool:
            running = pool.submit(asyncio.run, optimize())
            study = wait_for(assigned_study, 60, "the study to be assigned")
            storage = study_storage(settings, study.execution_id)

            def trials(*states: Any) -> list[optuna.trial.FrozenTrial]:
                loaded = optuna.load_study(study_name=study.execution_id, storage=storage)
                return loaded.get_trials(states=states or None)

            complete = optuna.trial.TrialState.COMPLETE
            before = wait_for(
                lambda: len(trials(complete)) >= 2 and trials(complete), 60, "2 trials"
            )
            owner = study.owner
            assert owner is not None
            cluster.kill(owner)
            result = running.result(timeout=120)

        after = cluster.execution(study.execution_id)
        assert after.status is WorkflowStatus.SUCCEEDED, cluster.logs()
        assert after.owner != owner and after.epoch == 2, (after.owner, after.epoch)
        states = [t.state for t in result.trials]
        # The budget is spent exactly: trials cut off by the kill were asked again.
        assert states.count("complete") == MAX_TRIALS, result.trials
        assert set(states) <= {"complete", "retried"}, states
        final = {t.number: t for t in trials()}
        # Completed before the kill: kept as they were, never asked again.
        for trial in before:
            assert final[trial.number].state is complete
            assert final[trial.number].value == trial.value
        retried = [t for t in final.values() if t.user_attrs.get(RETRIED)]
        retries = {t.user_attrs[RETRY_OF]: t for t in final.values() if RETRY_OF in t.user_attrs}
        assert set(retries) == {t.number for t in retried}
        for trial in retried:
            if trial.params:  # a trial cut off before it drew its values draws them afresh
                assert retries[trial.number].params == trial.params
            assert retries[trial.number].state is complete
        # The new owner's sampler moved on: no value drawn twice, apart from the retries.
        fresh = [t.params["value"] for t in final.values() if RETRY_OF not in t.user_attrs]
        assert len(set(fresh)) == len(fresh), fresh
        assert result.best_value == max(t.value for t in result.trials if t.value is not None)
        print(f"killed {owner}; resumed by {after.owner}; trials asked again: {sorted(retries)}")


def test_workbench_hpo_with_a_profile_runs_the_study_on_the_cluster(tmp_path: Path) -> None:
    import json
    import subprocess

    from tests.support.cluster import REPO_ROOT, WORKBENCH

    request = probe_study(tmp_path / "ledger.jsonl")
    request["hyperparameter_config"].update(max_trials=3, timeout_s=120)
    (tmp_path / "study.json").write_text(json.dumps(request), encoding="utf-8")
    with ClusterHarness(tmp_path, instances=1) as cluster:
        cluster.wait_leader()
        profile = str(cluster.profile_path)
        done = subprocess.run(
            [*WORKBENCH, "hpo", str(tmp_path / "study.json"), "--json", "--profile", profile],
            capture_output=True,
            text=True,
            cwd=REPO_ROOT,
            env=cluster.env("cli"),
            timeout=120,
        )
        assert done.returncode == 0, done.stderr + cluster.logs()
        result = json.loads(done.stdout)
        study = cluster.execution(result["study_name"])
    assert study.kind is JobKind.STUDY and study.owner == "i1"
    assert [t["state"] for t in result["trials"]] == ["complete"] * 3
    assert result["best_value"] == max(t["value"] for t in result["trials"])
