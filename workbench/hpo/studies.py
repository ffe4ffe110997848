"""The studies there are, read back for the UIs: their trials and the best value so far.

Studies are found where `hpo.storage` keeps them: journal files under the cache folder locally,
`{namespace}:study:{name}:*` keys in the cluster's Redis. Blocking calls.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from workbench.hpo.optimizer import Trial, all_trials, best_trial, trial_row
from workbench.hpo.storage import study_storage

if TYPE_CHECKING:
    from workbench.config import Settings

_LOG_SUFFIX = ":log_number"  # the one key each Redis journal always has


@dataclass(frozen=True)
class StudySummary:
    name: str
    direction: str  # maximize | minimize
    trials: list[Trial] = field(default_factory=list)

    @property
    def completed(self) -> int:
        return sum(1 for t in self.trials if t.state == "complete")

    @property
    def running(self) -> int:
        return sum(1 for t in self.trials if t.state == "running")

    @property
    def best(self) -> Trial | None:
        return best_trial(self.trials, self.direction)

    def best_so_far(self) -> list[tuple[int, float]]:
        """(trial number, best value among completed trials up to it), one per completion."""
        curve: list[tuple[int, float]] = []
        better = (lambda a, b: a > b) if self.direction == "maximize" else (lambda a, b: a < b)
        for trial in sorted(self.trials, key=lambda t: t.number):
            if trial.state != "complete" or trial.value is None:
                continue
            if not curve or better(trial.value, curve[-1][1]):
                curve.append((trial.number, trial.value))
            else:
                curve.append((trial.number, curve[-1][1]))
        return curve


def study_names(settings: Settings) -> list[str]:
    if settings.redis_url:
        import redis

        prefix = f"{settings.namespace}:study:"
        client = redis.Redis.from_url(settings.redis_url, socket_timeout=2.0)
        try:
            keys = client.scan_iter(match=f"{prefix}*{_LOG_SUFFIX}", count=500)
            names = {k.decode()[len(prefix) : -len(_LOG_SUFFIX)] for k in keys}
        finally:
            client.close()
        return sorted(names)
    folder = settings.cache_dir / "studies"
    return sorted(p.stem for p in folder.glob("*.log")) if folder.is_dir() else []


def load_study(settings: Settings, name: str) -> StudySummary:
    storage = study_storage(settings, name)
    study_id = storage.get_study_id_from_name(name)
    directions = storage.get_study_directions(study_id)
    direction = directions[0].name.lower() if directions else "maximize"
    trials = [trial_row(t) for t in all_trials(storage, name)]
    return StudySummary(name, direction, trials)


def list_studies(settings: Settings) -> list[StudySummary]:
    """Every study with its trials, newest name last; a study that cannot be read is left out
    (it is being created, or its journal is damaged: `load_study` says which)."""
    studies = []
    for name in study_names(settings):
        try:
            studies.append(load_study(settings, name))
        except Exception:  # optuna's KeyError for a study whose creation is still in flight
            continue
    return studies
