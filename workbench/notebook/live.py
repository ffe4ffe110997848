"""What every notebook view shares: coalesced redraws, and a display that degrades gracefully.

A view keeps plain state, fed from a background thread (the watch, the event bus), and
renders it as HTML. Where a widget front end can show it (an IPython kernel), it is displayed
as an ipywidgets widget that a `Throttle` redraws at most ~10 times a second; everywhere else
(nbconvert, a plain terminal, a saved notebook without widget state) the same object shows
its HTML or text summary. ipywidgets is imported only when a widget is built.
"""

from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

REDRAW_S = 0.1  # at most ~10 redraws a second per view


class Throttle:
    """Runs `flush` once after any number of `poke()`s, never more often than every
    `interval_s`, on a timer thread: a burst of 10,000 events costs one redraw per interval,
    and the last state is always drawn."""

    def __init__(self, flush: Callable[[], None], interval_s: float = REDRAW_S) -> None:
        self._flush = flush
        self.interval_s = interval_s
        self._lock = threading.Lock()
        self._flushing = threading.Lock()  # one flush at a time, even when one runs long
        self._timer: threading.Timer | None = None
        self._last = 0.0
        self.flushes = 0

    def poke(self) -> None:
        with self._lock:
            if self._timer is not None:
                return  # a flush is due already: it will draw this change too
            delay = max(0.0, self._last + self.interval_s - time.monotonic())
            self._timer = threading.Timer(delay, self._run)
            self._timer.daemon = True
            self._timer.start()

    def flush_now(self) -> None:
        """Draw at once (the view has finished: its last state must not wait)."""
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
        self._run(from_timer=False)

    def _run(self, from_timer: bool = True) -> None:
        with self._flushing:
            with self._lock:
                if from_timer:
                    self._timer = None
                self._last = time.monotonic()
            try:
                self._flush()
            except Exception:  # a redraw must never take the watch thread down
                log.exception("a notebook view failed to redraw")
            self.flushes += 1


def in_kernel() -> bool:
    """True inside an IPython kernel (Jupyter, nbclient): where a widget can be shown."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def show(obj: object) -> Any:
    """Display `obj` in the running notebook cell; returns the display's handle (None outside
    IPython), whose `update(obj)` rewrites that output in place."""
    try:
        from IPython.display import display
    except ImportError:
        return None
    return display(obj, display_id=True)


def settle(handle: Any, obj: object) -> None:
    """Rewrite a displayed output with `obj`'s final state: the widget in the kernel is live
    anyway, but the HTML and text saved with the notebook (what nbconvert or a viewer without
    widgets shows) are those of the display, taken when it was made."""
    if handle is not None:
        handle.update(obj)


class LiveView(ABC):
    """A notebook object: a live widget in a kernel, its HTML or text summary elsewhere.

    Subclasses give `html()` and `text()` (the summary, from the current state) and may
    extend `build()` (the widget; by default one HTML widget showing `html()`). `changed()`,
    from any thread, asks for a redraw."""

    CSS_CLASS = "workbench-view"  # each view's own, for styling and for finding it on a page

    def __init__(self) -> None:
        self._widget: Any = None
        self._throttle = Throttle(self._redraw)

    # -- for subclasses ------------------------------------------------------------------------
    @abstractmethod
    def html(self) -> str:
        """The current state as HTML: the widget's content and the static fallback."""

    @abstractmethod
    def text(self) -> str:
        """The current state as plain text, for a terminal."""

    def build(self) -> Any:
        import ipywidgets as widgets

        self._html = widgets.HTML(self.html())
        return widgets.VBox([self._html])

    def redraw(self) -> None:
        """Bring the built widget up to date with the state (on the throttle's thread)."""
        self._html.value = self.html()

    def changed(self) -> None:
        if self._widget is not None:
            self._throttle.poke()

    def changed_now(self) -> None:
        if self._widget is not None:
            self._throttle.flush_now()

    # -- display -------------------------------------------------------------------------------
    @property
    def widget(self) -> Any:
        """The ipywidgets widget, built on first use (and live from then on)."""
        if self._widget is None:
            self._widget = self.build()
            self._widget.add_class(self.CSS_CLASS)
        return self._widget

    def _redraw(self) -> None:
        if self._widget is not None:
            self.redraw()

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        bundle: dict[str, Any] = {}
        if in_kernel():
            bundle.update(self.widget._repr_mimebundle_())
        # The fallbacks go with the widget view: a front end without widgets (nbconvert, a
        # notebook saved without widget state) shows the HTML, a terminal the text.
        bundle["text/html"] = self.html()
        bundle["text/plain"] = self.text()
        return bundle

    def __repr__(self) -> str:
        return self.text()
