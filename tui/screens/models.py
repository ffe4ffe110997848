"""Models: the registry's names, the versions of the selected one (stage, aliases, metrics)
and the selected version's lineage; promote (p) and roll back (b), each after a confirmation.
Read when the screen comes to the front, every few seconds, and on model events."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import DataTable, Static

from tui import look
from tui.screens.base import ReadingScreen
from tui.screens.dialogs import ConfirmDialog

if TYPE_CHECKING:
    from workbench.registry.base import ModelVersion
    from workbench.registry.manager import ModelEntry

TOP_ROWS = 9  # the most rows the models and versions tables show before they scroll


def when(timestamp: float, *, full: bool = False) -> str:
    """A date and a time of day: short for the tables ("11-24 09:00"), with the year and the
    seconds for the detail panel."""
    return time.strftime("%Y-%m-%d %H:%M:%S" if full else "%m-%d %H:%M", time.localtime(timestamp))


class ModelsScreen(ReadingScreen[list["ModelEntry"]]):
    SCOPE = "models"
    READ_EVERY_S = 5.0
    READ_ON = "model."
    WHAT = "the registry"

    def __init__(self) -> None:
        super().__init__()
        self.entries: dict[str, ModelEntry] = {}
        self.chosen: str | None = None
        self.version: int | None = None

    def body(self) -> ComposeResult:
        with Horizontal(id="models-top"):
            names: DataTable[object] = DataTable(id="names", cursor_type="row")
            names.border_title = "Models"
            for column in ("model", "versions", "production", "aliases"):
                names.add_column(column, key=column)
            yield names
            versions: DataTable[object] = DataTable(
                id="versions", cursor_type="row", zebra_stripes=True
            )
            versions.border_title = "Versions"
            for column in ("version", "stage", "aliases", "metrics", "created", "by"):
                versions.add_column(column, key=column)
            yield versions
        with VerticalScroll(id="lineage"):
            yield Static(id="lineage-text")

    def fetch(self) -> list[ModelEntry]:
        return self.workbench_app.backend.models()

    def got(self, entries: list[ModelEntry]) -> None:
        self.entries = {e.name: e for e in entries}
        names = self.query_one("#names", DataTable)
        names.clear()
        for entry in entries:
            production = next((v for v in entry.versions if v.stage.value == "production"), None)
            aliases = sorted({a for v in entry.versions for a in v.aliases})
            names.add_row(
                entry.name,
                str(len(entry.versions)),
                "-" if production is None else f"v{production.version}",
                ", ".join(aliases) or "-",
                key=entry.name,
            )
        if self.chosen not in self.entries:
            self.chosen = entries[0].name if entries else None
        if self.chosen is not None:
            names.move_cursor(row=list(self.entries).index(self.chosen), animate=False)
        self._show_versions()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        key = event.row_key.value
        if event.data_table.id == "names" and key in self.entries and key != self.chosen:
            self.chosen, self.version = str(key), None
            self._show_versions()
        elif event.data_table.id == "versions" and key is not None:
            self.version = int(str(key))
            self._show_lineage()

    def _show_versions(self) -> None:
        table = self.query_one("#versions", DataTable)
        table.clear()
        entry = self.entries.get(self.chosen or "")
        if entry is None:
            self._fit_top()
            self.query_one("#lineage-text", Static).update("no models registered yet")
            return
        ordered = sorted(entry.versions, key=lambda v: v.version, reverse=True)
        for version in ordered:
            table.add_row(
                f"v{version.version}",
                look.state(version.stage.value),
                ", ".join(version.aliases) or "-",
                look.metrics(version.metrics, shown=2),
                when(version.created_at),
                version.created_by,
                key=str(version.version),
            )
        self._fit_top()
        numbers = [v.version for v in ordered]
        if self.version not in numbers:
            self.version = numbers[0] if numbers else None
        if self.version is not None:
            table.move_cursor(row=numbers.index(self.version), animate=False)
        self._show_lineage()

    def _fit_top(self) -> None:
        """The two tables side by side as tall as the longer one needs (borders and header
        included), so that the lineage below gets the rest of the screen."""
        rows = max(self.query_one(f"#{n}", DataTable).row_count for n in ("names", "versions"))
        self.query_one("#models-top").styles.height = min(max(rows, 1), TOP_ROWS) + 3

    def _selected(self) -> ModelVersion | None:
        entry = self.entries.get(self.chosen or "")
        if entry is None:
            return None
        return next((v for v in entry.versions if v.version == self.version), None)

    def _show_lineage(self) -> None:
        version = self._selected()
        if version is None:
            return
        facts = Table.grid(padding=(0, 2))
        facts.add_row(
            Text(f"{version.name} v{version.version}", style="bold"),
            look.state(version.stage.value),
        )
        facts.add_row("flavor", version.flavor)
        facts.add_row("created", f"{when(version.created_at, full=True)} by {version.created_by}")
        facts.add_row("metrics", look.metrics(version.metrics, shown=20))
        facts.add_row("params", ", ".join(f"{k}={v}" for k, v in version.params.items()) or "-")
        # Its stage changes first (short, and what promote / roll back change), then where it
        # came from (long: fingerprints, library versions).
        history = [t for t in self.entries[version.name].history if t.version == version.version]
        moves = Table.grid(padding=(0, 2))
        for t in history:
            moves.add_row(
                when(t.at),
                Text.assemble(look.state(t.from_stage.value), " → ", look.state(t.to_stage.value)),
                Text(f"by {t.who}: {t.why}" if t.why else f"by {t.who}"),
            )
        lineage = Table.grid(padding=(0, 2))
        for key, value in version.lineage.items():
            lineage.add_row(Text(key, style="grey62"), str(value))
        self.query_one("#lineage-text", Static).update(
            Group(
                facts,
                Text(""),
                Text("history", style="bold"),
                moves if history else Text("no stage changes yet", style="grey62"),
                Text(""),
                Text("lineage", style="bold"),
                lineage if version.lineage else Text("none recorded", style="grey62"),
            )
        )

    # -- actions -------------------------------------------------------------------------------
    def action_promote(self) -> None:
        version = self._selected()
        if version is None:
            self.notify("no model version selected", severity="warning")
            return
        app = self.workbench_app

        def confirmed(yes: bool | None) -> None:
            if yes:
                app.background(
                    f"promoting {version.name} v{version.version}",
                    lambda: app.backend.promote(version.name, version.version),
                    lambda moved: self._changed(
                        f"{version.name} v{version.version} is in production", moved
                    ),
                )

        app.push_screen(
            ConfirmDialog(
                f"Promote {version.name} v{version.version} to production? The current "
                "production version is archived.",
                yes="Promote",
            ),
            confirmed,
        )

    def action_rollback(self) -> None:
        name = self.chosen
        if name is None:
            self.notify("no model selected", severity="warning")
            return
        app = self.workbench_app

        def confirmed(yes: bool | None) -> None:
            if yes:
                app.background(
                    f"rolling {name} back",
                    lambda: app.backend.rollback(name),
                    lambda moved: self._changed(f"{name} rolled back", moved),
                )

        app.push_screen(
            ConfirmDialog(
                f"Roll {name} back to the version in production before this one?", yes="Roll back"
            ),
            confirmed,
        )

    def _changed(self, what: str, moved: Sequence[object]) -> None:
        self.notify(what if moved else "nothing changed")
        self.read()
