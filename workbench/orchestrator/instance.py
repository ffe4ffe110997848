"""Cluster mode for one orchestrator: its connection to the shared store and, for a member
instance, the loops that make it part of the cluster (heartbeats, leadership, owned runs)."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from workbench.config import Settings
from workbench.coordination.base import JobKind, StateStore, StoredExecution
from workbench.dag.records import WorkflowExecution
from workbench.errors import ClusterUnavailableError, ExecutionNotFoundError
from workbench.events.models import Event
from workbench.execution.base import WorkerInfo
from workbench.orchestrator.cluster import ClusterMember, OutageLog
from workbench.orchestrator.owned import (
    OwnedRuns,
    RunFactory,
    Subscribe,
    execution_from_store,
)
from workbench.orchestrator.owned_study import StudyDriver
from workbench.tasks.checks import CheckedWorkflow

log = logging.getLogger(__name__)

# How often a waiting client looks at an execution's status in the store.
WAIT_POLL_S = 0.1


def connect_store(settings: Settings) -> tuple[Any, StateStore]:
    """A Redis client and the resilient state store on it; a clear error if Redis is away."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    from workbench.coordination.redis_store import RedisStateStore
    from workbench.coordination.resilient import ResilientStateStore

    assert settings.redis_url is not None
    # No retries inside redis-py: the resilient store retries, with a circuit breaker, and an
    # outage must be noticed in a second, not after redis-py's own ten attempts.
    client = redis.Redis.from_url(
        settings.redis_url,
        socket_connect_timeout=1.0,
        socket_timeout=2.0,
        retry=Retry(NoBackoff(), 0),
    )
    try:
        client.ping()
    except redis.exceptions.AuthenticationError as exc:  # also raised for a wrong ACL user
        client.close()
        from workbench.cache.redis_backend import CREDENTIALS_FIX

        raise ClusterUnavailableError(
            f"Redis at {_masked(settings.redis_url)} refused the credentials (authentication "
            f"failed: {str(exc).rstrip('.')}); {CREDENTIALS_FIX}; fix redis_url in the "
            "profile or WORKBENCH_REDIS_URL"
        ) from None
    except redis.exceptions.RedisError as exc:
        client.close()
        raise ClusterUnavailableError(
            f"cannot reach Redis at {_masked(settings.redis_url)}: {str(exc).rstrip('.')}. "
            "Start redis-server, or fix redis_url in the profile (WORKBENCH_REDIS_URL)"
        ) from None
    store = RedisStateStore(client, namespace=settings.namespace)
    return client, ResilientStateStore(store, name=f"Redis at {_masked(settings.redis_url)}")


def _masked(url: str) -> str:
    from workbench.cache.redis_backend import mask_url

    return mask_url(url)


