"""The client API: Workbench, what every script and UI talks to."""

from workbench.client.workbench import Workbench

__all__ = ["Workbench"]
