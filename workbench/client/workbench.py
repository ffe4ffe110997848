"""Workbench: what scripts, the CLI and the UIs talk to.

Its methods are plain blocking calls (scripts, notebooks, the CLI); the orchestrator itself is
async and runs on a private event-loop thread, so a Workbench works the same whether or not the
caller has an event loop of its own. `submit`/`wait` are the async forms for async callers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Callable
from contextlib import ExitStack
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar, Unpack

from anyio.from_thread import BlockingPortal, start_blocking_portal

from workbench.config import Settings
from workbench.dag.records import WorkflowExecution
from workbench.events.bus import Subscription
from workbench.events.models import Event
from workbench.execution.cache_plan import CacheMode
from workbench.orchestrator.orchestrator import DistributedOrchestrator, WorkflowInput
from workbench.tasks.base import TaskResult
from workbench.tasks.checks import CheckedWorkflow, load_workflow

if TYPE_CHECKING:
    from workbench.client.overview import Overview
    from workbench.events.watch import WatchMode, WatchOptions, WatchUpdate
    from workbench.events.watch_thread import WatchThread
    from workbench.hpo.studies import StudySummary
    from workbench.registry.base import Transition
    from workbench.registry.manager import ModelEntry, ModelLifecycleManager

T = TypeVar("T")
log = logging.getLogger(__name__)


class Workbench:
    def __init__(self, orchestrator: DistributedOrchestrator) -> None:
        self.orchestrator = orchestrator
        self._stack = ExitStack()
        self._portal: BlockingPortal | None = self._stack.enter_context(start_blocking_portal())

    @classmethod
    def local(
        cls, *, workers: int | None = None, threads_per_worker: int | None = None
    ) -> Workbench:
        """A workbench on this machine: a Dask LocalCluster started on first use, no servers."""
        overrides: dict[str, Any] = {}
        if workers is not None:
            overrides["workers"] = workers
        if threads_per_worker is not None:
            overrides["threads_per_worker"] = threads_per_worker
        return cls(DistributedOrchestrator("local", settings=Settings(**overrides)))

    @classmethod
    def connect(cls, profile: str | None = None) -> Workbench:
        """Local without a profile; with one (a name under clusters/ or a path), a client of
        that cluster: workflows are submitted to its instances, which run them."""
        if profile is None:
            return cls(DistributedOrchestrator("local"))
        import secrets

        return cls(
            DistributedOrchestrator(f"client-{secrets.token_hex(3)}", profile=profile, member=False)
        )

    # -- plumbing ------------------------------------------------------------------------------
    def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        if self._portal is None:
            from workbench.errors import WorkbenchError

            raise WorkbenchError("this Workbench is closed; create a new one")
        return self._portal.call(fn, *args)

    async def _bridge(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Await an orchestrator coroutine from the caller's own event loop."""
        assert self._portal is not None
        return await asyncio.wrap_future(self._portal.start_task_soon(fn, *args))

    # -- blocking API --------------------------------------------------------------------------
    def validate(self, spec_or_path: WorkflowInput) -> CheckedWorkflow:
        return load_workflow(spec_or_path)

    def run(
        self,
        spec_or_path: WorkflowInput,
        *,
        on_event: Callable[[Event], None] | None = None,
        cache: CacheMode | str = CacheMode.USE,
    ) -> WorkflowExecution:
        """Run a workflow to the end and return its execution record.

        `on_event` sees every event of this execution as it happens (in a cluster, as the
        watcher receives them: from Kafka, or none while it polls the state store). `cache`:
        "use" (reuse and store results), "refresh" (recompute and overwrite) or "off".
        """
        checked = self.validate(spec_or_path)
        if on_event is not None and self.orchestrator.cluster is not None:
            execution_id = self.submit_blocking(checked, cache=cache)
            watcher = self.watch_in_thread(
                lambda update: on_event(update.event) if update.event else None, execution_id
            )
            try:
                return self.wait_blocking(execution_id)
            finally:
                watcher.stop()
        subscription: Subscription | None = None
        if on_event is not None:
            subscription = self.subscribe(on_event)
        try:
            execution_id = self._call(
                partial(self.orchestrator.submit_ml_workflow, checked, cache=cache)
            )
            execution: WorkflowExecution = self._call(
                self.orchestrator.wait_for_execution, execution_id
            )
            return execution
        finally:
            if subscription is not None:
                subscription.close()

    def submit_blocking(
        self, spec_or_path: WorkflowInput, *, cache: CacheMode | str = CacheMode.USE
    ) -> str:
        """Submit and return the execution id at once (`wait_blocking` waits for it)."""
        checked = self.validate(spec_or_path)
        execution_id: str = self._call(
            partial(self.orchestrator.submit_ml_workflow, checked, cache=cache)
        )
        return execution_id

    def wait_blocking(self, execution_id: str, timeout: float | None = None) -> WorkflowExecution:
        execution: WorkflowExecution = self._call(
            self.orchestrator.wait_for_execution, execution_id, timeout
        )
        return execution

    def optimize(
        self, request: Any, *, importances: bool = False, study_name: str | None = None
    ) -> Any:
        """`orchestrator.optimize_hyperparameters` as a blocking call."""
        return self._call(
            partial(
                self.orchestrator.optimize_hyperparameters,
                request,
                importances=importances,
                study_name=study_name,
            )
        )

    def cancel(self, execution_id: str) -> None:
        self._call(self.orchestrator.cancel_execution, execution_id)

    def rerun(self, execution_id: str) -> str:
        """Run a finished execution again with the cache on (what succeeded is reused, what
        failed runs again); returns the new execution id at once."""
        new_id: str = self._call(self.orchestrator.rerun_execution, execution_id)
        return new_id

    def overview(self) -> Overview:
        """Instances, workers by capability shard and the health of the services (blocking;
        each probe gives up after a couple of seconds)."""
        from workbench.client.overview import cluster_overview, local_overview

        if self.orchestrator.cluster is not None:
            return cluster_overview(self.orchestrator.settings)
        overview: Overview = self._call(local_overview, self.orchestrator)
        return overview

    def studies(self) -> list[StudySummary]:
        """Hyperparameter studies with their trials (local journals, or the cluster's Redis)."""
        from workbench.hpo.studies import list_studies

        return list_studies(self.orchestrator.settings)

    def models(self, publish: Callable[[Event], None] | None = None) -> ModelLifecycleManager:
        """The model registry of this workbench's settings (`with wb.models() as registry:`);
        its events go to `publish`, by default this workbench's own bus."""
        from workbench.registry.manager import ModelLifecycleManager

        return ModelLifecycleManager.from_settings(
            self.orchestrator.settings, publish=publish or self.orchestrator.bus.publish
        )

    def model_catalog(self) -> list[ModelEntry]:
        """Every registered model with its versions and history."""
        with self.models() as manager:
            return manager.catalog()

    def promote(self, name: str, version: int, *, why: str = "") -> list[Transition]:
        """Move `version` of `name` to production (the one there is archived)."""
        return self.change_models(lambda m: m.promote(name, version, why=why))

    def rollback(self, name: str, *, why: str = "") -> list[Transition]:
        """Put the previous production version of `name` back."""
        return self.change_models(lambda m: m.rollback(name, why=why))

    def change_models(
        self, change: Callable[[ModelLifecycleManager], list[Transition]]
    ) -> list[Transition]:
        """A registry change whose events reach every watcher: locally through this
        workbench's bus, in a cluster through Kafka (a client's bus reaches no one else)."""
        if self.orchestrator.cluster is None:
            with self.models() as manager:
                return change(manager)
        events: list[Event] = []
        with self.models(publish=events.append) as manager:
            moved = change(manager)
        settings = self.orchestrator.settings
        if events and settings.kafka_bootstrap_servers:
            from workbench.events.kafka import publish_batch

            sent = publish_batch(
                settings, events, client_id=f"workbench-{self.orchestrator.instance_id}"
            )
            if sent < len(events):
                log.warning(
                    "%d of %d registry events did not reach Kafka", len(events) - sent, len(events)
                )
        return moved

    def dependencies(self, execution_id: str) -> dict[str, list[str]]:
        """An execution's graph: task id -> the tasks it depends on, in topological order."""
        graph: dict[str, list[str]] = self._call(
            self.orchestrator.execution_dependencies, execution_id
        )
        return graph

    def result(self, execution_id: str, task_id: str) -> TaskResult:
        result: TaskResult = self._call(self.orchestrator.fetch_result, execution_id, task_id)
        return result

    def notices(self) -> list[str]:
        """One line per configuration fallback taken so far (e.g. redis -> disk locally)."""
        return list(dict.fromkeys(self.orchestrator.cache.notices))

    def execution(self, execution_id: str) -> WorkflowExecution:
        return self.orchestrator.get_execution(execution_id)

    def subscribe(
        self, callback: Callable[[Event], None], execution_id: str | None = None
    ) -> Subscription:
        return self.orchestrator.bus.subscribe(callback, execution_id)

    # -- watching ------------------------------------------------------------------------------
    def watch(
        self, execution_id: str | None = None, **options: Unpack[WatchOptions]
    ) -> AsyncGenerator[WatchUpdate, None]:
        """Live views of one execution (or all): a snapshot first, then one update per event,
        from Kafka in a cluster (polling the state store while Kafka is away or absent) or
        from this process's bus locally. Iterate it with `async for` on any event loop."""
        from workbench.events.watch import watch
        from workbench.orchestrator.watching import watch_sources

        snapshots, source = watch_sources(self.orchestrator, execution_id)
        return watch(snapshots, source, execution_id, **options)

    def watch_in_thread(
        self,
        callback: Callable[[WatchUpdate], None],
        execution_id: str | None = None,
        *,
        on_other: Callable[[Event], None] | None = None,
        on_mode: Callable[[WatchMode], None] | None = None,
        **options: Unpack[WatchOptions],
    ) -> WatchThread:
        """`watch` on a thread of its own, calling `callback(update)` there; `.stop()` ends it.
        For UIs with a loop of their own (notebook widgets, the terminal UI). `on_other` gets
        the events of no execution (trials, models, the cluster) and `on_mode` each change of
        the watch's mode (live / polling), on the same thread."""
        from workbench.events.watch_thread import WatchThread
        from workbench.orchestrator.watching import watch_sources

        snapshots, source = watch_sources(self.orchestrator, execution_id)
        return WatchThread(
            snapshots, source, callback, execution_id, on_other, on_mode, **options
        ).start()

    # -- async API -----------------------------------------------------------------------------
    async def submit(
        self, spec_or_path: WorkflowInput, *, cache: CacheMode | str = CacheMode.USE
    ) -> str:
        checked = await asyncio.to_thread(self.validate, spec_or_path)
        execution_id: str = await self._bridge(
            partial(self.orchestrator.submit_ml_workflow, checked, cache=cache)
        )
        return execution_id

    async def wait(self, execution_id: str, timeout: float | None = None) -> WorkflowExecution:
        execution: WorkflowExecution = await self._bridge(
            self.orchestrator.wait_for_execution, execution_id, timeout
        )
        return execution

    # -- lifecycle -----------------------------------------------------------------------------
    def close(self) -> None:
        if self._portal is not None:
            try:
                self._portal.call(self.orchestrator.close)
            finally:
                self._portal = None
                self._stack.close()

    def __enter__(self) -> Workbench:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
