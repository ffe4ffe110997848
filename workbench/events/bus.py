"""Publisher/Subscriber seams and the in-process bus used in local mode."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Protocol

from workbench.events.models import Event

log = logging.getLogger(__name__)

EventCallback = Callable[[Event], None]


class Publisher(Protocol):
    def publish(self, event: Event) -> None: ...


class Subscription:
    def __init__(self, bus: InProcessBus, callback: EventCallback, execution_id: str | None):
        self._bus = bus
        self.callback = callback
        self.execution_id = execution_id

    def close(self) -> None:
        self._bus._remove(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class InProcessBus:
    """Delivers each event synchronously to every subscriber, in publish order.

    A subscriber that raises is logged and kept: a broken display must never fail a workflow.
    """

    def __init__(self) -> None:
        self._subscriptions: tuple[Subscription, ...] = ()
        self._lock = threading.Lock()

    def subscribe(self, callback: EventCallback, execution_id: str | None = None) -> Subscription:
        subscription = Subscription(self, callback, execution_id)
        with self._lock:
            self._subscriptions = (*self._subscriptions, subscription)
        return subscription

    def _remove(self, subscription: Subscription) -> None:
        with self._lock:
            self._subscriptions = tuple(s for s in self._subscriptions if s is not subscription)

    def publish(self, event: Event) -> None:
        for subscription in self._subscriptions:
            if subscription.execution_id not in (None, event.execution_id):
                continue
            try:
                subscription.callback(event)
            except Exception:
                log.exception("event subscriber %r failed on %s", subscription.callback, event.type)
