"""The live feed: a burst becomes one batch with the newest view of each execution and every
event in order, and the UI is woken once per batch, not once per event; redraws are paced by
their cost."""

from __future__ import annotations

import pytest

from tests.unit.events_watch.fakes import execution, progress
from tui.feed import FRAME_SHARE, MAX_EVENTS_PER_BATCH, LiveFeed
from workbench.dag.states import TaskState
from workbench.events.watch import WatchMode, WatchUpdate


def test_a_burst_is_one_batch_with_the_latest_views_and_every_event() -> None:
    wakes: list[int] = []
    feed = LiveFeed(lambda: wakes.append(1))
    views = [execution("x", a=TaskState.RUNNING) for _ in range(3)]
    events = [progress(n, "a", n / 10) for n in range(1, 4)]
    for view, event in zip(views, events, strict=True):
        feed.on_update(WatchUpdate(view, event, WatchMode.LIVE))
    feed.on_mode(WatchMode.LIVE)  # no change: nothing to tell
    assert wakes == [1]
    batch = feed.take()
    assert batch.executions == {"x": views[-1]} and batch.executions["x"] is views[-1]
    assert batch.events == events and len(batch.received_at) == 3
    assert batch.mode is WatchMode.LIVE  # the first update told the mode
    assert not feed.take()  # empty after the take

    feed.on_mode(WatchMode.POLLING)
    assert wakes == [1, 1] and feed.take().mode is WatchMode.POLLING


def test_a_burst_longer_than_a_batch_keeps_its_newest_events() -> None:
    feed = LiveFeed(lambda: None)
    view = execution("x", a=TaskState.RUNNING)
    total = MAX_EVENTS_PER_BATCH + 10
    for n in range(1, total + 1):
        feed.on_update(WatchUpdate(view, progress(n, "a", 0.5), WatchMode.LIVE))
    batch = feed.take()
    assert batch.dropped == 10
    assert [e.seq for e in batch.events] == list(range(11, total + 1))


def test_costly_redraws_come_less_often_cheap_ones_at_most_max_hz() -> None:
    feed = LiveFeed(lambda: None, max_hz=60)
    feed.drawn(0.001)
    assert feed.interval_s == 1 / 60
    for _ in range(50):  # redraws keep to FRAME_SHARE of the UI's time
        feed.drawn(0.020)
    assert feed.interval_s == pytest.approx(0.020 / FRAME_SHARE)
    for _ in range(3):  # a few slow frames: no longer
        feed.drawn(0.100)
    assert feed.interval_s == pytest.approx(0.020 / FRAME_SHARE)
    for _ in range(50):
        feed.drawn(0.002)
    assert feed.interval_s == 1 / 60
