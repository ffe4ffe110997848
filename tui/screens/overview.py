"""Overview: the orchestrator instances (leader, fencing token, heartbeat age, capacity, load),
the Dask workers grouped by capability shard (CPU, memory, running tasks) and the health of
Redis, Kafka and the scheduler. Read every couple of seconds by the app."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import DataTable, Static

from tui import look
from tui.screens.base import LiveScreen

if TYPE_CHECKING:
    from tui.feed import Batch
    from tui.state import LiveState
    from workbench.client.overview import Overview


class OverviewScreen(LiveScreen):
    SCOPE = "overview"

    def body(self) -> ComposeResult:
        yield Static(id="services", classes="panel")
        instances: DataTable[object] = DataTable(id="instances", cursor_type="row")
        instances.border_title = "Orchestrator instances"
        for column in ("instance", "role", "heartbeat", "capacity", "load", "host", "pid", "state"):
            instances.add_column(column, key=column)
        yield instances
        workers: DataTable[object] = DataTable(id="workers", cursor_type="row")
        workers.border_title = "Dask workers by capability shard"
        for column in ("shard", "worker", "threads", "cpu", "memory", "running", "assigned"):
            workers.add_column(column, key=column)
        yield workers

    def show(self, state: LiveState, batch: Batch | None) -> None:
        if batch is not None:
            return  # the overview changes with the app's reads, not with workflow events
        if state.overview is None:
            self.query_one("#services", Static).update(
                "reading the cluster…"
                if state.overview_error is None
                else Text(state.overview_error, style="red")
            )
            return
        self._services(state.overview)
        self._instances(state.overview)
        self._workers(state.overview)

    def _services(self, overview: Overview) -> None:
        # The states side by side on one line, then each service's detail on a line of its own
        # (in one grid, so that a long detail does not push the states apart).
        states = Text.assemble(
            (f"{overview.mode} · namespace {overview.namespace}", "bold"),
            *(
                part
                for s in overview.services
                for part in ("    ", f"{s.name} ", look.service(s.state))
            ),
        )
        details = Table.grid(padding=(0, 2))
        for service in overview.services:
            if service.detail:
                details.add_row(
                    Text(service.name, style="grey62"), Text(service.detail, style="grey62")
                )
        self.query_one("#services", Static).update(
            Group(states, details) if details.row_count else states
        )

    def _instances(self, overview: Overview) -> None:
        table = self.query_one("#instances", DataTable)
        table.clear()
        for row in overview.instances:
            role = (
                Text(
                    f"★ leader (token {row.token})" if row.token is not None else "★ leader",
                    style="bold green",
                )
                if row.leader
                else Text("member")
            )
            table.add_row(
                row.instance_id,
                role,
                f"{row.heartbeat_age_s:.1f}s ago",
                str(row.capacity),
                look.bar(row.load / row.capacity if row.capacity else 0.0, 8).append(
                    f" {row.load}"
                ),
                row.host,
                str(row.pid),
                Text("degraded", style="bold red") if row.degraded else Text("ok", style="green"),
                key=row.instance_id,
            )

    def _workers(self, overview: Overview) -> None:
        table = self.query_one("#workers", DataTable)
        table.clear()
        for shard, workers in overview.shards().items():
            for worker in workers:
                memory = look.size(worker.memory_bytes)
                if worker.memory_limit:
                    memory += f" / {look.size(worker.memory_limit)}"
                table.add_row(
                    Text(shard, style="bold magenta" if shard != "cpu" else ""),
                    worker.name,
                    str(worker.threads),
                    "-" if worker.cpu_percent is None else f"{worker.cpu_percent:.0f}%",
                    memory,
                    str(worker.running),
                    str(worker.processing),
                    key=worker.address,
                )
        if not overview.workers:
            table.add_row(
                "-",
                Text(overview.service("scheduler").detail or "no workers", style="grey62"),
                "",
                "",
                "",
                "",
                "",
            )
