"""A lifecycle manager over a real SQLite registry in a temp folder, and the events it emits."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from workbench.config import Settings
from workbench.events.models import Event
from workbench.registry.manager import ModelLifecycleManager


@pytest.fixture
def manager(tmp_path: Path) -> Iterator[tuple[ModelLifecycleManager, list[Event]]]:
    events: list[Event] = []
    lifecycle = ModelLifecycleManager.from_settings(
        Settings(cache_dir=tmp_path / "cache"), publish=events.append, who="ana"
    )
    yield lifecycle, events
    lifecycle.close()
