"""Reading workflow specs from YAML or JSON into a WorkflowSpec, with every problem reported.

Each problem becomes a SpecIssue carrying a field path such as `tasks[1].parameters.n_estimators`
and, for specs read from text, the line and column of that field. The loader records where each
node of the document is (`Positions`: rendered path -> (line, column)), so checks made later on
the parsed model (task types, parameters, files) can point at lines too.
"""

from __future__ import annotations

import bisect
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import ValidationError

from workbench.errors import SpecError, SpecIssue
from workbench.spec.graph import task_graph_issues
from workbench.spec.issues import (
    Positions,
    locate_all,
    render_path,
    show,
    sort_issues,
    validation_issues,
)
from workbench.spec.models import WorkflowSpec

Format = Literal["yaml", "json"]
SUFFIXES: dict[str, Format] = {".yaml": "yaml", ".yml": "yaml", ".json": "json"}


@dataclass(frozen=True)
class LoadedSpec:
    """A parsed spec with where each of its fields was written (empty for dicts)."""

    spec: WorkflowSpec
    positions: Positions = field(default_factory=dict)
    source: str | None = None


def load_spec(path: str | Path) -> WorkflowSpec:
    """Read and validate a .yaml, .yml or .json workflow spec; SpecError lists every problem."""
    return read_spec(path).spec


def read_spec(path: str | Path, *, graph_checks: bool = True) -> LoadedSpec:
    """load_spec, keeping the positions of fields for later checks."""
    path = Path(path)
    source = str(path)

    def fail(message: str) -> SpecError:
        return SpecError([SpecIssue("", message)], source=source)

    try:
        if not path.exists():
            raise fail(f"file not found: {path.absolute()}")
        if path.is_dir():
            raise fail("is a directory; expected a .yaml, .yml or .json file")
        fmt = SUFFIXES.get(path.suffix.lower())
        if fmt is None:
            raise fail(
                f"unsupported file type {path.suffix or '(none)'!r}; use .yaml, .yml or .json"
            )
        data = path.read_bytes()
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the path
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise fail(f"cannot read the file: {reason}") from exc
    return decode_spec(data, fmt, source=source, graph_checks=graph_checks)


def decode_spec(
    data: bytes | str, fmt: Format, *, source: str | None = None, graph_checks: bool = True
) -> LoadedSpec:
    """Parse spec text (or UTF-8 bytes) in the given format and validate it."""
    text = _decode(data, source) if isinstance(data, bytes) else data
    if not text.strip():
        raise SpecError([SpecIssue("", _EMPTY)], source=source)
    document, positions = _parse_yaml(text, source) if fmt == "yaml" else _parse_json(text, source)
    spec = parse_spec(document, source, positions, graph_checks=graph_checks)
    return LoadedSpec(spec, positions, source)


def parse_spec(
    data: Mapping[str, Any],
    source: str | None = None,
    positions: Positions | None = None,
    *,
    graph_checks: bool = True,
) -> WorkflowSpec:
    """Validate an already-parsed document (e.g. a dict) into a WorkflowSpec.

    Raises one SpecError with every model and graph problem. graph_checks=False leaves the
    graph of a spec the models accept to the caller (check_workflow checks it with the rest).
    """
    positions = positions or {}
    if data is None:
        raise SpecError([SpecIssue("", _EMPTY)], source=source)
    if not isinstance(data, Mapping):
        message = f"the top level must be a mapping with workflow_id and tasks, got {show(data)}"
        raise SpecError(locate_all([SpecIssue("", message)], positions), source=source)
    issues: list[SpecIssue] = []
    spec: WorkflowSpec | None = None
    try:
        spec = WorkflowSpec.model_validate(data)
    except ValidationError as exc:
        issues.extend(validation_issues(exc, WorkflowSpec, data, positions=positions))
    if graph_checks or spec is None:
        graph = _graph_of(spec, data)
        if graph is not None:
            issues.extend(locate_all(task_graph_issues(*graph), positions))
    if issues or spec is None:
        raise SpecError(sort_issues(issues), source=source)
    return spec


def _graph_of(
    spec: WorkflowSpec | None, data: Mapping[str, Any]
) -> tuple[list[str], list[list[str]]] | None:
    """The task ids and dependencies, also from a document the models rejected when its tasks
    are well-formed enough that graph problems are real (not echoes of other problems)."""
    if spec is not None:
        return spec.task_ids, [task.dependencies for task in spec.tasks]
    tasks = data.get("tasks")
    if not isinstance(tasks, list) or not tasks:
        return None
    ids: list[str] = []
    deps: list[list[str]] = []
    for task in tasks:
        if not isinstance(task, Mapping) or not isinstance(task.get("task_id"), str):
            return None
        task_deps = task.get("dependencies", [])
        if not isinstance(task_deps, list) or not all(isinstance(d, str) for d in task_deps):
            return None
        ids.append(task["task_id"])
        deps.append(task_deps)
    return ids, deps


