"""DistributedOrchestrator: validates workflows, runs them on Dask, keeps their records."""

from __future__ import annotations

import asyncio
import logging
import pickle
import secrets
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.cache.fingerprints import FileFingerprints
from workbench.cache.result_cache import ResultCache
from workbench.config import Settings, load_profile
from workbench.coordination.base import JobKind
from workbench.dag.records import TaskRecord, WorkflowExecution
from workbench.dag.states import TaskState
from workbench.errors import ClusterUnavailableError, ExecutionNotFoundError, WorkbenchError
from workbench.events.bus import InProcessBus, Subscription
from workbench.events.models import SEQ_EPOCH_SHIFT
from workbench.execution.cache_plan import CacheMode, plan_cache
from workbench.execution.dag_executor import ExecutionRun
from workbench.execution.dask_executor import DaskExecutor
from workbench.execution.invocation import TaskInvocation
from workbench.execution.run_cache import RunCache
from workbench.hpo.pruning import PruningWatch, TrialLink
from workbench.orchestrator.instance import ClusterInstance, summary_key
from workbench.orchestrator.owned import stored_workflow
from workbench.registry.address import RegistryAddress
from workbench.spec.models import WorkflowSpec
from workbench.tasks.base import TaskResult
from workbench.tasks.checks import CheckedWorkflow, load_workflow

if TYPE_CHECKING:
    from workbench.coordination.base import StoredExecution
    from workbench.events.kafka import KafkaPublisher

log = logging.getLogger(__name__)

WorkflowInput = CheckedWorkflow | WorkflowSpec | Mapping[str, Any] | str | Path


