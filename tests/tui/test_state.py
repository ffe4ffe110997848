"""What the UI knows, apart from the screens that draw it."""

from __future__ import annotations

from tests.tui import recorded
from tui.state import LiveState


def test_a_worker_is_shown_by_the_name_the_overview_gives_it() -> None:
    """Task records carry the worker's address; the screens show its name, so a simulated GPU
    worker reads `simulated-gpu-0` in a task's row as it does on the overview."""
    state = LiveState()
    address = "tcp://10.0.0.21:40331"
    assert state.worker_name(address) == address  # the overview not read yet
    state.set_overview(recorded.overview())
    assert state.worker_name(address) == "gpu-0"
    assert state.worker_name("tcp://10.9.9.9:1") == "tcp://10.9.9.9:1"  # a worker it lacks
    assert state.worker_name(None) == "-"