# -- text -------------------------------------------------------------------------------------

_EMPTY = "the spec is empty; expected a mapping with workflow_id and tasks"


def _decode(data: bytes, source: str | None) -> str:
    try:
        return data.decode("utf-8-sig")  # tolerates the BOM some editors write
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        message = (
            f"the file is not valid UTF-8: byte 0x{data[exc.start]:02x} at offset {exc.start}; "
            "save it as UTF-8"
        )
        raise SpecError([SpecIssue("", message, line, column)], source=source) from None


class _Lines:
    """Offset -> (line, column), both 1-based."""

    def __init__(self, text: str) -> None:
        self._starts = [0] + [m.end() for m in re.finditer("\n", text)]

    def at(self, offset: int) -> tuple[int, int]:
        line = bisect.bisect_right(self._starts, offset)
        return line, offset - self._starts[line - 1] + 1


# -- YAML -------------------------------------------------------------------------------------


class _YamlLoader(yaml.SafeLoader):
    """SafeLoader without implicit timestamps: dates stay strings, as they would in JSON, so a
    spec means the same in both formats and its parameters stay JSON-serialisable."""

    yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }


_MERGE_TAG = "tag:yaml.org,2002:merge"
_INT_TAG = "tag:yaml.org,2002:int"


def _parse_yaml(text: str, source: str | None) -> tuple[Any, dict[str, tuple[int, int]]]:
    try:
        return _compose_yaml(text, source)
    except yaml.MarkedYAMLError as exc:
        raise SpecError([_yaml_issue(exc)], source=source) from None
    except yaml.reader.ReaderError as exc:
        line, column = _Lines(text).at(exc.position)
        code = exc.character if isinstance(exc.character, int) else ord(exc.character)
        message = f"character U+{code:04X} is not allowed in YAML; remove it"
        raise SpecError([SpecIssue("", message, line, column)], source=source) from None
    except yaml.YAMLError as exc:
        raise SpecError([SpecIssue("", f"YAML error: {exc}")], source=source) from None
    except RecursionError:
        raise SpecError([SpecIssue("", _TOO_DEEP)], source=source) from None
    except (ValueError, TypeError, OverflowError) as exc:
        # The safe constructors run int(), float(), base64 ... on explicitly tagged scalars.
        message = f"a YAML value cannot be read: {exc}"
        raise SpecError([SpecIssue("", message)], source=source) from None


def _compose_yaml(text: str, source: str | None) -> tuple[Any, dict[str, tuple[int, int]]]:
    loader = _YamlLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise SpecError([SpecIssue("", _EMPTY)], source=source)
        positions, issues = _yaml_positions(node)
        if issues:
            raise SpecError(sort_issues(issues), source=source)
        return loader.construct_document(node), positions
    finally:
        loader.dispose()


_TOO_DEEP = "the document is nested too deeply"


def _duplicate(key: str, first: int, again: int) -> str:
    return f"duplicate key {key!r} (first at line {first}, again at line {again}); keep one"


def _yaml_issue(exc: yaml.MarkedYAMLError) -> SpecIssue:
    mark = exc.problem_mark or exc.context_mark
    if exc.problem == "but found another document":
        message = "a spec is one YAML document, but another one starts here (after '---')"
        return SpecIssue("", message, *((mark.line + 1, mark.column + 1) if mark else ()))
    # Constructor errors are about values (tags, keys), not syntax.
    syntax = not isinstance(exc, yaml.constructor.ConstructorError)
    kind = "YAML syntax error" if syntax else "YAML error"
    message = f"{kind}: {exc.problem or exc.context}"
    if exc.context and exc.problem and exc.context_mark:
        message += f" ({exc.context} at line {exc.context_mark.line + 1})"
    if mark is None:
        return SpecIssue("", message)
    return SpecIssue("", message, mark.line + 1, mark.column + 1)


