"""The model registry in a notebook: every model, the versions of one, promote and roll back.

Each change asks for confirmation first (a second click), runs through the client (so its
events reach the terminal UI and other notebooks too) and redraws from the registry.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from enum import StrEnum
from html import escape
from typing import TYPE_CHECKING, Any

from workbench.errors import WorkbenchError
from workbench.events.models import Event
from workbench.notebook import html
from workbench.notebook.live import LiveView

if TYPE_CHECKING:
    from workbench.client.workbench import Workbench
    from workbench.events.bus import Subscription
    from workbench.registry.base import ModelVersion, Transition
    from workbench.registry.manager import ModelEntry


class Pending(StrEnum):
    """The change a confirmation is asked for."""

    PROMOTE = "promote"
    ROLLBACK = "rollback"


def when(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(timestamp))


def models_table(entries: list[ModelEntry]) -> str:
    rows = []
    for entry in entries:
        production = next((v for v in entry.versions if v.stage.value == "production"), None)
        aliases = sorted({a for v in entry.versions for a in v.aliases})
        rows.append(
            [
                f"<b>{escape(entry.name)}</b>",
                str(len(entry.versions)),
                "-" if production is None else f"{html.state('production')} v{production.version}",
                escape(", ".join(aliases)) or "-",
            ]
        )
    return html.table(("model", "versions", "production", "aliases"), rows, {1})


def versions_table(versions: list[ModelVersion]) -> str:
    rows = [
        [
            f"v{v.version}",
            html.state(v.stage.value),
            escape(", ".join(v.aliases)) or "-",
            when(v.created_at),
            escape(v.created_by),  # a person, or the execution/task that registered it
            html.metrics(v.metrics, limit=3),
        ]
        for v in sorted(versions, key=lambda v: v.version, reverse=True)
    ]
    head = ("version", "stage", "aliases", "created", "by", "metrics")
    return html.table(head, rows)


class Models(LiveView):
    """The registry, refreshed on every model event of this workbench and after each change."""

    CSS_CLASS = "workbench-models"

    def __init__(self, client: Workbench) -> None:
        super().__init__()
        self.client = client
        self.entries: list[ModelEntry] = []
        self.chosen: str | None = None
        self.pending: Pending | None = None
        self.status = ""
        self._stale = False  # a model event came: read the registry before the next redraw
        self._lock = threading.Lock()
        self._subscription: Subscription | None = None
        self._read()

    # -- state ---------------------------------------------------------------------------------
    def refresh(self) -> None:
        """Read the registry again and redraw."""
        self._read()
        self.changed_now()

    def _read(self) -> None:
        entries = self.client.model_catalog()
        with self._lock:
            self.entries = entries
            if self.chosen not in {e.name for e in entries}:
                self.chosen = entries[0].name if entries else None

    def entry(self, name: str | None = None) -> ModelEntry | None:
        name = name or self.chosen
        return next((e for e in self.entries if e.name == name), None)

    def promote(self, name: str, version: int) -> list[Transition]:
        return self._change(
            f"{name} v{version} is in production",
            lambda: self.client.promote(name, version, why="promoted from a notebook"),
        )

    def rollback(self, name: str) -> list[Transition]:
        return self._change(
            f"{name} rolled back",
            lambda: self.client.rollback(name, why="rolled back from a notebook"),
        )

    def _change(self, done: str, change: Callable[[], list[Transition]]) -> list[Transition]:
        try:
            moved = change()
        except WorkbenchError as exc:
            self.status = html.error(str(exc))
            self.changed_now()
            raise
        self.status = (
            f'<span style="color:#2e8b3a">✔ {escape(done if moved else "nothing changed")}</span>'
        )
        self.refresh()
        return moved

    def _on_event(self, event: Event) -> None:
        # On the publisher's thread (the orchestrator's loop): the registry is read later, on
        # the redraw's thread, once per burst of model events.
        if event.type.value.startswith("model."):
            self._stale = True
            self.changed()

    # -- rendering -----------------------------------------------------------------------------
    def html(self) -> str:
        if not self.entries:
            return html.block('<div class="dim">no models registered yet</div>')
        parts = ['<div class="head">Models</div>', models_table(self.entries)]
        entry = self.entry()
        if entry is not None:
            parts += [
                f'<div class="head">Versions of {escape(entry.name)}</div>',
                versions_table(entry.versions),
            ]
        return html.block(*parts)

    def text(self) -> str:
        if not self.entries:
            return "no models registered yet"
        lines = []
        for entry in self.entries:
            lines.append(f"{entry.name}:")
            for v in sorted(entry.versions, key=lambda v: v.version, reverse=True):
                aliases = f" [{', '.join(v.aliases)}]" if v.aliases else ""
                metrics = ", ".join(f"{k}={html.number(m)}" for k, m in v.metrics.items())
                lines.append(f"  v{v.version} {v.stage.value}{aliases} {metrics}".rstrip())
        return "\n".join(lines)

    # -- the widget ----------------------------------------------------------------------------
    def build(self) -> Any:
        import ipywidgets as widgets

        self._tables = widgets.HTML()
        self._model = widgets.Dropdown(description="model")
        self._version = widgets.Dropdown(description="version")
        wide = widgets.Layout(width="auto")  # the default width cuts the labels
        self._promote = widgets.Button(
            description="Promote to production", icon="arrow-up", layout=wide
        )
        self._rollback = widgets.Button(
            description="Roll back production", icon="undo", layout=wide
        )
        self._question = widgets.HTML()
        self._yes = widgets.Button(description="Confirm", button_style="danger")
        self._no = widgets.Button(description="Cancel")
        self._confirm = widgets.HBox([self._question, self._yes, self._no])
        self._status = widgets.HTML()
        refresh = widgets.Button(description="Refresh", icon="refresh", layout=wide)

        self._model.observe(self._on_model, names="value")
        self._promote.on_click(lambda _: self._ask(Pending.PROMOTE))
        self._rollback.on_click(lambda _: self._ask(Pending.ROLLBACK))
        self._yes.on_click(lambda _: self._confirmed())
        self._no.on_click(lambda _: self._cancelled())
        refresh.on_click(lambda _: self._guarded(self.refresh))
        if self._subscription is None:
            self._subscription = self.client.subscribe(self._on_event)
        box = widgets.VBox(
            [
                self._tables,
                widgets.HBox([self._model, self._version]),
                widgets.HBox([self._promote, self._rollback, refresh]),
                self._confirm,
                self._status,
            ]
        )
        self._fill()
        return box

    def redraw(self) -> None:
        if self._stale:
            self._stale = False
            self._read()
        self._fill()

    def _fill(self) -> None:
        self._tables.value = self.html()
        names = [e.name for e in self.entries]
        if list(self._model.options) != names:
            self._model.options = names
        if self.chosen is not None and self._model.value != self.chosen:
            self._model.value = self.chosen
        entry = self.entry()
        versions = sorted((v.version for v in entry.versions), reverse=True) if entry else []
        options = [(f"v{n}", n) for n in versions]
        if list(self._version.options) != options:
            self._version.options = options
        if versions and self._version.value not in versions:
            self._version.value = versions[0]  # new options leave the value unset
        disabled = entry is None
        self._promote.disabled = self._rollback.disabled = disabled
        self._confirm.layout.display = "none" if self.pending is None else None
        self._status.value = html.block(self.status)

    def _on_model(self, change: dict[str, Any]) -> None:
        if change["new"] and change["new"] != self.chosen:
            self.chosen = change["new"]
            self.pending = None
            self._fill()

    def _ask(self, what: Pending) -> None:
        name, version = self.chosen, self._version.value
        if name is None:
            return
        self.pending = what
        self._question.value = html.block(
            f"<b>Promote {escape(name)} v{version} to production?</b> The version there now is "
            "archived."
            if what is Pending.PROMOTE
            else f"<b>Roll {escape(name)} back</b> to the production version before this one?"
        )
        self._fill()

    def _confirmed(self) -> None:
        what, self.pending = self.pending, None
        name, version = self.chosen, self._version.value
        if what is None or name is None:
            return
        if what is Pending.PROMOTE:
            self._guarded(lambda: self.promote(name, int(version)))
        else:
            self._guarded(lambda: self.rollback(name))

    def _cancelled(self) -> None:
        self.pending = None
        self.status = '<span class="dim">nothing changed</span>'
        self._fill()

    def _guarded(self, action: Callable[[], object]) -> None:
        """A button's action: its error is shown under the buttons, never raised into the
        front end (where no one would see it)."""
        try:
            action()
        except WorkbenchError:
            pass  # `_change` has shown it
        except Exception as exc:
            self.status = html.error(str(exc))
            self.changed_now()

    def close(self) -> None:
        if self._subscription is not None:
            self._subscription.close()
            self._subscription = None
