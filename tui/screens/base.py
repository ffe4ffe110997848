"""What every live screen has: the header, the problems banner, the footer, and `show()`, which
the app calls with each batch while the screen is in front (and with none when it comes back
to the front: then it redraws from the state)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Generic, TypeVar

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer, Header, Static

from tui.keys import bindings_for

T = TypeVar("T")

if TYPE_CHECKING:
    from tui.app import WorkbenchApp
    from tui.feed import Batch
    from tui.state import LiveState


class Banner(Static):
    """Says what is wrong (Kafka or Redis lost, the scheduler down) and that the UI is on it;
    hidden when all is well."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._shown: str | None = None

    def show_problems(self, problems: list[str]) -> None:
        text = "\n".join(f"⚠ {line}" for line in problems)
        if text != self._shown:  # an update lays the whole screen out again: not every 2 s
            self._shown = text
            self.update(text)
            self.display = bool(problems)


class LiveScreen(Screen[None]):
    SCOPE = ""  # its key scope in tui.keys

    def __init_subclass__(cls, **kwargs: Any) -> None:
        cls.BINDINGS = bindings_for(cls.SCOPE)  # before Textual's hook reads them
        super().__init_subclass__(**kwargs)

    @property
    def workbench_app(self) -> WorkbenchApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield Header()
        banner = Banner(id="banner")
        banner.display = False
        yield banner
        yield from self.body()
        yield Footer()

    def body(self) -> ComposeResult:
        raise NotImplementedError

    def on_screen_resume(self) -> None:
        app = self.workbench_app
        self.query_one(Banner).show_problems(app.state.problems())
        self.show(app.state, None)

    def show(self, state: LiveState, batch: Batch | None) -> None:
        """Redraw what changed in `batch` (everything when None)."""


class ReadingScreen(LiveScreen, Generic[T]):
    """A screen of data read from a store rather than carried by events (studies, models):
    read when it comes to the front, every READ_EVERY_S while it is there, and at once when a
    batch brings an event starting with READ_ON (one read at a time; one more after it if
    something happened meanwhile)."""

    READ_EVERY_S = 2.0
    READ_ON = ""  # an event type prefix, e.g. "trial."
    WHAT = ""  # what is read, for error messages

    def __init__(self) -> None:
        super().__init__()
        self._reading = False
        self._again = False

    def on_mount(self) -> None:
        self.set_interval(self.READ_EVERY_S, self.read)

    def on_screen_resume(self) -> None:
        super().on_screen_resume()
        self.read()

    def show(self, state: LiveState, batch: Batch | None) -> None:
        if batch is not None and any(e.type.value.startswith(self.READ_ON) for e in batch.events):
            self.read()

    def read(self) -> None:
        if not self.is_current:
            return
        if self._reading:
            self._again = True
            return
        self._reading = True
        self.workbench_app.background(
            f"reading {self.WHAT}", self.fetch, self._fetched, on_error=self._failed
        )

    def fetch(self) -> T:
        """The data (blocking: it runs in a thread worker)."""
        raise NotImplementedError

    def got(self, data: T) -> None:
        """Show what `fetch` returned (on the UI's loop)."""
        raise NotImplementedError

    def _fetched(self, data: T) -> None:
        self._reading = False
        self.got(data)
        if self._again:
            self._again = False
            self.read()

    def _failed(self, exc: Exception) -> None:
        self._reading = False
        self.notify(f"reading {self.WHAT}: {exc}", severity="error")
