"""Where a study's trials live: an Optuna journal that every process running its trials shares.

Locally it is a file per study under the cache folder (processes on one machine append to it
under a file lock); with Redis configured it is the cluster's Redis, under a key prefix per
study, so any instance can resume the study or judge its trials for pruning.
"""

from __future__ import annotations

import threading
import warnings
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from workbench.config import Settings

_open: dict[str, Any] = {}
_lock = threading.Lock()


def study_storage(settings: Settings, study_name: str) -> Any:
    """The study's storage, opened once per process (a journal replays its log on open)."""
    from optuna.storages import JournalStorage

    where = _location(settings, study_name)
    with _lock:
        storage = _open.get(where)
        if storage is None:
            storage = _open[where] = JournalStorage(_backend(settings, study_name))
        return storage


def _location(settings: Settings, study_name: str) -> str:
    if settings.redis_url:
        return f"{settings.redis_url}#{settings.namespace}:study:{study_name}"
    return str(settings.cache_dir / "studies" / f"{study_name}.log")


def _backend(settings: Settings, study_name: str) -> Any:
    if settings.redis_url:
        from optuna.exceptions import ExperimentalWarning
        from optuna.storages.journal import JournalRedisBackend

        with warnings.catch_warnings():  # the backend is marked experimental since Optuna 3.1
            warnings.simplefilter("ignore", ExperimentalWarning)
            return JournalRedisBackend(
                settings.redis_url, prefix=f"{settings.namespace}:study:{study_name}"
            )
    from optuna.storages.journal import JournalFileBackend

    folder = settings.cache_dir / "studies"
    folder.mkdir(parents=True, exist_ok=True)
    return JournalFileBackend(str(folder / f"{study_name}.log"))
