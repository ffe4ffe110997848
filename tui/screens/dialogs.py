"""Dialogs: submit a workflow file, confirm an action, and the help screen (every key)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from tui.keys import APP, KEYS, shown

if TYPE_CHECKING:
    from tui.app import WorkbenchApp
    from tui.backend import Backend


class ConfirmDialog(ModalScreen[bool]):
    """Yes / no for an action that changes something others rely on."""

    BINDINGS = [Binding("escape", "no", "No"), Binding("y", "yes", "Yes")]

    def __init__(self, question: str, *, yes: str = "Yes") -> None:
        super().__init__()
        self.question = question
        self.yes = yes

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.question, id="question")
            with Horizontal(classes="buttons"):
                yield Button(self.yes, variant="warning", id="yes")
                yield Button("No", id="no")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()  # the safe choice is the default

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_yes(self) -> None:
        self.dismiss(True)

    def action_no(self) -> None:
        self.dismiss(False)


class SubmitDialog(ModalScreen[str | None]):
    """A workflow file's path; it is checked (structure, graph, parameters, data files) before
    anything is submitted, and a problem is shown here with the dialog left open."""

    BINDINGS = [Binding("escape", "close", "Close")]

    def __init__(self, backend: Backend) -> None:
        super().__init__()
        self.backend = backend

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label("Submit a workflow file (.yaml, .yml or .json)")
            yield Input(placeholder="examples/fraud_detection.yaml", id="path")
            yield Static("", id="problem")
            with Horizontal(classes="buttons"):
                yield Button("Submit", variant="primary", id="submit")
                yield Button("Close", id="close")

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    def on_input_submitted(self) -> None:
        self._submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "submit":
            self._submit()
        else:
            self.dismiss(None)

    def action_close(self) -> None:
        self.dismiss(None)

    def _submit(self) -> None:
        text = self.query_one(Input).value.strip()
        problem = self.query_one("#problem", Static)
        if not text:
            problem.update("[red]give the path of a workflow file[/]")
            return
        problem.update("checking…")
        app: WorkbenchApp = self.app  # type: ignore[assignment]
        app.background(
            "submitting",
            lambda: self.backend.submit(Path(text).expanduser()),
            self._submitted,
            on_error=lambda exc: problem.update(f"[red]{_escape(str(exc))}[/]"),
        )

    def _submitted(self, execution_id: str) -> None:
        self.dismiss(execution_id)


class HelpScreen(ModalScreen[None]):
    """Every key binding, by screen: the same data the footer and the command palette use."""

    BINDINGS = [Binding("escape,question_mark,q", "close", "Close")]

    def compose(self) -> ComposeResult:
        table = Table("key", "what it does", "where", box=None, padding=(0, 2))
        for key in KEYS:
            table.add_row(
                shown(key.key), key.description, "everywhere" if key.scope == APP else key.scope
            )
        with VerticalScroll(classes="dialog help"):
            yield Label("[b]Key bindings[/]  (also in the command palette: ctrl+p)")
            yield Static(table, id="keys")
            yield Label("Esc closes this help.")

    def action_close(self) -> None:
        self.dismiss(None)


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)
