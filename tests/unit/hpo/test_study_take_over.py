"""Resuming a study: what a new owner does with the trials the previous one left behind."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from workbench.config import Settings
from workbench.errors import TaskCancelledError
from workbench.execution.stops import registered, stop_running
from workbench.hpo.optimizer import RETRIED, RETRY_OF, _take_over, trial_row
from workbench.hpo.storage import study_storage
from workbench.spec.models import HyperparameterConfig
from workbench.tasks.base import CancelSignal, NoParameters, TaskContext
from workbench.tasks.search import trial_budget


def test_running_trials_are_failed_and_asked_again_finished_ones_kept(tmp_path: Path) -> None:
    settings = Settings(cache_dir=tmp_path)
    storage = study_storage(settings, "s")
    study = optuna.create_study(study_name="s", storage=storage, direction="maximize")
    done = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    study.tell(done, 0.5)
    failed = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    study.tell(failed, state=optuna.trial.TrialState.FAIL)
    left = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})  # owner died here

    remaining = _take_over(study, storage, storage.get_study_id_from_name("s"), 5)

    assert remaining == 3  # 5 - the complete one - the failed one; the cut-off one is redone
    trials = {t.number: t for t in study.get_trials()}
    assert trials[left.number].state is optuna.trial.TrialState.FAIL
    assert trials[left.number].user_attrs[RETRIED] is True
    assert trial_row(trials[left.number]).state == "retried"
    waiting = [t for t in trials.values() if t.state is optuna.trial.TrialState.WAITING]
    assert len(waiting) == 1 and waiting[0].user_attrs[RETRY_OF] == left.number
    asked = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    assert asked.params == trials[left.number].params  # the retry is asked first
    assert trials[done.number].state is optuna.trial.TrialState.COMPLETE


def test_a_grid_is_never_asked_for_more_trials_than_it_has_points() -> None:
    config = HyperparameterConfig.model_validate(
        {
            "search_space": {
                "a": {"type": "categorical", "choices": [1, 2, 3]},
                "b": {"type": "integer", "min": 1, "max": 2},
            },
            "objective_metric": "f1_score",
            "sampler": "grid",
            "max_trials": 50,
        }
    )
    assert trial_budget(config) == 6
    assert trial_budget(config.model_copy(update={"sampler": "tpe"})) == 50


def test_a_running_task_is_stopped_through_its_dask_key_with_the_reason() -> None:
    signal = CancelSignal()
    ctx = TaskContext(
        execution_id="e", task_id="train", task_type="t", params=NoParameters(), cancel_event=signal
    )
    with registered(("train", "e"), signal):
        assert stop_running([["train", "e"]], "pruned at step 10") == 1  # keys arrive as lists
        with pytest.raises(TaskCancelledError, match="pruned at step 10"):
            ctx.report_intermediate(10, 0.5)
    assert stop_running([("train", "e")], "late") == 0  # gone once the attempt ended
