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
from workbench.errors import SpecError, SpecIssue
from workbench.events.models import Event, EventType
from workbench.hpo.space import corner, make_sampler, suggest
from workbench.spec.models import HyperparameterConfig, TaskType
from workbench.tasks.checks import load_workflow
from workbench.tasks.params import KNOWN_METRICS

if TYPE_CHECKING:
    import optuna

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
    state: str  # complete | fail
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


def parse_request(request: OptimizationRequest | Mapping[str, Any]) -> OptimizationRequest:
    if isinstance(request, OptimizationRequest):
        return request
    return _validated(request, "hyperparameter optimization request")


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
    base_dir = path.parent
    workflow = data.get("workflow_spec")
    if isinstance(workflow, str):
        workflow_path = (path.parent / workflow).resolve()
        try:
            data["workflow_spec"] = yaml.safe_load(workflow_path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            issue = SpecIssue("workflow_spec", f"cannot load {workflow_path}: {exc}")
            raise SpecError([issue], str(path)) from None
        base_dir = workflow_path.parent
    data.setdefault("base_dir", str(base_dir))
    return _validated(data, str(path))


class HyperparameterOptimizer:
    def __init__(self, orchestrator: DistributedOrchestrator) -> None:
        self.orchestrator = orchestrator

    async def optimize(
        self, request: OptimizationRequest | Mapping[str, Any], *, importances: bool = False
    ) -> OptimizationResult:
        """Run the study. With `importances`, also how much each parameter mattered (fANOVA:
        it loads scikit-learn and takes about a second, so it is asked for, not default)."""
        import optuna

        parsed = parse_request(request)
        config = parsed.hyperparameter_config
        parsed = _with_evaluation(parsed)
        targets = _check(parsed)
        name = f"{parsed.workflow_spec.get('workflow_id', 'study')}-{secrets.token_hex(4)}"
        study = optuna.create_study(
            study_name=name,
            storage=self._storage(name),
            direction=config.direction,
            sampler=make_sampler(config),
        )
        trials: list[Trial] = []
        limit = asyncio.Semaphore(config.n_parallel)
        deadline = None if config.timeout_s is None else time.monotonic() + config.timeout_s

        async def one() -> None:
            async with limit:
                if deadline is not None and time.monotonic() > deadline:
                    return
                trial = study.ask()
                trials.append(await self._run_trial(parsed, targets, study, trial))

        await asyncio.gather(*(one() for _ in range(config.max_trials)))
        done = [t for t in trials if t.value is not None]
        best = (max if config.direction == "maximize" else min)(
            done, key=lambda t: t.value or 0.0, default=None
        )
        return OptimizationResult(
            study_name=study.study_name,
            best_value=None if best is None else best.value,
            best_params={} if best is None else best.params,
            trials=sorted(trials, key=lambda t: t.number),
            direction=config.direction,
            importances=(
                await asyncio.to_thread(_importances, study, len(done)) if importances else {}
            ),
        )

    def _storage(self, name: str) -> Any:
        """A journal file per study in the cache folder: parallel processes can share it."""
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        folder = self.orchestrator.settings.cache_dir / "studies"
        folder.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(folder / f"{name}.log")))

    async def _run_trial(
        self,
        request: OptimizationRequest,
        targets: list[str],
        study: optuna.Study,
        trial: optuna.trial.Trial,
    ) -> Trial:
        config = request.hyperparameter_config
        params = {name: suggest(trial, name, dim) for name, dim in config.search_space.items()}
        spec = _with_params(request.workflow_spec, targets, params)
        started = time.monotonic()
        self._trial_event(study.study_name, trial.number, EventType.TRIAL_STARTED, params=params)
        result = await self._evaluate(request, spec, study, trial, params, started)
        self._trial_event(
            study.study_name,
            trial.number,
            EventType.TRIAL_FINISHED,
            params=params,
            value=result.value,
            state=result.state,
            duration_s=result.duration_s,
            trial_execution=result.execution_id,
            error=result.error,
        )
        return result

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
        study: optuna.Study,
        trial: optuna.trial.Trial,
        params: dict[str, Any],
        started: float,
    ) -> Trial:
        config = request.hyperparameter_config
        try:
            checked = await asyncio.to_thread(load_workflow, spec, base_dir=request.base_dir)
            execution = await self.orchestrator.run_workflow(checked)
        except Exception as exc:  # one trial's failure is the study's data, not its end
            log.warning("trial %d failed: %s", trial.number, exc)
            study.tell(trial, state=_failed())
            return Trial(
                trial.number, params, None, "fail", time.monotonic() - started, None, str(exc)
            )
        value = _objective(execution, config.objective_metric)
        if execution.status is not WorkflowStatus.SUCCEEDED or value is None:
            error = execution.error.message if execution.error else "objective not reported"
            study.tell(trial, state=_failed())
            return Trial(
                trial.number,
                params,
                None,
                "fail",
                time.monotonic() - started,
                execution.execution_id,
                error,
            )
        study.tell(trial, value)
        return Trial(
            trial.number,
            params,
            value,
            "complete",
            time.monotonic() - started,
            execution.execution_id,
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
    training = [t["task_id"] for t in tasks if t.get("task_type") == TaskType.MODEL_TRAINING]
    targets = config.target_tasks or training
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


def _check(request: OptimizationRequest) -> list[str]:
    """Every problem a trial would hit, before any trial runs; returns the tuned tasks."""
    config = request.hyperparameter_config
    tasks = request.workflow_spec.get("tasks", [])
    training = [t["task_id"] for t in tasks if t.get("task_type") == TaskType.MODEL_TRAINING]
    targets = config.target_tasks or training
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
    return targets


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


def _failed() -> Any:
    import optuna

    return optuna.trial.TrialState.FAIL
