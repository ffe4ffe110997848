"""Checking a workflow spec against the task registry before anything runs.

A CheckedWorkflow is what the executor gets: a spec whose graph is a DAG, whose task types are
registered and available, whose parameters are parsed into each type's params model and whose
input files exist. Every problem is collected and raised together in one SpecError.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from workbench.errors import SpecError, SpecIssue, UnknownTaskTypeError, WorkbenchError
from workbench.spec.graph import graph_issues, topological_order
from workbench.spec.issues import (
    Positions,
    locate_all,
    render_path,
    sort_issues,
    validation_issues,
)
from workbench.spec.loader import parse_spec, read_spec
from workbench.spec.models import WorkflowSpec
from workbench.tasks.base import TaskDefinition
from workbench.tasks.registry import REGISTRY, TaskRegistry, import_task_module

INPUT_FILE_MARK = "workbench_input_file"
"""json_schema_extra key of params fields holding a file the task reads."""


@dataclass(frozen=True)
class CheckedWorkflow:
    spec: WorkflowSpec
    base_dir: Path  # relative paths in the spec resolve against it
    order: tuple[str, ...]  # topological order
    definitions: Mapping[str, TaskDefinition]  # task_id -> definition
    params: Mapping[str, BaseModel]  # task_id -> parsed parameters
    source: str | None


def load_workflow(
    spec_or_path: CheckedWorkflow | str | Path | Mapping[str, Any] | WorkflowSpec,
    *,
    base_dir: Path | None = None,
    check_files: bool = True,
    registry: TaskRegistry = REGISTRY,
) -> CheckedWorkflow:
    """Load (a file path), parse (a dict) or take a spec, and check it: see check_workflow.

    Relative paths resolve against the spec file's folder, or the current directory for a
    dict or a WorkflowSpec, unless base_dir is given. An already checked workflow is returned
    as it is.
    """
    if isinstance(spec_or_path, CheckedWorkflow):
        return spec_or_path
    positions: Positions = {}
    source: str | None = None
    if isinstance(spec_or_path, str | Path):
        # Graph problems are left to check_workflow, so they come out with the others.
        loaded = read_spec(spec_or_path, graph_checks=False)
        spec, positions, source = loaded.spec, loaded.positions, loaded.source
        default_dir = Path(spec_or_path).parent
    elif isinstance(spec_or_path, WorkflowSpec):
        spec, default_dir = spec_or_path, Path.cwd()
    else:
        spec, default_dir = parse_spec(spec_or_path, graph_checks=False), Path.cwd()
    return check_workflow(
        spec,
        base_dir=base_dir if base_dir is not None else default_dir,
        source=source,
        check_files=check_files,
        registry=registry,
        positions=positions,
    )


def check_workflow(
    spec: WorkflowSpec,
    *,
    base_dir: Path,
    source: str | None = None,
    check_files: bool = True,
    registry: TaskRegistry = REGISTRY,
    positions: Positions | None = None,
) -> CheckedWorkflow:
    """Check the graph, the imports, each task's type and parameters and (with check_files) its
    input files; raise one SpecError listing every problem.

    `positions` (from the loader) put line numbers on the issues.
    """
    base_dir = Path(base_dir).resolve()
    issues = graph_issues(spec)
    for i, reference in enumerate(spec.imports):
        problem = _import(reference, base_dir)
        if problem:
            issues.append(SpecIssue(f"imports[{i}]", problem))
    definitions: dict[str, TaskDefinition] = {}
    params: dict[str, BaseModel] = {}
    for i, task in enumerate(spec.tasks):
        definition, problem = _definition(task.task_type, registry)
        if definition is None:
            issues.append(SpecIssue(f"tasks[{i}].task_type", problem))
            continue
        where = ("tasks", i, "parameters")
        if check_files:  # from the raw values: a bad file is reported beside other mistakes
            issues.extend(input_file_issues(definition.params, task.parameters, base_dir, where))
        try:
            parsed = definition.params.model_validate(task.parameters)
        except ValidationError as exc:
            issues.extend(validation_issues(exc, definition.params, task.parameters, prefix=where))
            continue
        definitions[task.task_id] = definition
        params[task.task_id] = parsed
    if issues:
        raise SpecError(sort_issues(locate_all(issues, positions or {})), source=source)
    return CheckedWorkflow(
        spec=spec,
        base_dir=base_dir,
        order=tuple(topological_order(spec)),
        definitions=definitions,
        params=params,
        source=source,
    )


def _import(reference: str, base_dir: Path) -> str | None:
    try:
        import_task_module(reference, base_dir)
    except WorkbenchError as exc:
        return str(exc).removeprefix("imports: ")
    except Exception as exc:  # user code: any error it raises is a problem of the spec
        return f"importing {reference!r} failed: {type(exc).__name__}: {exc}"
    return None


def _definition(name: str, registry: TaskRegistry) -> tuple[TaskDefinition | None, str]:
    try:
        definition = registry.get(name)
    except UnknownTaskTypeError as exc:
        close = difflib.get_close_matches(name, exc.known, n=1)
        return None, str(exc) + (f" Did you mean {close[0]!r}?" if close else "")
    if definition.unavailable_reason is not None:
        return None, f"task type {name!r} is not available: {definition.unavailable_reason}"
    if definition.fn is None:
        return None, f"task type {name!r} is not available: it has no task function"
    return definition, ""


def input_file_issues(
    model: type[BaseModel],
    values: Mapping[str, Any],
    base_dir: Path,
    where: Sequence[str | int] = (),
) -> list[SpecIssue]:
    """Problems with the files named by `model`'s fields marked `workbench_input_file`, read
    from the raw parameter `values` (relative paths against base_dir): each must exist, be a
    file and be readable."""
    issues = []
    for name, info in model.model_fields.items():
        extra = info.json_schema_extra
        if not (isinstance(extra, dict) and extra.get(INPUT_FILE_MARK)):
            continue
        value = values.get(info.alias or name)
        items = list(enumerate(value)) if isinstance(value, list | tuple) else [(None, value)]
        for k, item in items:
            if not isinstance(item, str | os.PathLike) or "://" in str(item):
                continue  # unset, or a URL: only local files can be checked up front
            problem = _unreadable(base_dir, item)
            if problem:
                loc = (*where, info.alias or name, *(() if k is None else (k,)))
                issues.append(SpecIssue(render_path(loc), problem))
    return issues


def _unreadable(base_dir: Path, value: str | os.PathLike[str]) -> str | None:
    path = Path(value).expanduser()
    path = path if path.is_absolute() else base_dir / path
    try:
        if not path.exists():
            return f"input file not found: {path}"
        if not path.is_file():
            return f"input path is not a file: {path}"
        with path.open("rb"):
            pass
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the path
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        return f"input file cannot be read: {path} ({reason})"
    return None
