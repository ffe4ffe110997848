"""HyperparameterOptimizer: an Optuna study whose trials are runs of the workflow on Dask.

Each trial is the base workflow with the sampled values written into the tuned tasks'
parameters, run by the orchestrator like any other workflow. Tasks the tuned parameters do not
reach (preparation, features) have the same cache keys in every trial, so they are computed
once and every other trial takes them from the cache (single flight makes concurrent trials
wait for the one computing them). Up to `n_parallel` trials run at once.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, ValidationError

from workbench.dag.records import WorkflowExecution
from workbench.dag.states import WorkflowStatus
from workbench.errors import SpecError, SpecIssue, WorkbenchError
from workbench.events.models import Event, EventType
from workbench.execution.cache_plan import CacheMode
from workbench.hpo.pruning import PRUNED_AT_STEP, TrialLink
from workbench.hpo.storage import study_storage
from workbench.spec.models import HyperparameterConfig, TaskType
from workbench.tasks.checks import load_workflow
from workbench.tasks.params import KNOWN_METRICS
from workbench.tasks.search import corner, make_pruner, make_sampler, suggest, trial_budget

if TYPE_CHECKING:
    import optuna

    from workbench.coordination.base import StoredExecution
    from workbench.orchestrator.orchestrator import DistributedOrchestrator

log = logging.getLogger(__name__)


class OptimizationRequest(BaseModel):
    """The seed's shape: the workflow and its hyperparameter configuration."""

    model_config = ConfigDict(extra="forbid")

    workflow_spec: dict[str, Any]
    hyperparameter_config: HyperparameterConfig
    base_dir: Path | None = None  # where the workflow's relative paths resolve


@dataclass(frozen=True)
class Trial:
    number: int
    params: dict[str, Any]
    value: float | None
    state: str  # complete | pruned | fail | retried (its orchestrator died; asked again)
    duration_s: float
    execution_id: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class OptimizationResult:
    study_name: str
    best_value: float | None
    best_params: dict[str, Any]
    trials: list[Trial] = field(default_factory=list)
    direction: str = "maximize"
    importances: dict[str, float] = field(default_factory=dict)  # parameter -> share

    def to_json(self) -> dict[str, Any]:
        return {
            "study_name": self.study_name,
            "direction": self.direction,
            "best_value": self.best_value,
            "best_params": self.best_params,
            "trials": [t.__dict__ for t in self.trials],
            "importances": self.importances,
        }


def new_study_name(request: OptimizationRequest) -> str:
    return f"{request.workflow_spec.get('workflow_id', 'study')}-{secrets.token_hex(4)}"


def parse_request(request: OptimizationRequest | Mapping[str, Any]) -> OptimizationRequest:
    """A request given in code. Its `workflow_spec` is the workflow itself or the path of a
    workflow file (relative to `base_dir` when given, else to the current directory)."""
    if isinstance(request, OptimizationRequest):
        return request
    source = "hyperparameter optimization request"
    data = dict(request)
    if isinstance(data.get("workflow_spec"), str):
        folder = Path(data["base_dir"]) if data.get("base_dir") else Path.cwd()
        data = _with_workflow_file(data, folder, source)
    return _validated(data, source)


