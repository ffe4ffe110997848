"""Every key binding of the terminal UI, declared once as data: the screens build their
BINDINGS from it, the footer shows them, the help screen lists them, the command palette
offers them."""

from __future__ import annotations

from dataclasses import dataclass

from textual.binding import Binding, BindingType

APP = "app"  # a key that works on every screen


@dataclass(frozen=True)
class Key:
    key: str
    action: str  # a Textual action, run on the screen (or the app for APP keys)
    description: str  # what the help screen and the command palette say
    scope: str = APP  # APP or the name of the screen it belongs to
    footer: bool = True  # shown in the footer (all keys are in the help screen)
    palette: bool = True  # offered in the command palette
    label: str = ""  # the footer's short name for it (the description when empty)

    def binding(self) -> Binding:
        # The footer has room for a word or two per key; the full description is its tooltip.
        return Binding(
            self.key,
            self.action,
            self.label or self.description,
            show=self.footer,
            tooltip=self.description if self.label else "",
        )


KEYS: tuple[Key, ...] = (
    Key("1", "app.switch_mode('overview')", "Overview"),
    Key("2", "app.switch_mode('workflows')", "Workflows"),
    Key("3", "app.switch_mode('tuning')", "Tuning"),
    Key("4", "app.switch_mode('models')", "Models"),
    Key("5", "app.switch_mode('events')", "Events"),
    Key("s", "app.submit", "Submit a workflow file", label="Submit"),
    Key("question_mark", "app.help", "Help"),
    Key("q", "app.quit", "Quit"),
    Key("slash", "focus_filter", "Filter", scope="workflows"),
    Key("enter", "open_execution", "Open", scope="workflows", palette=False),
    Key("c", "cancel", "Cancel execution", scope="workflows", label="Cancel"),
    Key("r", "rerun", "Re-run (retry failed)", scope="workflows", label="Re-run"),
    Key("c", "cancel", "Cancel execution", scope="execution", label="Cancel"),
    Key("r", "rerun", "Re-run (retry failed)", scope="execution", label="Re-run"),
    Key("escape", "app.pop_screen", "Back", scope="execution"),
    Key("p", "promote", "Promote to production", scope="models", label="Promote"),
    Key("b", "rollback", "Roll production back", scope="models", label="Roll back"),
    Key("slash", "focus_filter", "Filter", scope="events"),
    Key("space", "toggle_pause", "Pause / follow", scope="events", label="Pause"),
)

# What a key is called where people read it (the footer says it its own way).
_SHOWN = {"question_mark": "?", "slash": "/", "enter": "Enter", "escape": "Esc", "space": "Space"}


def shown(key: str) -> str:
    return _SHOWN.get(key, key)


def keys_for(scope: str) -> list[Key]:
    return [k for k in KEYS if k.scope == scope]


def bindings_for(scope: str) -> list[BindingType]:
    return [k.binding() for k in keys_for(scope)]
