"""The publisher's bounded queue and its overflow policy: progress goes before state changes.

When the queue is full, a queued progress report is replaced by a newer one of the same task
(coalesced), then the oldest progress is dropped, and only then the oldest state change. Pure:
no I/O and no locking (the publisher guards it).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from workbench.events.models import Event, EventType


@dataclass
class PublisherStats:
    """Where the events given to `publish` went. received = published + coalesced + dropped
    + failed + the ones still queued or in flight."""

    received: int = 0
    published: int = 0  # acknowledged by the broker
    coalesced: int = 0  # progress replaced by a newer report of the same task while queued
    dropped: int = 0  # lost to a full queue, to close(), or published after close()
    dropped_state_changes: int = 0  # the part of `dropped` that was not progress
    # Handed to Kafka but not acknowledged within the send timeout. A few may still arrive
    # (a request in flight when the time ran out), after the events before them.
    failed: int = 0


class EventQueue:
    """A bounded FIFO of events with the overflow policy above. Pure: no I/O, no locking."""

    def __init__(self, maxsize: int, stats: PublisherStats) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self.maxsize = maxsize
        self.stats = stats
        self._items: OrderedDict[int, Event] = OrderedDict()  # ticket -> event, FIFO
        self._progress: OrderedDict[int, None] = OrderedDict()  # queued progress tickets
        self._superseded: OrderedDict[int, None] = OrderedDict()  # ...with a newer one queued
        self._newest: dict[tuple[str, str | None], int] = {}  # (execution, task) -> ticket
        self._next_ticket = 0

    def __len__(self) -> int:
        return len(self._items)

    def put(self, event: Event) -> None:
        progress = event.type is EventType.TASK_PROGRESS
        self.stats.received += 1
        if len(self._items) >= self.maxsize and not self._make_room(event, progress):
            count_dropped(self.stats, [event])
            return
        ticket = self._next_ticket
        self._next_ticket += 1
        self._items[ticket] = event
        if progress:
            self._progress[ticket] = None
            older = self._newest.get(_task_key(event))
            if older is not None:
                self._superseded[older] = None
            self._newest[_task_key(event)] = ticket

    def take(self, limit: int) -> list[Event]:
        """Up to `limit` events from the front, oldest first."""
        taken: list[Event] = []
        while self._items and len(taken) < limit:
            ticket, event = self._items.popitem(last=False)
            self._forget(ticket, event)
            taken.append(event)
        return taken

    def clear(self) -> list[Event]:
        """Everything still queued, oldest first; the queue is empty afterwards."""
        return self.take(len(self._items))

    def _make_room(self, incoming: Event, progress: bool) -> bool:
        """Evict one queued event for `incoming`, or say it must be dropped instead."""
        if progress:
            same_task = self._newest.get(_task_key(incoming))
            if same_task is not None:
                self._evict(same_task)
                self.stats.coalesced += 1
                return True
        if self._superseded:
            self._evict(next(iter(self._superseded)))
            self.stats.coalesced += 1
            return True
        if self._progress:
            count_dropped(self.stats, [self._evict(next(iter(self._progress)))])
            return True
        if progress:
            return False  # progress never pushes out a state change
        count_dropped(self.stats, [self._evict(next(iter(self._items)))])
        return True

    def _evict(self, ticket: int) -> Event:
        event = self._items.pop(ticket)
        self._forget(ticket, event)
        return event

    def _forget(self, ticket: int, event: Event) -> None:
        if event.type is not EventType.TASK_PROGRESS:
            return
        del self._progress[ticket]
        self._superseded.pop(ticket, None)
        key = _task_key(event)
        if self._newest.get(key) == ticket:
            del self._newest[key]


def count_dropped(stats: PublisherStats, events: list[Event]) -> None:
    stats.dropped += len(events)
    stats.dropped_state_changes += sum(e.type is not EventType.TASK_PROGRESS for e in events)


def _task_key(event: Event) -> tuple[str, str | None]:
    return (event.execution_id, event.task_id)