class DistributedOrchestrator:
    """One orchestrator instance. Without a profile it runs everything locally: a Dask
    LocalCluster it starts on first use, an in-process event bus and in-memory records.

        orchestrator = DistributedOrchestrator("instance-1")
        execution_id = await orchestrator.submit_ml_workflow(workflow)
        execution = await orchestrator.wait_for_execution(execution_id)

    With a profile (or WORKBENCH_REDIS_URL) it is one instance of a cluster: executions live in
    Redis, the leader assigns them to instances, and any instance (or a client, `member=False`)
    submits, follows, cancels and fetches results.
    """

    def __init__(
        self,
        instance_id: str = "local",
        *,
        settings: Settings | None = None,
        cluster: Any = None,
        bus: InProcessBus | None = None,
        profile: str | Path | None = None,
        member: bool = True,
    ) -> None:
        self.instance_id = instance_id
        if settings is None:
            settings = load_profile(profile) if profile is not None else Settings()
        self.settings = settings
        # Handed to every task: where the model registry of these settings lives.
        self.registry_address = RegistryAddress.from_settings(settings)
        self.cluster = (
            ClusterInstance(instance_id, settings, member=member) if settings.cluster_mode else None
        )
        self.bus = bus or InProcessBus()
        self.executor = DaskExecutor(self.settings, cluster=cluster)
        self.executor.on_worker_event(self._route_worker_event)
        self._executions: dict[str, WorkflowExecution] = {}
        self._workflows: dict[str, CheckedWorkflow] = {}  # what each local execution runs
        self._runs: dict[str, ExecutionRun] = {}
        self._tasks: dict[str, asyncio.Task[WorkflowExecution]] = {}
        self._kept: OrderedDict[str, ExecutionRun] = OrderedDict()
        self._start_lock: asyncio.Lock | None = None
        self._cache: ResultCache | None = None
        self.publisher: KafkaPublisher | None = None
        self._publishing: Subscription | None = None
        self._fingerprints: FileFingerprints | None = None

    # -- lifecycle -----------------------------------------------------------------------------
    async def start(self) -> None:
        if self._start_lock is None:
            self._start_lock = asyncio.Lock()
        async with self._start_lock:
            if self.cluster is None or self.cluster.member:  # a pure client emits nothing
                await self._start_publisher()
            if self.cluster is None:
                await self.executor.start()
                return
            await self.cluster.connect()
            if self.cluster.member and self.cluster.cluster is None:
                try:
                    await self.executor.start()
                except ConnectionError as exc:
                    raise ClusterUnavailableError(str(exc)) from None
                await self.cluster.join(
                    self._prepare_run,
                    self.bus.subscribe,
                    self._forget,
                    self._drive_study,
                    self.bus.publish,
                    self.executor.workers,
                )

    async def _start_publisher(self) -> None:
        """With Kafka configured, every event on this instance's bus also goes to Kafka (a
        bounded queue: publishing never slows or fails a workflow)."""
        if self.publisher is not None or not self.settings.kafka_bootstrap_servers:
            return
        from workbench.events.kafka import KafkaPublisher

        self.publisher = KafkaPublisher(self.settings, client_id=self.instance_id)
        await self.publisher.start()
        self._publishing = self.bus.subscribe(self.publisher.publish)

    async def close(self) -> None:
        if self.cluster is not None:
            await self.cluster.leave()
        for run in list(self._runs.values()):
            run.cancel("the orchestrator is shutting down")
        if self._tasks:
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        self._kept.clear()
        await self.executor.close()
        if self.publisher is not None:
            if self._publishing is not None:
                self._publishing.close()
            await self.publisher.close()
            self.publisher = None
        if self._cache is not None:
            self._cache.close()
            self._cache = None

    async def __aenter__(self) -> DistributedOrchestrator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- workflows -----------------------------------------------------------------------------
    @property
    def cache(self) -> ResultCache:
        """The result cache (built on first use from the settings)."""
        if self._cache is None:
            self._cache = ResultCache(self.settings)
        return self._cache

    async def submit_ml_workflow(
        self, workflow: WorkflowInput, *, cache: CacheMode | str = CacheMode.USE
    ) -> str:
        """Validate and start a workflow; returns its execution id at once.

        An invalid spec raises SpecError before anything runs or is written. `cache` is
        "use" (reuse and store results), "refresh" (recompute and overwrite) or "off".
        The cluster starts on first need: a run served wholly from the cache needs none.
        """
        checked = await asyncio.to_thread(load_workflow, workflow)
        return await self._submit(checked, CacheMode(cache))

    async def _submit(
        self, checked: CheckedWorkflow, mode: CacheMode, trial: TrialLink | None = None
    ) -> str:
        """`trial`: the run is a trial of a hyperparameter study, which may prune it."""
        if self.cluster is not None:
            await self.start()
            options = {} if trial is None else {"trial": trial.to_json()}
            return await self.cluster.submit(checked, mode.value, options)
        execution_id = f"{checked.spec.workflow_id}-{secrets.token_hex(4)}"
        execution = _new_execution(execution_id, checked)
        run = self._new_run(checked, execution, trial=trial)
        self._executions[execution_id] = execution
        self._workflows[execution_id] = checked
        self._runs[execution_id] = run
        self._tasks[execution_id] = asyncio.create_task(self._drive(run, checked, mode))
        return execution_id

    async def run_workflow(
        self, workflow: WorkflowInput, *, cache: CacheMode | str = CacheMode.USE
    ) -> WorkflowExecution:
        """Submit and wait: the finished execution record."""
        return await self.wait_for_execution(await self.submit_ml_workflow(workflow, cache=cache))

    async def _drive(
        self, run: ExecutionRun, checked: CheckedWorkflow, mode: CacheMode
    ) -> WorkflowExecution:
        execution_id = run.execution.execution_id
        try:
            run.cache = await self._run_cache(checked, execution_id, mode)
            return await run.run()
        finally:
            self._runs.pop(execution_id, None)
            self._keep_results(execution_id, run)

    async def _prepare_run(
        self,
        checked: CheckedWorkflow,
        execution: WorkflowExecution,
        mode: CacheMode,
        epoch: int,
        options: Mapping[str, Any],
    ) -> ExecutionRun:
        """A run of an execution this instance owns in a cluster; worker reports reach it."""
        trial = TrialLink.from_json(options["trial"]) if "trial" in options else None
        run = self._new_run(checked, execution, epoch, trial)
        run.cache = await self._run_cache(checked, execution.execution_id, mode)
        self._runs[execution.execution_id] = run
        return run

    def _new_run(
        self,
        checked: CheckedWorkflow,
        execution: WorkflowExecution,
        epoch: int | None = None,
        trial: TrialLink | None = None,
    ) -> ExecutionRun:
        """A run on this orchestrator's executor and bus. In a cluster, `epoch` (the owner's)
        tags its Dask keys and numbers its events after those of earlier owners."""
        run = ExecutionRun(
            execution,
            _invocations(
                execution.execution_id,
                checked,
                run_tag="" if epoch is None else f"@{epoch}",
                work_root=self.settings.artifact_root,
                intermediate={} if trial is None else dict.fromkeys(trial.tasks, trial.metric),
                registry=self.registry_address,
            ),
            list(checked.order),
            self.executor,
            self.bus.publish,
            self.instance_id,
            seq_start=0 if epoch is None else epoch << SEQ_EPOCH_SHIFT,
        )
        if trial is not None and trial.tasks:
            run.on_intermediate = PruningWatch(trial, self.settings, run)
        return run

    def _forget(self, execution_id: str) -> None:
        self._runs.pop(execution_id, None)

    async def _run_cache(
        self, checked: CheckedWorkflow, execution_id: str, mode: CacheMode
    ) -> RunCache | None:
        if mode is CacheMode.OFF:
            return None
        if self._fingerprints is None:
            self._fingerprints = FileFingerprints(self.settings.cache_dir / "fingerprints.json")
        try:
            plans = await asyncio.to_thread(
                plan_cache,
                checked,
                mode,
                self.settings.default_cache_strategy,
                self._fingerprints,
            )
        except Exception as exc:  # keys could not be derived: run, just without the cache
            log.warning("cache keys could not be derived, running without the cache: %s", exc)
            return None
        retry_s = self.settings.cache_write_retry_s if self.cluster is not None else 0.0
        return RunCache(self.cache, plans, checked.spec.workflow_id, execution_id, retry_s=retry_s)

    def _keep_results(self, execution_id: str, run: ExecutionRun) -> None:
        """Task outputs stay on the workers for the last few executions, for fetch_result."""
        self._kept[execution_id] = run
        while len(self._kept) > self.settings.keep_results:
            _, old = self._kept.popitem(last=False)
            old.futures.clear()

    async def optimize_hyperparameters(
        self, request: Any, *, importances: bool = False, study_name: str | None = None
    ) -> Any:
        """Search hyperparameters: `{"workflow_spec": ..., "hyperparameter_config": ...}` (the
        seed's shape). Returns an OptimizationResult (best value and parameters, every trial;
        with `importances`, how much each parameter mattered)."""
        from workbench.hpo.optimizer import HyperparameterOptimizer

        optimizer = HyperparameterOptimizer(self)
        return await optimizer.optimize(request, importances=importances, study_name=study_name)

    async def _drive_study(self, stored: StoredExecution) -> None:
        """Run (or resume) a study this instance owns in a cluster."""
        from workbench.hpo.optimizer import HyperparameterOptimizer

        await HyperparameterOptimizer(self).resume(stored)

    async def wait_for_execution(
        self, execution_id: str, timeout: float | None = None
    ) -> WorkflowExecution:
        if self.cluster is not None:
            return await self.cluster.wait(execution_id, timeout)
        task = self._tasks.get(execution_id)
        if task is None:
            raise ExecutionNotFoundError(execution_id)
        return await asyncio.wait_for(asyncio.shield(task), timeout)

    def get_execution(self, execution_id: str) -> WorkflowExecution:
        if self.cluster is not None:
            return self.cluster.get_now(execution_id)
        try:
            return self._executions[execution_id]
        except KeyError:
            raise ExecutionNotFoundError(execution_id) from None

    def list_executions(self) -> list[WorkflowExecution]:
        if self.cluster is not None:
            return self.cluster.list_now()
        return list(self._executions.values())

    async def cancel_execution(
        self, execution_id: str, reason: str = "cancelled by the user"
    ) -> None:
        if self.cluster is not None:
            await self.cluster.cancel(execution_id)
            await self.wait_for_execution(execution_id)
            return
        self.get_execution(execution_id)
        run = self._runs.get(execution_id)
        if run is not None:
            run.cancel(reason)
            await self.wait_for_execution(execution_id)

    async def _workflow_of(self, execution_id: str) -> CheckedWorkflow:
        """The checked workflow an execution runs (from the state store in a cluster)."""
        if self.cluster is None:
            self.get_execution(execution_id)
            return self._workflows[execution_id]
        stored = await self.cluster.stored(execution_id)
        if stored.kind is not JobKind.WORKFLOW:
            raise WorkbenchError(
                f"{execution_id!r} is a hyperparameter study, not a workflow run; its trials "
                "are workflow runs of their own"
            )
        return await asyncio.to_thread(stored_workflow, stored)

    async def execution_dependencies(self, execution_id: str) -> dict[str, list[str]]:
        """Task id -> the tasks it depends on, in the workflow's topological order."""
        checked = await self._workflow_of(execution_id)
        depends = {task.task_id: list(task.dependencies) for task in checked.spec.tasks}
        return {task_id: depends[task_id] for task_id in checked.order}

    async def rerun_execution(self, execution_id: str) -> str:
        """Run a finished execution's workflow again, as a new execution, with the cache on:
        tasks that succeeded are taken from the cache, so what failed, was skipped or was
        cancelled runs again (uncacheable tasks, such as deployments, always do). Returns the
        new execution's id."""
        execution = self.get_execution(execution_id)
        if not execution.status.terminal:
            raise WorkbenchError(
                f"execution {execution_id!r} is still {execution.status.value}; wait for it "
                "or cancel it before running it again"
            )
        return await self._submit(await self._workflow_of(execution_id), CacheMode.USE)

    async def fetch_result(self, execution_id: str, task_id: str) -> TaskResult:
        """Bring one task's full result (its output included) from the cluster."""
        if self.cluster is not None:
            return await self._cluster_result(await self.cluster.get(execution_id), task_id)
        execution = self.get_execution(execution_id)
        record = execution.tasks.get(task_id)
        if record is None:
            raise WorkbenchError(
                f"execution {execution_id!r} has no task {task_id!r}; "
                f"its tasks: {', '.join(execution.tasks)}"
            )
        if not record.state.succeeded:
            raise WorkbenchError(
                f"task {task_id!r} of {execution_id!r} is {record.state.value}; "
                "only a succeeded or cached task has a result"
            )
        run = self._kept.get(execution_id) or self._runs.get(execution_id)
        future = run.futures.get(task_id) if run else None
        if future is None and record.state is TaskState.CACHED and run and run.cache:
            return await self._cached_result(run.cache, task_id)
        if future is None:
            raise WorkbenchError(
                f"the outputs of {execution_id!r} were released (only the last "
                f"{self.settings.keep_results} executions keep them; set WORKBENCH_KEEP_RESULTS)"
            )
        result: TaskResult = await future
        return result

    async def _cluster_result(self, execution: WorkflowExecution, task_id: str) -> TaskResult:
        """In a cluster every committed result is a checkpoint in the shared cache."""
        from workbench.spec.models import CacheStrategy

        record = execution.tasks.get(task_id)
        if record is None or not record.state.succeeded:
            state = record.state.value if record else "not a task of it"
            raise WorkbenchError(
                f"task {task_id!r} of {execution.execution_id!r} has no result ({state})"
            )
        found = summary_key(execution, task_id)
        entry = None
        if found is not None:
            key, strategy = found
            entry = await asyncio.to_thread(self.cache.lookup, key, CacheStrategy(strategy))
        if entry is None:
            raise WorkbenchError(
                f"the result of task {task_id!r} is not in the shared cache (its strategy is "
                "none, or the entry expired); run the workflow again to recompute it"
            )
        result: TaskResult = pickle.loads(entry.result)
        return result

    async def _cached_result(self, cache: RunCache, task_id: str) -> TaskResult:
        plan = cache.plans[task_id]
        entry = cache.hits.get(task_id)
        if entry is None and plan.key is not None:
            entry = await asyncio.to_thread(self.cache.lookup, plan.key, plan.strategy)
        if entry is None:
            raise WorkbenchError(
                f"the cached result of task {task_id!r} is no longer in the cache; "
                "run the workflow again to recompute it"
            )
        result: TaskResult = pickle.loads(entry.result)
        return result

    def _route_worker_event(self, message: dict[str, Any]) -> None:
        run = self._runs.get(message.get("e", ""))
        if run is not None:
            run.on_worker_event(message)


