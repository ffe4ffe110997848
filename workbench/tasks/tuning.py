"""`hyperparameter_tuning`: search estimator parameters by k-fold cross-validation on the train
split (an Optuna study inside the task), then refit the best ones on the whole train split.

On a Dask worker every fold of every trial is a Dask task of its own, up to `n_parallel` trials
at a time, while this task only asks, judges and tells (it secedes from the worker's thread
pool, so the folds can run on its own worker too). A trial's folds run one after another: after
each, the running mean goes to the pruner, and a pruned trial submits no more folds. Called
outside a worker (a test, a script), the folds run here, one after another.
"""

from __future__ import annotations

import logging
import math
import queue
import statistics
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal, Protocol, cast

import numpy as np

from workbench.errors import TaskInputError, WorkbenchError
from workbench.spec.models import HyperparameterConfig
from workbench.tasks import training
from workbench.tasks.base import TaskContext, TaskEventSink, TaskResult
from workbench.tasks.data import (
    FeatureSet,
    ProblemKind,
    json_safe,
)
from workbench.tasks.estimators import fit_estimator, make_estimator
from workbench.tasks.metrics import primary_metric, score_estimator
from workbench.tasks.model_validation import fold_splits, transform_fold
from workbench.tasks.params import (
    LOWER_IS_BETTER,
    TrainingParams,
    TuningParams,
    problem_metrics,
)
from workbench.tasks.search import make_pruner, make_sampler, suggest, trial_budget

if TYPE_CHECKING:
    import optuna

log = logging.getLogger(__name__)

# How a trial ends (its state in the trial table, as the study optimizer names them) -> the
# metric that counts them.
COUNTED = {"complete": "trials_complete", "pruned": "trials_pruned", "fail": "trials_failed"}

Direction = Literal["maximize", "minimize"]

# Progress: the trials take the task up to here, the refit the rest.
REFIT_FROM = 0.9
# How often the search wakes while waiting for folds, to notice a cancel.
WAIT_S = 0.25


@dataclass(frozen=True)
class Fold:
    """One split of the train split, transformed by a transformer fitted on its fit rows."""

    X_fit: np.ndarray
    y_fit: np.ndarray
    X_valid: np.ndarray
    y_valid: np.ndarray


@dataclass(frozen=True)
class TrialModel:
    """What one trial fits on every fold: the estimator and its parameters."""

    algorithm: str
    problem: ProblemKind
    n_classes: int
    params: dict[str, Any]
    seed: int
    n_jobs: int


@dataclass(frozen=True)
class FoldScore:
    scores: dict[str, float]
    worker: str | None  # the Dask worker that fitted it; None in-process


def fit_fold(fold: Fold, model: TrialModel) -> FoldScore:
    """Fit on a fold's fit rows and score on its held-out rows. Runs as a Dask task."""
    estimator = make_estimator(
        model.algorithm,
        model.problem,
        model.params,
        random_state=model.seed,
        n_jobs=model.n_jobs,
    )
    fit_estimator(estimator, model.algorithm, fold.X_fit, fold.y_fit, progress=_quiet)
    scores, _ = score_estimator(
        estimator, fold.X_valid, fold.y_valid, model.problem, model.n_classes
    )
    return FoldScore(scores, _worker_address())


def _quiet(fraction: float, message: str) -> None:
    return None


def _worker_address() -> str | None:
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except (ImportError, ValueError):  # not in a Dask worker's task thread
        return None


@dataclass(frozen=True)
class TrialRow:
    """One line of the trial table in the summary."""

    number: int
    params: dict[str, Any]
    value: float | None
    state: str  # complete | pruned | fail
    duration_s: float
    folds: int  # folds that were fitted (a pruned trial stops early)
    workers: list[str] = field(default_factory=list)
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        row: dict[str, Any] = json_safe(asdict(self))
        return row


@dataclass
class _Running:
    trial: optuna.trial.Trial
    model: TrialModel
    started: float
    values: list[float] = field(default_factory=list)
    workers: set[str] = field(default_factory=set)


# -- where the folds run ------------------------------------------------------------------------
class FoldFuture(Protocol):
    """A concurrent.futures.Future or a Dask Future of a FoldScore."""

    def result(self) -> FoldScore: ...

    def add_done_callback(self, fn: Callable[[Any], None]) -> None: ...


class FoldRunner(Protocol):
    def submit(self, trial: int, fold: int, model: TrialModel) -> FoldFuture: ...


