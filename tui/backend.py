"""What the terminal UI asks of the workbench, as plain blocking calls: the app runs each in a
Textual thread worker, so the screen never waits on Redis, Kafka or Dask."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

from workbench.client.overview import Overview
from workbench.client.workbench import Workbench
from workbench.config import Settings
from workbench.events.models import Event
from workbench.events.watch import WatchMode, WatchUpdate
from workbench.events.watch_thread import WatchThread
from workbench.hpo.studies import StudySummary
from workbench.registry.base import Transition
from workbench.registry.manager import ModelEntry

log = logging.getLogger(__name__)


def prepare_processes() -> None:
    """Start multiprocessing's resource tracker while the real stderr is in place: the UI
    replaces sys.stderr, whose descriptor the tracker inherits, so a local Dask cluster started
    later from within the UI could not start its worker processes."""
    from multiprocessing import resource_tracker

    resource_tracker.ensure_running()


class Backend:
    def __init__(
        self, workbench: Workbench, *, profile: str | None = None, owns_workbench: bool = True
    ) -> None:
        self.workbench = workbench
        self.profile = profile
        self.owns_workbench = owns_workbench  # close() closes it too
        self._watch: WatchThread | None = None

    @classmethod
    def open(cls, profile: str | None = None) -> Backend:
        """Local (a Dask cluster in this process, started on first use) without a profile."""
        prepare_processes()
        if profile is None:
            # The local cluster's worker processes share this terminal: their log lines (a
            # task's failure is logged there too) would be drawn over the screens, which show
            # every failure themselves. Read by each worker as it starts.
            os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "critical")
        return cls(Workbench.connect(profile), profile=profile)

    @property
    def settings(self) -> Settings:
        return self.workbench.orchestrator.settings

    @property
    def where(self) -> str:
        if self.workbench.orchestrator.cluster is None:
            return "local (no servers)"
        return f"cluster {self.settings.namespace!r} (profile {self.profile})"

    # -- live ----------------------------------------------------------------------------------
    def watch(
        self,
        on_update: Callable[[WatchUpdate], None],
        on_other: Callable[[Event], None],
        on_mode: Callable[[WatchMode], None],
    ) -> WatchThread:
        self._watch = self.workbench.watch_in_thread(on_update, on_other=on_other, on_mode=on_mode)
        return self._watch

    # -- reads ---------------------------------------------------------------------------------
    def overview(self) -> Overview:
        return self.workbench.overview()

    def studies(self) -> list[StudySummary]:
        return self.workbench.studies()

    def models(self) -> list[ModelEntry]:
        return self.workbench.model_catalog()

    def dependencies(self, execution_id: str) -> dict[str, list[str]]:
        return self.workbench.dependencies(execution_id)

    # -- actions -------------------------------------------------------------------------------
    def submit(self, path: Path) -> str:
        return self.workbench.submit_blocking(path)

    def cancel(self, execution_id: str) -> None:
        self.workbench.cancel(execution_id)

    def rerun(self, execution_id: str) -> str:
        return self.workbench.rerun(execution_id)

    def promote(self, name: str, version: int) -> list[Transition]:
        return self.workbench.promote(name, version, why="promoted from the terminal UI")

    def rollback(self, name: str) -> list[Transition]:
        return self.workbench.rollback(name, why="rolled back from the terminal UI")

    def stop_watch(self) -> None:
        watch, self._watch = self._watch, None
        if watch is not None:
            watch.stop()

    def close(self) -> None:
        self.stop_watch()
        if self.owns_workbench:
            self.workbench.close()