def _new_execution(execution_id: str, checked: CheckedWorkflow) -> WorkflowExecution:
    spec = checked.spec
    return WorkflowExecution(
        execution_id=execution_id,
        workflow_id=spec.workflow_id,
        name=spec.name,
        tasks={t.task_id: TaskRecord(task_id=t.task_id, task_type=t.task_type) for t in spec.tasks},
    )


def _invocations(
    execution_id: str,
    checked: CheckedWorkflow,
    run_tag: str = "",
    work_root: Path | None = None,
    intermediate: Mapping[str, str] | None = None,
    registry: RegistryAddress | None = None,
) -> dict[str, TaskInvocation]:
    spec = checked.spec
    upstream = {dep for task in spec.tasks for dep in task.dependencies}
    invocations = {}
    for task in spec.tasks:
        fn = checked.definitions[task.task_id].fn
        assert fn is not None, "check_workflow rejects unavailable task types"
        invocations[task.task_id] = TaskInvocation(
            execution_id=execution_id,
            task_id=task.task_id,
            task_type=task.task_type,
            fn=fn,
            params=checked.params[task.task_id],
            global_parameters=spec.global_parameters,
            resources=task.resources,
            retry_policy=task.retry_policy,
            timeout_s=task.timeout_s,
            base_dir=str(checked.base_dir),
            dependencies=tuple(dict.fromkeys(task.dependencies)),
            run_tag=run_tag,
            work_root=None if work_root is None else str(work_root / "runs"),
            intermediate_metric=(intermediate or {}).get(task.task_id),
            has_dependents=task.task_id in upstream,
            registry=registry,
            lineage=(
                {"workflow_id": spec.workflow_id, "workflow_name": spec.name}
                if checked.definitions[task.task_id].records_lineage
                else None
            ),
        )
    return invocations