def _with_workflow_file(data: dict[str, Any], folder: Path, source: str) -> dict[str, Any]:
    """`data` with the workflow read from the file its `workflow_spec` names (relative to
    `folder`); the workflow's relative paths resolve against the file's folder unless
    `base_dir` says otherwise."""
    import yaml

    workflow_path = (folder / data["workflow_spec"]).resolve()
    try:
        workflow = yaml.safe_load(workflow_path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        issue = SpecIssue("workflow_spec", f"cannot load {workflow_path}: {exc}")
        raise SpecError([issue], source) from None
    loaded = {**data, "workflow_spec": workflow}
    if not loaded.get("base_dir"):
        loaded["base_dir"] = str(workflow_path.parent)
    return loaded


def _validated(data: Mapping[str, Any], source: str) -> OptimizationRequest:
    try:
        return OptimizationRequest.model_validate(data)
    except ValidationError as exc:
        issues = [
            SpecIssue(".".join(str(p) for p in error["loc"]), error["msg"])
            for error in exc.errors()
        ]
        raise SpecError(issues, source) from None


def load_request(path: Path) -> OptimizationRequest:
    """A request from a JSON or YAML file. Its `workflow_spec` is the workflow itself or the
    path of a workflow file (relative to the request's folder); the workflow's relative paths
    resolve against its own folder."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SpecError([SpecIssue("", f"cannot read the request: {exc}")], str(path)) from None
    except yaml.YAMLError as exc:
        raise SpecError([SpecIssue("", f"not valid JSON or YAML: {exc}")], str(path)) from None
    if not isinstance(data, dict):
        raise SpecError([SpecIssue("", "the request must be a mapping")], str(path))
    if isinstance(data.get("workflow_spec"), str):
        data = _with_workflow_file(data, path.parent, str(path))
    data.setdefault("base_dir", str(path.parent))
    return _validated(data, str(path))


class HyperparameterOptimizer:
    def __init__(self, orchestrator: DistributedOrchestrator) -> None:
        self.orchestrator = orchestrator

    async def optimize(
        self,
        request: OptimizationRequest | Mapping[str, Any],
        *,
        importances: bool = False,
        study_name: str | None = None,
    ) -> OptimizationResult:
        """Run the study. With `importances`, also how much each parameter mattered (fANOVA:
        it loads scikit-learn and takes about a second, so it is asked for, not default).

        Locally the study runs here. In a cluster it is submitted like a workflow: the leader
        gives it to an instance, which runs its trials across the cluster; if that instance
        dies another one resumes the study (it lives in the cluster's Redis). `study_name`
        (default: the workflow id and a random suffix) must be new."""
        parsed = _with_evaluation(parse_request(request))
        _check(parsed)  # every mistake, before anything is written
        workflow_id = str(parsed.workflow_spec.get("workflow_id", "study"))
        name = study_name or new_study_name(parsed)
        await asyncio.to_thread(self._create_study, name, parsed)
        cluster = self.orchestrator.cluster
        if cluster is None:
            await self.run_study(name, parsed)
        else:
            base_dir = str(parsed.base_dir or Path.cwd())
            spec = parsed.model_dump(mode="json", exclude={"base_dir"})
            await cluster.submit_study(name, workflow_id, spec, base_dir)
            ended = await cluster.wait(name)
            if ended.status is not WorkflowStatus.SUCCEEDED:
                reason = ended.error.message if ended.error else ended.status.value
                raise WorkbenchError(f"study {name} ended {ended.status.value}: {reason}")
        return await asyncio.to_thread(self._result, name, parsed, importances)

    async def resume(self, stored: StoredExecution) -> None:
        """Run a study this instance was given in a cluster, from wherever it stands."""
        parsed = parse_request({**stored.spec, "base_dir": stored.base_dir})
        await self.run_study(stored.execution_id, parsed)

    def _create_study(self, name: str, request: OptimizationRequest) -> None:
        import optuna

        try:
            study = optuna.create_study(
                study_name=name,
                storage=study_storage(self.orchestrator.settings, name),
                direction=request.hyperparameter_config.direction,
            )
        except optuna.exceptions.DuplicatedStudyError:
            raise WorkbenchError(
                f"a study named {name!r} exists already; choose another study_name"
            ) from None
        study.set_user_attr(STARTED_AT, time.time())

    async def run_study(self, name: str, request: OptimizationRequest) -> None:
        """Ask for trials until `max_trials` have ended (or `timeout_s` has passed since the
        study began), `n_parallel` at a time. Resuming, trials left running by a previous
        owner are failed and asked again with the same parameters."""
        import optuna

        config = request.hyperparameter_config
        targets = _targets(request)
        storage = study_storage(self.orchestrator.settings, name)
        study_id = await asyncio.to_thread(storage.get_study_id_from_name, name)
        earlier = len(await asyncio.to_thread(storage.get_all_trials, study_id, deepcopy=False))
        if earlier and config.seed is not None:
            # Resuming: a sampler seeded as at the start would draw the first trials' values
            # again; seeded by how far the study got, it stays reproducible and moves on.
            config = config.model_copy(update={"seed": config.seed + earlier})
        study = await asyncio.to_thread(
            optuna.load_study,
            study_name=name,
            storage=storage,
            sampler=make_sampler(config),
            pruner=make_pruner(config.pruner),
        )
        remaining = await asyncio.to_thread(
            _take_over, study, storage, study_id, trial_budget(config)
        )
        deadline = None
        if config.timeout_s is not None:
            deadline = float(study.user_attrs.get(STARTED_AT, time.time())) + config.timeout_s
        limit = asyncio.Semaphore(config.n_parallel)

        async def one() -> None:
            async with limit:
                if deadline is not None and time.time() > deadline:
                    return
                trial = await asyncio.to_thread(study.ask)
                await self._run_trial(request, targets, study, study_id, trial)

        await asyncio.gather(*(one() for _ in range(remaining)))

    def _result(
        self, name: str, request: OptimizationRequest, importances: bool
    ) -> OptimizationResult:
        """Blocking: read the study back (whoever ran its trials)."""
        import optuna

        config = request.hyperparameter_config
        study = optuna.load_study(
            study_name=name, storage=study_storage(self.orchestrator.settings, name)
        )
        trials = [trial_row(t) for t in study.get_trials(deepcopy=False)]
        best = best_trial(trials, config.direction)
        return OptimizationResult(
            study_name=name,
            best_value=None if best is None else best.value,
            best_params={} if best is None else best.params,
            trials=trials,
            direction=config.direction,
            importances=_importances(study, sum(t.state == "complete" for t in trials))
            if importances
            else {},
        )

    async def _run_trial(
        self,
        request: OptimizationRequest,
        targets: list[str],
        study: optuna.Study,
        study_id: int,
        trial: optuna.trial.Trial,
    ) -> None:
        config = request.hyperparameter_config
        params = {name: suggest(trial, name, dim) for name, dim in config.search_space.items()}
        spec = _with_params(request.workflow_spec, targets, params)
        started = time.monotonic()
        self._trial_event(study.study_name, trial.number, EventType.TRIAL_STARTED, params=params)
        result = await self._evaluate(request, spec, targets, study, study_id, trial)
        self._trial_event(
            study.study_name,
            trial.number,
            EventType.TRIAL_FINISHED,
            params=params,
            value=result.value,
            state=result.state,
            duration_s=time.monotonic() - started,
            trial_execution=result.execution_id,
            error=result.error,
        )

    def _trial_event(self, study: str, number: int, kind: EventType, **data: Any) -> None:
        """For the UIs: the study is the 'execution' of its trial events."""
        self.orchestrator.bus.publish(
            Event(
                type=kind,
                execution_id=study,
                workflow_id=study,
                task_id=f"trial-{number}",
                status=data.get("state"),
                metrics={} if data.get("value") is None else {"value": float(data["value"])},
                data={"trial": number, **data},
                instance_id=self.orchestrator.instance_id,
                seq=2 * number + (1 if kind is EventType.TRIAL_STARTED else 2),
                timestamp=time.time(),
            )
        )

    async def _evaluate(
        self,
        request: OptimizationRequest,
        spec: dict[str, Any],
        targets: list[str],
        study: optuna.Study,
        study_id: int,
        trial: optuna.trial.Trial,
    ) -> _Outcome:
        """Run the trial's workflow and tell the study how it went."""
        import optuna

        config = request.hyperparameter_config
        storage = study_storage(self.orchestrator.settings, study.study_name)
        trial_id = await asyncio.to_thread(
            storage.get_trial_id_from_study_id_trial_number, study_id, trial.number
        )
        link = TrialLink(
            study=study.study_name,
            trial_id=trial_id,
            metric=config.objective_metric,
            pruner=config.pruner,
            # Steps of two models cannot be compared: prune only a search over one task.
            tasks=tuple(targets) if len(targets) == 1 and config.pruner != "none" else (),
        )
        try:
            checked = await asyncio.to_thread(load_workflow, spec, base_dir=request.base_dir)
            execution_id = await self.orchestrator._submit(checked, CacheMode.USE, link)
            await asyncio.to_thread(trial.set_user_attr, EXECUTION_ID, execution_id)
            execution = await self.orchestrator.wait_for_execution(execution_id)
        except Exception as exc:  # one trial's failure is the study's data, not its end
            log.warning("trial %d failed: %s", trial.number, exc)
            return await self._tell_failed(study, trial, str(exc))
        value = _objective(execution, config.objective_metric)
        if execution.status is WorkflowStatus.SUCCEEDED and value is not None:
            await asyncio.to_thread(study.tell, trial, value)
            return _Outcome("complete", value, execution_id)
        frozen = await asyncio.to_thread(storage.get_trial, trial_id)
        if PRUNED_AT_STEP in frozen.user_attrs:
            await asyncio.to_thread(study.tell, trial, state=optuna.trial.TrialState.PRUNED)
            last = frozen.intermediate_values.get(frozen.user_attrs[PRUNED_AT_STEP])
            return _Outcome("pruned", last, execution_id)
        error = execution.error.message if execution.error else "objective not reported"
        return await self._tell_failed(study, trial, error, execution_id)

    async def _tell_failed(
        self,
        study: optuna.Study,
        trial: optuna.trial.Trial,
        error: str,
        execution_id: str | None = None,
    ) -> _Outcome:
        import optuna

        def tell() -> None:
            trial.set_user_attr(ERROR, error)
            study.tell(trial, state=optuna.trial.TrialState.FAIL)

        await asyncio.to_thread(tell)
        return _Outcome("fail", None, execution_id, error)


@dataclass(frozen=True)
class _Outcome:
    """How a trial ended, for its `trial.finished` event."""

    state: str
    value: float | None
    execution_id: str | None
    error: str | None = None


# Trial and study user attributes.
STARTED_AT = "workbench_started_at"
EXECUTION_ID = "execution_id"
ERROR = "error"
RETRIED = "retried"  # failed because its orchestrator died, and asked again
RETRY_OF = "retry_of"


def all_trials(storage: Any, study_name: str) -> list[Any]:
    """Blocking: every trial of the study, as stored."""
    trials: list[Any] = storage.get_all_trials(
        storage.get_study_id_from_name(study_name), deepcopy=False
    )
    return trials


def _take_over(study: optuna.Study, storage: Any, study_id: int, max_trials: int) -> int:
    """Blocking. Fail and re-queue the trials a previous owner left running (the cache keeps
    whatever of their work had finished); returns how many trials are still to be asked."""
    import optuna

    states = optuna.trial.TrialState
    for left in study.get_trials(deepcopy=False, states=(states.RUNNING,)):
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, left.number)
        storage.set_trial_user_attr(trial_id, RETRIED, True)
        storage.set_trial_state_values(trial_id, states.FAIL)
        study.enqueue_trial(left.params, user_attrs={RETRY_OF: left.number})
        log.warning("trial %d was running when its orchestrator stopped: asked again", left.number)
    ended = [
        t
        for t in study.get_trials(deepcopy=False)
        if t.state in (states.COMPLETE, states.PRUNED)
        or (t.state is states.FAIL and not t.user_attrs.get(RETRIED))
    ]
    return max(0, max_trials - len(ended))


def best_trial(trials: list[Trial], direction: str) -> Trial | None:
    """The best completed trial for `direction` (maximize / minimize); None before any."""
    done = [t for t in trials if t.state == "complete" and t.value is not None]
    return (max if direction == "maximize" else min)(
        done, key=lambda t: t.value or 0.0, default=None
    )


def trial_row(trial: optuna.trial.FrozenTrial) -> Trial:
    duration = trial.duration.total_seconds() if trial.duration is not None else 0.0
    state = trial.state.name.lower()
    if trial.user_attrs.get(RETRIED):
        state = "retried"
    value = trial.value
    if state == "pruned" and value is None and trial.intermediate_values:
        value = trial.intermediate_values[max(trial.intermediate_values)]
    return Trial(
        trial.number,
        dict(trial.params),
        value,
        state,
        duration,
        trial.user_attrs.get(EXECUTION_ID),
        trial.user_attrs.get(ERROR),
    )


EVALUATION_TASK = "hpo_evaluate"


def _with_evaluation(request: OptimizationRequest) -> OptimizationRequest:
    """A held-out objective for a workflow that has none: when no task reports the objective
    but it is a metric the evaluation task computes, every trial gets an evaluation of the
    tuned models on the test split (the seed's example tunes a workflow of preparation and
    training alone). Tuning on training-split metrics would reward overfitting."""
    config = request.hyperparameter_config
    tasks = list(request.workflow_spec.get("tasks", []))
    produced = _metrics_produced(tasks)
    if produced is None or config.objective_metric in produced:
        return request
    if config.objective_metric not in KNOWN_METRICS:
        return request  # _check explains what the workflow reports
    targets = _targets(request)
    if not targets:
        return request
    evaluation = {
        "task_id": EVALUATION_TASK,
        "task_type": TaskType.MODEL_EVALUATION.value,
        "dependencies": list(targets),
        "description": f"added to measure {config.objective_metric} on the test split",
    }
    spec = {**request.workflow_spec, "tasks": [*tasks, evaluation]}
    return request.model_copy(update={"workflow_spec": spec})


def _targets(request: OptimizationRequest) -> list[str]:
    """The tasks whose parameters are tuned: those named, else every model_training task."""
    tasks = request.workflow_spec.get("tasks", [])
    training = [t["task_id"] for t in tasks if t.get("task_type") == TaskType.MODEL_TRAINING]
    return list(request.hyperparameter_config.target_tasks) or training


def _check(request: OptimizationRequest) -> None:
    """Every problem a trial would hit, before any trial runs."""
    config = request.hyperparameter_config
    tasks = request.workflow_spec.get("tasks", [])
    targets = _targets(request)
    issues: list[SpecIssue] = []
    known = {t.get("task_id") for t in tasks}
    for name in config.target_tasks:
        if name not in known:
            issues.append(SpecIssue("hyperparameter_config.target_tasks", f"no task {name!r}"))
    if not targets:
        issues.append(
            SpecIssue(
                "hyperparameter_config.target_tasks",
                "the workflow has no model_training task; name the tasks to tune",
            )
        )
    produced = _metrics_produced(tasks)
    if produced is not None and config.objective_metric not in produced:
        issues.append(
            SpecIssue(
                "hyperparameter_config.objective_metric",
                f"no task of this workflow reports {config.objective_metric!r}; "
                f"it reports: {', '.join(sorted(produced))}",
            )
        )
    if issues:
        raise SpecError(issues, "hyperparameter optimization request")
    # The extremes of every dimension must be accepted by the tuned tasks' parameters.
    for end in ("min", "max"):
        sample = {name: corner(dim, end) for name, dim in config.search_space.items()}
        load_workflow(
            _with_params(request.workflow_spec, targets, sample),
            base_dir=request.base_dir,
        )


def _metrics_produced(tasks: list[dict[str, Any]]) -> set[str] | None:
    """Metric names the built-in tasks can report; None when a custom task may report any."""
    produced: set[str] = set()
    for task in tasks:
        kind = task.get("task_type")
        if kind in (TaskType.MODEL_EVALUATION, TaskType.MODEL_VALIDATION):
            produced |= set(KNOWN_METRICS)
            produced |= {f"cv_{m}_mean" for m in KNOWN_METRICS}
        elif kind == TaskType.MODEL_TRAINING:
            produced |= {f"train_{m}" for m in KNOWN_METRICS}
        elif kind not in {t.value for t in TaskType}:
            return None
    return produced


def _objective(execution: WorkflowExecution, name: str) -> float | None:
    """The objective from an evaluation task (test split), else a validation task (folds),
    else any task that reports it."""
    preference = {TaskType.MODEL_EVALUATION.value: 0, TaskType.MODEL_VALIDATION.value: 1}
    reporting = [t for t in execution.tasks.values() if name in t.metrics]
    reporting.sort(key=lambda t: preference.get(t.task_type, 2))
    return float(reporting[0].metrics[name]) if reporting else None


def _with_params(
    spec: Mapping[str, Any], targets: list[str], params: Mapping[str, Any]
) -> dict[str, Any]:
    trial_spec = copy.deepcopy(dict(spec))
    for task in trial_spec.get("tasks", []):
        if task.get("task_id") in targets:
            task["parameters"] = {**task.get("parameters", {}), **params}
    return trial_spec


def _importances(study: optuna.Study, completed: int) -> dict[str, float]:
    """How much each parameter explains the objective (fANOVA); empty with too few trials."""
    import optuna

    if completed < 2:
        return {}
    names = list(study.best_params)
    if len(names) == 1:  # nothing to apportion
        return {names[0]: 1.0}
    try:
        return dict(optuna.importance.get_param_importances(study))
    except (RuntimeError, ValueError, ImportError) as exc:
        log.info("no parameter importances: %s", exc)
        return {}