def _yaml_positions(root: yaml.Node) -> tuple[dict[str, tuple[int, int]], list[SpecIssue]]:
    """Positions of every key and list item, duplicate keys and self-containing aliases.

    Aliased nodes are walked once (so `a: &x [...]`, `b: *x` costs nothing extra and a
    "billion laughs" document stays linear); their fields are located at the anchor.
    """
    positions = {"": (root.start_mark.line + 1, root.start_mark.column + 1)}
    issues: list[SpecIssue] = []
    seen: set[int] = set()
    open_nodes: set[int] = set()  # ancestors of the node being walked
    stack: list[tuple[yaml.Node, tuple[Any, ...], bool]] = [(root, (), False)]
    while stack:
        node, loc, leaving = stack.pop()
        if leaving:
            open_nodes.discard(id(node))
            continue
        if id(node) in open_nodes:
            issues.append(
                SpecIssue(
                    render_path(loc),
                    "an alias refers to a node that contains it",
                    node.start_mark.line + 1,
                    node.start_mark.column + 1,
                )
            )
            continue
        if id(node) in seen:
            continue
        seen.add(id(node))
        open_nodes.add(id(node))
        stack.append((node, loc, True))
        children: list[tuple[yaml.Node, tuple[Any, ...]]] = []
        if isinstance(node, yaml.MappingNode):
            first_line: dict[tuple[str, Any], int] = {}
            for key_node, value_node in node.value:
                if key_node.tag == _MERGE_TAG or not isinstance(key_node, yaml.ScalarNode):
                    children.append((value_node, loc))
                    continue
                key: Any = key_node.value
                if key_node.tag == _INT_TAG and key.isdigit():
                    key = int(key)  # as constructed, so the model's error path matches
                child = (*loc, key)
                line, column = key_node.start_mark.line + 1, key_node.start_mark.column + 1
                identity = (key_node.tag, key)
                if identity in first_line:
                    message = _duplicate(key, first_line[identity], line)
                    issues.append(SpecIssue(render_path(child), message, line, column))
                    continue
                first_line[identity] = line
                positions.setdefault(render_path(child), (line, column))
                children.append((value_node, child))
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                child = (*loc, i)
                mark = item.start_mark
                positions.setdefault(render_path(child), (mark.line + 1, mark.column + 1))
                children.append((item, child))
        # Reversed, so the walk (and the order of issues) follows the document.
        stack.extend((child_node, child_loc, False) for child_node, child_loc in reversed(children))
    return positions, issues


# -- JSON -------------------------------------------------------------------------------------


def _parse_json(text: str, source: str | None) -> tuple[Any, dict[str, tuple[int, int]]]:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        message = f"JSON syntax error: {exc.msg}"
        raise SpecError([SpecIssue("", message, exc.lineno, exc.colno)], source=source) from None
    except RecursionError:
        raise SpecError([SpecIssue("", _TOO_DEEP)], source=source) from None
    positions, issues = _json_positions(text)
    if issues:
        raise SpecError(issues, source=source)
    return document, positions


_JSON_SCALAR = re.compile(r"[^\s,\]}]+")


@dataclass
class _JsonFrame:
    loc: tuple[Any, ...]
    is_object: bool
    expect_key: bool = True
    key: str = ""
    count: int = 0
    keys: dict[str, int] = field(default_factory=dict)  # key -> line first written


def _json_positions(text: str) -> tuple[dict[str, tuple[int, int]], list[SpecIssue]]:
    """Positions of keys and list items, and duplicate keys, in text json.loads accepted."""
    lines = _Lines(text)
    positions: dict[str, tuple[int, int]] = {}
    issues: list[SpecIssue] = []
    stack: list[_JsonFrame] = []
    i, end = 0, len(text)
    while i < end:
        char = text[i]
        if char in " \t\r\n:":
            i += 1
            continue
        top = stack[-1] if stack else None
        if char in "}]":
            stack.pop()
            i += 1
            continue
        if char == ",":
            if top is not None and top.is_object:
                top.expect_key = True
            i += 1
            continue
        if top is not None and top.is_object and top.expect_key:
            key, after = json.decoder.scanstring(text, i + 1)  # type: ignore[attr-defined]
            line, column = lines.at(i)
            path = render_path((*top.loc, key))
            if key in top.keys:
                message = _duplicate(key, top.keys[key], line)
                issues.append(SpecIssue(path, message, line, column))
            else:
                top.keys[key] = line
                positions[path] = (line, column)
            top.key, top.expect_key = key, False
            i = after
            continue
        # A value starts here.
        if top is None:
            loc: tuple[Any, ...] = ()
            positions[""] = lines.at(i)
        elif top.is_object:
            loc = (*top.loc, top.key)
        else:
            loc = (*top.loc, top.count)
            positions[render_path(loc)] = lines.at(i)
            top.count += 1
        if char in "{[":
            stack.append(_JsonFrame(loc, is_object=char == "{"))
            i += 1
        elif char == '"':
            i = json.decoder.scanstring(text, i + 1)[1]  # type: ignore[attr-defined]
        else:
            match = _JSON_SCALAR.match(text, i)
            i = match.end() if match else i + 1
    return positions, issues
