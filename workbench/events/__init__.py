"""Events: the Event model, Publisher/Subscriber seams and the in-process bus."""

from workbench.events.bus import InProcessBus, Publisher, Subscription
from workbench.events.models import Event, EventType

__all__ = ["Event", "EventType", "InProcessBus", "Publisher", "Subscription"]