class ClusterInstance:
    def __init__(self, instance_id: str, settings: Settings, *, member: bool) -> None:
        self.instance_id = instance_id
        self.settings = settings
        self.member = member
        self.client: Any = None
        self.store: StateStore | None = None
        self.cluster: ClusterMember | None = None
        self.owned: OwnedRuns | None = None
        self._poller: asyncio.Task[None] | None = None

    async def connect(self) -> None:
        if self.store is None:
            self.client, self.store = await asyncio.to_thread(connect_store, self.settings)

    async def join(
        self,
        make_run: RunFactory,
        subscribe: Subscribe,
        forget: Callable[[str], None],
        drive_study: StudyDriver,
        emit: Callable[[Event], None] | None = None,
        workers: Callable[[], Awaitable[list[WorkerInfo]]] | None = None,
    ) -> None:
        """Become a member: heartbeat, contend for leadership, run what it is assigned."""
        from workbench.coordination.election import RedisLeaderElection

        await self.connect()
        assert self.store is not None
        self.owned = OwnedRuns(
            self.instance_id, self.store, make_run, subscribe, forget, drive_study
        )
        election = RedisLeaderElection(
            self.client,
            self.instance_id,
            namespace=self.settings.namespace,
            lease_ms=self.settings.lease_ms,
        )
        owned = self.owned
        self.cluster = ClusterMember(
            self.instance_id,
            self.settings,
            self.store,
            election,
            lambda: owned.load,
            emit=emit,
            workers=workers,
        )
        await self.cluster.start()
        self._poller = asyncio.create_task(self._poll_owned(), name=f"{self.instance_id}-owned")

    async def _poll_owned(self) -> None:
        assert self.owned is not None
        outage = OutageLog(f"{self.instance_id}'s reading of its assignments")
        while True:
            try:
                await self.owned.poll_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                outage.failed(exc)
            else:
                outage.ok()
            await asyncio.sleep(self.settings.poll_interval_ms / 1000)

    async def leave(self) -> None:
        """Graceful: hand owned executions back, give leadership up, deregister."""
        if self._poller is not None:
            self._poller.cancel()
            await asyncio.gather(self._poller, return_exceptions=True)
            self._poller = None
        if self.owned is not None:
            await self.owned.release_all()
        if self.cluster is not None:
            await self.cluster.stop(leave=True)
        if self.client is not None:
            self.client.close()
            self.client = None
        self.store = None

    # -- what clients do -----------------------------------------------------------------------
    async def submit(
        self, checked: CheckedWorkflow, cache_mode: str, options: Mapping[str, Any] | None = None
    ) -> str:
        spec = checked.spec
        execution_id = f"{spec.workflow_id}-{secrets.token_hex(4)}"
        stored = StoredExecution(
            execution_id=execution_id,
            workflow_id=spec.workflow_id,
            spec=spec.model_dump(mode="json", exclude_unset=True),
            base_dir=str(checked.base_dir),
            cache_mode=cache_mode,
            submitted_at=time.time(),
            options=dict(options or {}),
        )
        await self._create(stored)
        return execution_id

    async def submit_study(
        self, study_name: str, workflow_id: str, request: Mapping[str, Any], base_dir: str
    ) -> str:
        """A study for the cluster to run: its id is the study's name."""
        stored = StoredExecution(
            execution_id=study_name,
            workflow_id=workflow_id,
            spec=dict(request),
            base_dir=base_dir,
            submitted_at=time.time(),
            kind=JobKind.STUDY,
        )
        await self._create(stored)
        return study_name

    async def _create(self, stored: StoredExecution) -> None:
        await self.connect()
        assert self.store is not None
        await asyncio.to_thread(self.store.create_execution, stored)

    async def stored(self, execution_id: str) -> StoredExecution:
        await self.connect()
        assert self.store is not None
        found = await asyncio.to_thread(self.store.get_execution, execution_id)
        if found is None:
            raise ExecutionNotFoundError(execution_id)
        return found

    async def get(self, execution_id: str) -> WorkflowExecution:
        return execution_from_store(await self.stored(execution_id))

    async def wait(
        self, execution_id: str, timeout: float | None = None, poll_s: float = WAIT_POLL_S
    ) -> WorkflowExecution:
        async def until_finished() -> WorkflowExecution:
            while True:
                stored = await self.stored(execution_id)
                if stored.status.terminal:
                    return execution_from_store(stored)
                await asyncio.sleep(poll_s)

        return await asyncio.wait_for(until_finished(), timeout)

    def store_now(self) -> StateStore:
        if self.store is None:  # a blocking call from outside the event loop's tasks
            self.client, self.store = connect_store(self.settings)
        return self.store

    def get_now(self, execution_id: str) -> WorkflowExecution:
        found = self.store_now().get_execution(execution_id)
        if found is None:
            raise ExecutionNotFoundError(execution_id)
        return execution_from_store(found)

    def list_now(self) -> list[WorkflowExecution]:
        return [execution_from_store(e) for e in self.store_now().list_executions()]

    async def cancel(self, execution_id: str) -> None:
        await self.connect()
        assert self.store is not None
        await self.stored(execution_id)
        await asyncio.to_thread(self.store.request_cancel, execution_id)


def summary_key(execution: WorkflowExecution, task_id: str) -> tuple[str, str] | None:
    """The cache key and strategy a committed task's result is stored under."""
    summary = execution.tasks[task_id].summary
    key, strategy = summary.get("cache_key"), summary.get("cache_strategy")
    return (str(key), str(strategy)) if key and strategy else None
