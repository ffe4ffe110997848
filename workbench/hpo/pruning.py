"""Pruning a trial while it trains, wherever its run is: the instance that runs a trial's
workflow watches the tuned task's intermediate values, reports them to the study and stops the
task's body on the worker once the study's pruner says so."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from workbench.hpo.storage import study_storage
from workbench.tasks.search import make_pruner

if TYPE_CHECKING:
    from workbench.config import Settings
    from workbench.execution.dag_executor import ExecutionRun

log = logging.getLogger(__name__)

# The trial's user attribute that marks it pruned (set by whichever instance pruned it).
PRUNED_AT_STEP = "pruned_at_step"


@dataclass(frozen=True)
class TrialLink:
    """What a trial's run carries (stored with the execution in a cluster) to be pruned."""

    study: str
    trial_id: int
    metric: str
    pruner: str
    tasks: tuple[str, ...]  # the tasks that report intermediate values

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "tasks": list(self.tasks)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TrialLink:
        return cls(**{**data, "tasks": tuple(data["tasks"])})


class PruningWatch:
    """Attached to a trial's run as its `on_intermediate`."""

    def __init__(self, link: TrialLink, settings: Settings, run: ExecutionRun) -> None:
        self.link = link
        self._settings = settings
        self._run = run
        self._trial: Any = None
        self._lock = asyncio.Lock()  # reports are judged one at a time, in order
        self._pending: set[asyncio.Future[None]] = set()
        self.pruned_at: int | None = None

    def __call__(self, task_id: str, step: int, value: float) -> None:
        if task_id not in self.link.tasks or self.pruned_at is not None:
            return
        judging = asyncio.ensure_future(self._judge(task_id, step, value))
        self._pending.add(judging)
        judging.add_done_callback(self._pending.discard)

    async def _judge(self, task_id: str, step: int, value: float) -> None:
        async with self._lock:
            if self.pruned_at is not None:
                return
            try:
                prune = await asyncio.to_thread(self._report, step, value)
            except Exception as exc:  # the study is unreachable: the trial trains on
                log.warning(
                    "could not report trial %d's step %d: %s", self.link.trial_id, step, exc
                )
                return
            if prune:
                self.pruned_at = step
                await self._run.stop_task(
                    task_id, f"pruned by the hyperparameter search at step {step}"
                )

    def _report(self, step: int, value: float) -> bool:
        """Blocking: the study's storage is a file or Redis."""
        trial = self._trial
        if trial is None:
            import optuna

            storage = study_storage(self._settings, self.link.study)
            study = optuna.study.Study(
                study_name=self.link.study,
                storage=storage,
                sampler=optuna.samplers.RandomSampler(),  # never samples: only judges
                pruner=make_pruner(self.link.pruner),
            )
            trial = self._trial = optuna.trial.Trial(study, self.link.trial_id)
        trial.report(value, step)
        if not trial.should_prune():
            return False
        trial.set_user_attr(PRUNED_AT_STEP, step)
        return True