class LocalFolds:
    """Fits each fold as it is submitted, in this thread."""

    def __init__(self, ctx: TaskContext, folds: list[Fold]) -> None:
        self._ctx = ctx
        self._folds = folds

    def submit(self, trial: int, fold: int, model: TrialModel) -> Future[FoldScore]:
        self._ctx.check_cancelled()
        done: Future[FoldScore] = Future()
        try:
            done.set_result(fit_fold(self._folds[fold], model))
        except Exception as exc:  # the trial's failure, told to the study like a remote one
            done.set_exception(exc)
        return done


class DaskFolds:
    """Submits each fold as a Dask task; the folds' data is scattered once, up front."""

    def __init__(self, client: Any, folds: list[Fold], name: str) -> None:
        self._client = client
        self._name = name
        self._token = uuid.uuid4().hex[:8]  # a retried attempt must not reuse keys
        self._data = client.scatter(folds, hash=False)
        self._submitted: list[Any] = []

    def submit(self, trial: int, fold: int, model: TrialModel) -> FoldFuture:
        future = self._client.submit(
            fit_fold, self._data[fold], model, key=(self._name, self._token, trial, fold)
        )
        self._submitted.append(future)
        return cast(FoldFuture, future)

    def release(self) -> None:
        """Free the scattered data and stop folds still queued (cancelled or failed search)."""
        self._client.cancel([*self._submitted, *self._data])


# -- the study ----------------------------------------------------------------------------------
class Search:
    """Asks trials, runs their folds through a FoldRunner, reports and tells; keeps the table."""

    def __init__(
        self,
        ctx: TaskContext,
        params: TuningParams,
        config: HyperparameterConfig,
        runner: FoldRunner,
        model: TrialModel,
    ) -> None:
        self.ctx = ctx
        self.params = params
        self.study = make_study(ctx.task_id, config)
        self.runner = runner
        self.model = model
        self.metric = config.objective_metric
        self.rows: list[TrialRow] = []
        self._asked = 0
        self._budget = trial_budget(config)
        self._deadline = None if params.timeout_s is None else time.monotonic() + params.timeout_s
        self._best: float | None = None
        self._pending: dict[Any, _Running] = {}  # a fold's future -> its trial
        self._done: queue.Queue[Any] = queue.Queue()  # futures as they finish

    def run(self) -> list[TrialRow]:
        while True:
            self._start_trials()
            if not self._pending:
                return sorted(self.rows, key=lambda row: row.number)
            try:
                handle = self._done.get(timeout=WAIT_S)
            except queue.Empty:
                pass
            else:
                self._advance(handle, self._pending.pop(handle))
            self.ctx.check_cancelled()

    def _start_trials(self) -> None:
        while len(self._pending) < self.params.n_parallel and self._may_ask():
            trial = self.study.ask()
            self._asked += 1
            sampled = {
                name: suggest(trial, name, dim) for name, dim in self.params.search_space.items()
            }
            model = replace(self.model, params={**self.model.params, **sampled})
            self._submit(_Running(trial, model, time.monotonic()), 0)

    def _submit(self, run: _Running, fold: int) -> None:
        handle = self.runner.submit(run.trial.number, fold, run.model)
        self._pending[handle] = run
        handle.add_done_callback(self._done.put)  # at once when already done (in-process)

    def _may_ask(self) -> bool:
        """Within budget, and before the deadline (the first trial always starts)."""
        expired = self._deadline is not None and time.monotonic() >= self._deadline
        return self._asked < self._budget and not (expired and self._asked)

    def _advance(self, handle: FoldFuture, run: _Running) -> None:
        """A fold of `run` is done: fail, complete, prune, or submit its next fold."""
        fold = len(run.values) + 1
        try:
            score = handle.result()
        except Exception as exc:  # one trial's failure is the study's data, not its end
            self._finish(run, "fail", error=f"fold {fold}: {type(exc).__name__}: {exc}")
            return
        value = score.scores.get(self.metric)
        if value is None or not math.isfinite(value):
            self._finish(run, "fail", error=f"fold {fold}: {self.metric} could not be computed")
            return
        run.values.append(value)
        run.workers.update([score.worker] if score.worker else [])
        mean = statistics.fmean(run.values)
        run.trial.report(mean, step=fold - 1)
        if fold == self.params.folds:
            self._finish(run, "complete", value=mean)
        elif run.trial.should_prune():
            self._finish(run, "pruned")
        else:
            self._submit(run, fold)

    def _finish(
        self, run: _Running, state: str, value: float | None = None, error: str | None = None
    ) -> None:
        import optuna

        states = {"pruned": optuna.trial.TrialState.PRUNED, "fail": optuna.trial.TrialState.FAIL}
        if state == "complete":
            self.study.tell(run.trial, value)
        else:
            self.study.tell(run.trial, state=states[state])
        if error is not None:
            log.warning("trial %d of %s failed: %s", run.trial.number, self.ctx.task_id, error)
        sampled = {name: run.model.params[name] for name in self.params.search_space}
        self.rows.append(
            TrialRow(
                number=run.trial.number,
                params=sampled,
                value=value,
                state=state,
                duration_s=round(time.monotonic() - run.started, 3),
                folds=len(run.values) + (1 if state == "fail" else 0),
                workers=sorted(run.workers),
                error=error,
            )
        )
        self._report(run.trial.number, value)

    def _report(self, number: int, value: float | None) -> None:
        if value is not None:
            better = max if self.study.direction.name == "MAXIMIZE" else min
            self._best = value if self._best is None else better(self._best, value)
            self.ctx.log_metric("best_value", self._best, step=number)
        best = "none complete yet" if self._best is None else f"{self._best:.4g}"
        self.ctx.report_progress(
            REFIT_FROM * len(self.rows) / self._budget,
            f"trial {len(self.rows)}/{self._budget}, best {self.metric} {best}",
        )


