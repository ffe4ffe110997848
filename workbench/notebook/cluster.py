"""The cluster in a notebook: orchestrator instances (the leader marked), Dask workers by
capability shard, and the health of Redis, Kafka and the scheduler.

Read from the client's overview (every probe times out within seconds and reports a failure
as a state); while shown it is read again every few seconds, on a background thread.
"""

from __future__ import annotations

import threading
from html import escape
from typing import TYPE_CHECKING, Any

from workbench.notebook import html
from workbench.notebook.live import LiveView

if TYPE_CHECKING:
    from workbench.client.overview import Overview
    from workbench.client.workbench import Workbench

REFRESH_S = 3.0


def mib(value: int | None) -> str:
    return "" if value is None else f"{value / 2**20:,.0f} MiB"


def instances_table(overview: Overview) -> str:
    rows = [
        [
            ("★ " if i.leader else "") + f"<b>{escape(i.instance_id)}</b>",
            "leader" if i.leader else "member",
            "" if i.token is None else str(i.token),
            f"{i.heartbeat_age_s:.1f}s",
            f"{html.bar(i.load / max(i.capacity, 1), '#0f8a9d')} {i.load}/{i.capacity}",
            escape(f"{i.host}:{i.pid}" if i.host else str(i.pid)),
            html.state("down") + " degraded" if i.degraded else "",
        ]
        for i in sorted(overview.instances, key=lambda i: (not i.leader, i.instance_id))
    ]
    head = ("instance", "role", "fencing token", "heartbeat", "load", "host:pid", "")
    return html.table(head, rows, {2, 3})


def workers_table(overview: Overview) -> str:
    rows = []
    for shard, workers in overview.shards().items():
        for w in workers:
            rows.append(
                [
                    html.badge(shard, "#2a6fdb" if shard != "cpu" else "#8a8a8a"),
                    f"<b>{escape(w.name)}</b>",
                    escape(w.address),
                    str(w.threads),
                    "" if w.cpu_percent is None else f"{w.cpu_percent:.0f}%",
                    f"{mib(w.memory_bytes)} / {mib(w.memory_limit)}"
                    if w.memory_limit
                    else mib(w.memory_bytes),
                    f"{w.running} running, {w.processing} assigned",
                ]
            )
    return html.table(
        ("shard", "worker", "address", "threads", "cpu", "memory", "tasks"), rows, {3, 4}
    )


def services_line(overview: Overview) -> str:
    return " &nbsp; ".join(
        f"<b>{escape(s.name)}</b> {html.state(s.state.value)}"
        + (f' <span class="dim">{escape(s.detail)}</span>' if s.detail else "")
        for s in overview.services
    )


class Cluster(LiveView):
    CSS_CLASS = "workbench-cluster"

    def __init__(self, client: Workbench, *, refresh_s: float = REFRESH_S) -> None:
        super().__init__()
        self.client = client
        self.refresh_s = refresh_s
        self.overview: Overview = client.overview()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def refresh(self) -> Overview:
        self.overview = self.client.overview()
        self.changed_now()
        return self.overview

    def html(self) -> str:
        o = self.overview
        leader = o.leader
        head = (
            f'<div class="head">Cluster {escape(o.namespace)} <span class="dim">({o.mode})</span>'
            + (f" · leader <b>{escape(leader.instance_id)}</b>" if leader else " · no leader")
            + "</div>"
        )
        return html.block(
            head,
            f"<div>{services_line(o)}</div>",
            '<div class="head">Instances</div>',
            instances_table(o) if o.instances else '<div class="dim">none</div>',
            '<div class="head">Workers by capability shard</div>',
            workers_table(o) if o.workers else '<div class="dim">no workers (yet)</div>',
        )

    def text(self) -> str:
        o = self.overview
        leader = o.leader
        lines = [
            f"cluster {o.namespace} ({o.mode}), leader: {leader.instance_id if leader else 'none'}",
            "services: " + ", ".join(f"{s.name} {s.state.value}" for s in o.services),
        ]
        lines += [
            f"  instance {i.instance_id}{' (leader)' if i.leader else ''}"
            f" load {i.load}/{i.capacity}"
            for i in o.instances
        ]
        for shard, workers in o.shards().items():
            lines.append(f"  shard {shard}: " + ", ".join(w.name for w in workers))
        return "\n".join(lines)

    def build(self) -> Any:
        widget = super().build()
        self._thread = threading.Thread(target=self._follow, name="workbench-cluster", daemon=True)
        self._thread.start()
        return widget

    def _follow(self) -> None:
        while not self._stop.wait(self.refresh_s):
            try:
                self.refresh()
            except Exception as exc:  # the overview reports failures itself; keep the last one
                self._html.value = self.html() + html.block(html.error(f"refresh failed: {exc}"))

    def close(self) -> None:
        self._stop.set()
