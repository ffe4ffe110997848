"""What a UI watches: an execution's snapshots and its live events, local or in a cluster."""

from __future__ import annotations

from typing import TYPE_CHECKING

from workbench.dag.records import WorkflowExecution
from workbench.events.models import Event
from workbench.events.watch import BusSource, EventSource, SourceFactory, SourceUnavailable

if TYPE_CHECKING:
    from workbench.events.watch import Snapshots
    from workbench.orchestrator.orchestrator import DistributedOrchestrator


class LocalSnapshots:
    """Copies of this orchestrator's own records (they change in place as a run goes on)."""

    def __init__(self, orchestrator: DistributedOrchestrator) -> None:
        self._orchestrator = orchestrator

    def get(self, execution_id: str) -> WorkflowExecution:
        return self._orchestrator.get_execution(execution_id).model_copy(deep=True)

    def all(self) -> list[WorkflowExecution]:
        return [e.model_copy(deep=True) for e in self._orchestrator.list_executions()]


class StoreOnly:
    """The source of a cluster without Kafka: there is no live feed, so the watcher follows
    the state store by polling."""

    async def open(self) -> None:
        raise SourceUnavailable(
            "no Kafka configured (kafka_bootstrap_servers): following the state store"
        )

    def __aiter__(self) -> StoreOnly:
        return self

    async def __anext__(self) -> Event:
        raise SourceUnavailable("no live feed")

    async def close(self) -> None:
        return None

    def drain(self) -> list[Event]:
        return []


def watch_sources(
    orchestrator: DistributedOrchestrator, execution_id: str | None
) -> tuple[Snapshots, SourceFactory]:
    settings = orchestrator.settings
    cluster = orchestrator.cluster
    if cluster is None:
        bus = orchestrator.bus
        return LocalSnapshots(orchestrator), lambda: BusSource(bus, execution_id)
    from workbench.events.watch import StoreSnapshots
    from workbench.orchestrator.owned import execution_from_store

    snapshots = StoreSnapshots(cluster.store_now(), execution_from_store)
    if not settings.kafka_bootstrap_servers:
        return snapshots, StoreOnly

    def kafka() -> EventSource:
        from workbench.events.kafka_source import KafkaSource

        return KafkaSource(settings, execution_id, client_id=f"{orchestrator.instance_id}-watch")

    return snapshots, kafka