def study_config(
    params: TuningParams, metric: str, direction: Direction, seed: int
) -> HyperparameterConfig:
    """The search in the study optimizer's terms, for the sampler, pruner and budget it shares."""
    return HyperparameterConfig(
        search_space=params.search_space,
        max_trials=params.max_trials,
        objective_metric=metric,
        direction=direction,
        sampler=params.sampler,
        pruner=params.pruner,
        n_parallel=params.n_parallel,
        timeout_s=params.timeout_s,
        seed=seed,
    )


def make_study(name: str, config: HyperparameterConfig) -> optuna.Study:
    """An in-memory study: it lives as long as this task (the trial table is the record)."""
    import optuna

    return optuna.create_study(
        study_name=name,
        direction=config.direction,
        sampler=make_sampler(config),
        pruner=make_pruner(config.pruner, warmup_steps=1),  # steps are folds: from the 2nd
    )


# -- the task -----------------------------------------------------------------------------------
def objective(params: TuningParams, problem: ProblemKind) -> tuple[str, Direction]:
    """The metric to optimise and its direction; the metric must be one this problem has."""
    metric = params.objective_metric or primary_metric(problem)
    if metric not in problem_metrics(problem):
        raise TaskInputError(
            f"objective_metric {metric!r} is not a {problem.value} metric, and the data is "
            f"{problem.value} data: use one of {', '.join(problem_metrics(problem))}"
        )
    default: Direction = "minimize" if metric in LOWER_IS_BETTER else "maximize"
    return metric, params.direction or default


def make_folds(
    features: FeatureSet, problem: ProblemKind, labels: list[Any], folds: int, seed: int
) -> list[Fold]:
    """The folds of the train split, each transformed by a clone of the feature transformer
    fitted on its fit rows only (no leakage from the held-out rows). Done once for all trials."""
    X, y = features.data.X_train, features.y_train
    result = []
    for fit_rows, valid_rows in fold_splits(y, problem, len(labels), folds, seed):
        X_fit, X_valid = transform_fold(features.transformer, X, y, fit_rows, valid_rows)
        result.append(Fold(X_fit, y[fit_rows], X_valid, y[valid_rows]))
    return result


def _in_worker_task_thread() -> bool:
    """On a Dask worker, in the thread that runs the task, so it can secede. Not so in a
    script, or in the thread a task with timeout_s runs its body in."""
    if _worker_address() is None:
        return False
    from distributed.worker import thread_state

    return hasattr(thread_state, "start_time")


@contextmanager
def fold_runner(ctx: TaskContext, folds: list[Fold]) -> Iterator[tuple[FoldRunner, str]]:
    """Dask tasks through the worker's client when this runs on a worker, else in-process."""
    if not _in_worker_task_thread():
        yield LocalFolds(ctx, folds), "in-process"
        return
    from distributed import worker_client

    # worker_client secedes from the worker's thread pool while the folds run (this thread
    # only waits): no deadlock even on a single-threaded worker.
    with worker_client() as client:
        runner = DaskFolds(client, folds, f"{ctx.task_id}-fold")
        try:
            yield runner, "dask"
        finally:
            runner.release()


