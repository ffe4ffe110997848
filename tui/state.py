"""What the UI knows, kept by the app and read by every screen: executions as the watch last
showed them, the recent events, and the health of the services behind them."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from tui.feed import Batch
from workbench.client.overview import Overview, ServiceState
from workbench.dag.records import WorkflowExecution
from workbench.events.models import Event
from workbench.events.watch import WatchMode

EVENTS_KEPT = 2_000


@dataclass
class LiveState:
    executions: dict[str, WorkflowExecution] = field(default_factory=dict)
    owners: dict[str, str] = field(default_factory=dict)  # execution -> instance sending its events
    events: deque[Event] = field(default_factory=lambda: deque(maxlen=EVENTS_KEPT))
    mode: WatchMode = WatchMode.LIVE
    overview: Overview | None = None
    overview_error: str | None = None  # the overview could not be read at all
    overview_owners: dict[str, str] = field(default_factory=dict)  # execution -> its owner
    worker_names: dict[str, str] = field(default_factory=dict)  # address -> the worker's name
    kafka_configured: bool = False  # without Kafka a cluster is followed by polling, by design

    def apply(self, batch: Batch) -> None:
        self.executions.update(batch.executions)
        for event in batch.events:
            if event.execution_id and event.type.of_workflow:
                self.owners[event.execution_id] = event.instance_id
        self.events.extend(batch.events)
        if batch.mode is not None:
            self.mode = batch.mode

    def set_overview(self, overview: Overview) -> None:
        self.overview, self.overview_error = overview, None
        self.overview_owners = {r.execution_id: r.owner for r in overview.executions if r.owner}
        self.worker_names = {w.address: w.name for w in overview.workers if w.name}

    def owner(self, execution_id: str) -> str:
        return self.overview_owners.get(execution_id) or self.owners.get(execution_id, "-")

    def worker_name(self, address: str | None) -> str:
        """A worker as the overview names it (`cpu-1`, `simulated-gpu-0`: a simulated GPU
        worker must say so wherever it appears), its address until the overview knows it."""
        if not address:
            return "-"
        return self.worker_names.get(address, address)

    def problems(self) -> list[str]:
        """One line per thing an operator must know is wrong, for the banner; [] when all is
        well. Each says what the UI does about it."""
        lines = []
        polling = self.mode is WatchMode.POLLING and self.kafka_configured
        if polling:
            lines.append(
                "Live events lost (Kafka unreachable): following the state store every "
                "0.5 s; reconnecting by itself"
            )
        if self.overview_error:
            lines.append(f"Cannot read the cluster: {self.overview_error}; retrying")
        elif self.overview is not None:
            for service in self.overview.services:
                if service.state is ServiceState.DOWN and not (polling and service.name == "kafka"):
                    lines.append(f"{service.name.capitalize()} unreachable: {service.detail}")
        return lines