def refit(ctx: TaskContext, params: TuningParams, best: dict[str, Any], seed: int) -> TaskResult:
    """model_training itself, with the best parameters: the same TrainedModel, summary and
    metrics as a training task given them. Its progress maps to the last part of ours."""
    values = {"random_state": seed, **params.fixed, **best}
    values.update(algorithm=params.algorithm, problem_type=params.problem_type)
    sub = TaskContext(
        execution_id=ctx.execution_id,
        task_id=ctx.task_id,
        task_type=ctx.task_type,
        params=TrainingParams.model_validate(values),
        inputs=ctx.inputs,  # no global parameters: the one training reads is given above
        resources=ctx.resources,
        base_dir=ctx.base_dir,
        attempt=ctx.attempt,
        sink=_refit_sink(ctx),
    )
    return training.run(sub)


def _refit_sink(ctx: TaskContext) -> TaskEventSink:
    """Through ctx, so a cancel of the tuning task also stops the refit."""

    def sink(kind: str, payload: dict[str, Any]) -> None:
        if kind == "progress":
            fraction = REFIT_FROM + (1 - REFIT_FROM) * payload["fraction"]
            ctx.report_progress(min(fraction, 0.99), f"refit: {payload['message']}")
        elif kind == "metric":
            ctx.log_metric(payload["name"], payload["value"], payload["step"])

    return sink


def best_trial(ctx: TaskContext, rows: list[TrialRow], direction: Direction) -> TrialRow:
    """The best complete trial; a clear error when none completed."""
    complete = [row for row in rows if row.value is not None]
    if complete:
        pick = max if direction == "maximize" else min
        return pick(complete, key=lambda row: row.value or 0.0)
    counts = {state: sum(row.state == state for row in rows) for state in ("pruned", "fail")}
    errors = "; ".join(f"trial {row.number}: {row.error}" for row in rows if row.error)
    raise WorkbenchError(
        f"no trial of task {ctx.task_id!r} completed ({len(rows)} run: {counts['fail']} failed, "
        f"{counts['pruned']} pruned); {errors or 'no errors'}. Fix the search space or the "
        "fixed parameters, or give the search more time (timeout_s)."
    )


def tuning_result(
    fitted: TaskResult, rows: list[TrialRow], best: TrialRow, config: HyperparameterConfig
) -> TaskResult:
    """The refit's output, its metrics and summary, and the search's beside them."""
    assert best.value is not None
    metrics = {"best_value": best.value, f"cv_{config.objective_metric}": best.value}
    for state, name in COUNTED.items():
        metrics[name] = float(sum(row.state == state for row in rows))
    metrics.update(fitted.metrics)
    summary = {
        **fitted.summary,
        "objective_metric": config.objective_metric,
        "direction": config.direction,
        "best_params": json_safe(best.params),
        "best_trial": best.number,
        "sampler": config.sampler,
        "pruner": config.pruner,
        "trials": [row.to_json() for row in rows],
    }
    return TaskResult(output=fitted.output, metrics=metrics, summary=summary)


def run(ctx: TaskContext) -> TaskResult:
    """Tune an estimator's parameters by k-fold cross-validation; output the best refit."""
    params = cast(TuningParams, ctx.params)
    seed = training.resolve_seed(ctx, params.seed)
    ctx.report_progress(0.0, "preparing folds")
    features, _ = training.training_features(ctx)
    data = features.data
    problem = data.problem if params.problem_type == "auto" else ProblemKind(params.problem_type)
    features, labels = training.retarget(features, problem)
    metric, direction = objective(params, problem)
    folds = make_folds(features, problem, labels, params.folds, seed)
    n_jobs = max(1, int(ctx.resources.cpu))
    model = TrialModel(params.algorithm, problem, len(labels), dict(params.fixed), seed, n_jobs)
    config = study_config(params, metric, direction, seed)
    with fold_runner(ctx, folds) as (runner, where):
        rows = Search(ctx, params, config, runner, model).run()
    best = best_trial(ctx, rows, direction)
    ctx.report_progress(REFIT_FROM, f"refitting trial {best.number} on the whole train split")
    result = tuning_result(refit(ctx, params, best.params, seed), rows, best, config)
    result.summary.update(folds=params.folds, trials_ran=where)
    ctx.report_progress(1.0, f"best {metric} {best.value:.4g} (trial {best.number})")
    return result
