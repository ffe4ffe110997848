"""SpecIssues from pydantic ValidationErrors, field paths, and where fields were written.

pydantic's messages ("Input should be a valid integer, unable to parse string as an integer")
and locations (union members such as `lax-or-strict[...]`) are written for developers; a spec
author gets `tasks[1].parameters.n_estimators: expected an integer, got 'many'` instead.
"""

from __future__ import annotations

import difflib
import inspect
import json
import re
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ValidationError

from workbench.errors import SpecIssue
from workbench.spec.models import IDENTIFIER

Loc = tuple[str | int, ...]
Positions = Mapping[str, tuple[int, int]]
"""Rendered field path -> (line, column), both 1-based, of where the field was written."""

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_LAST_SEGMENT = re.compile(r'(?:\.?[A-Za-z_][A-Za-z0-9_]*|\[-?\d+\]|\["(?:[^"\\]|\\.)*"\])$')


def render_path(loc: Iterable[Any]) -> str:
    """('tasks', 1, 'parameters', 'n') -> 'tasks[1].parameters.n'; odd keys as ["a b"]."""
    out = ""
    for segment in loc:
        if isinstance(segment, int) and not isinstance(segment, bool):
            out += f"[{segment}]"
        elif isinstance(segment, str) and _NAME.match(segment):
            out += f".{segment}" if out else segment
        else:
            out += f"[{json_quote(segment)}]"
    return out


def json_quote(value: Any) -> str:
    return json.dumps(value if isinstance(value, str) else str(value))


def locate(path: str, positions: Positions) -> tuple[int, int] | None:
    """(line, column) of `path`, or of its closest written ancestor (a missing field's parent)."""
    while True:
        if path in positions:
            return positions[path]
        if not path:
            return None
        match = _LAST_SEGMENT.search(path)
        path = path[: match.start()] if match else ""


def locate_all(issues: Iterable[SpecIssue], positions: Positions) -> list[SpecIssue]:
    """The issues, with line and column filled in from positions where they have none."""
    result = []
    for issue in issues:
        where = locate(issue.path, positions) if issue.line is None else None
        result.append(SpecIssue(issue.path, issue.message, *where) if where else issue)
    return result


def sort_issues(issues: Iterable[SpecIssue]) -> list[SpecIssue]:
    """In document order; issues without a line keep their order, after the others."""
    return sorted(issues, key=lambda i: (i.line is None, i.line or 0, i.column or 0))


def validation_issues(
    exc: ValidationError,
    model: type[BaseModel],
    data: Any,
    *,
    prefix: Loc = (),
    positions: Positions | None = None,
) -> list[SpecIssue]:
    """One issue per field pydantic rejected when validating `data` with `model`.

    `prefix` is where `data` sits in the whole document (e.g. ('tasks', 2, 'parameters')).
    The errors of one union field (`str | Path`) are merged into one "expected A or B" issue.
    """
    groups: dict[Loc, list[tuple[str | None, str]]] = {}
    for error in exc.errors(include_url=False):
        loc = _document_loc(tuple(error["loc"]), data, error["type"])
        groups.setdefault(loc, []).append(_describe(error, model, loc))
    issues = []
    for loc, described in groups.items():
        path = render_path((*prefix, *loc))
        where = locate(path, positions or {})
        issues.append(SpecIssue(path, _merge(described), *(where or (None, None))))
    return issues


def _document_loc(loc: Loc, data: Any, error_type: str) -> Loc:
    """The error's location with pydantic's union-member and `[key]` markers dropped: only
    segments that index into the document (or name a missing field) are kept."""
    kept: list[str | int] = []
    node = data
    for n, segment in enumerate(loc):
        in_list = (
            isinstance(node, Sequence)
            and not isinstance(node, str | bytes)
            and isinstance(segment, int)
            and -len(node) <= segment < len(node)
        )
        if in_list or (isinstance(node, Mapping) and segment in node):
            node = node[segment]
        elif n == len(loc) - 1 and error_type == "missing":
            node = None
        else:
            continue
        kept.append(segment)
    return tuple(kept)


def _merge(described: list[tuple[str | None, str]]) -> str:
    expected = list(dict.fromkeys(e for e, _ in described if e is not None))
    if len(described) > 1 and len(expected) == len(described):
        got = described[0][1].rsplit(", got ", 1)
        return f"expected {' or '.join(expected)}" + (f", got {got[1]}" if len(got) == 2 else "")
    return "; ".join(dict.fromkeys(message for _, message in described))


# error type -> what was expected; {name} fields come from the error's ctx.
_EXPECTED = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "a whole number",
    "int_parsing_size": "an integer of a usable size",
    "float_type": "a number",
    "float_parsing": "a number",
    "finite_number": "a finite number",
    "decimal_type": "a number",
    "decimal_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "a string",
    "string_sub_type": "a string",
    "string_unicode": "a string",
    "string_too_short": "a string of at least {min_length} characters",
    "string_too_long": "a string of at most {max_length} characters",
    "bytes_type": "a string",
    "list_type": "a list",
    "tuple_type": "a list",
    "set_type": "a list",
    "frozen_set_type": "a list",
    "iterable_type": "a list",
    "dict_type": "a mapping",
    "mapping_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "dataclass_type": "a mapping",
    "too_short": "at least {min_length} {items}",
    "too_long": "at most {max_length} {items}",
    "greater_than": "a number > {gt}",
    "greater_than_equal": "a number >= {ge}",
    "less_than": "a number < {lt}",
    "less_than_equal": "a number <= {le}",
    "multiple_of": "a multiple of {multiple_of}",
    "enum": "one of {expected}",
    "literal_error": "one of {expected}",
    "none_required": "null",
    "path_type": "a file path",
    "url_type": "a URL",
    "url_parsing": "a URL",
    "date_type": "a date (YYYY-MM-DD)",
    "date_parsing": "a date (YYYY-MM-DD)",
    "date_from_datetime_parsing": "a date (YYYY-MM-DD)",
    "datetime_type": "a date and time (ISO 8601)",
    "datetime_parsing": "a date and time (ISO 8601)",
    "datetime_from_date_parsing": "a date and time (ISO 8601)",
    "timedelta_type": "a duration",
    "timedelta_parsing": "a duration",
    "uuid_type": "a UUID",
    "uuid_parsing": "a UUID",
    "is_instance_of": "an instance of {class}",
    "invalid_key": "a string key",
    "recursion_loop": "a value that does not contain itself",
}
_STRIP = ("Value error, ", "Assertion failed, ")


def _describe(error: Any, model: type[BaseModel], loc: Loc) -> tuple[str | None, str]:
    """(what was expected or None, the whole message) for one pydantic error."""
    kind: str = error["type"]
    ctx: dict[str, Any] = error.get("ctx") or {}
    value = error.get("input")
    if kind == "missing":
        return None, "required field is missing"
    if kind == "extra_forbidden":
        return None, _unknown_field(str(loc[-1]) if loc else "?", _model_at(model, loc[:-1]))
    if kind in ("value_error", "assertion_error"):
        message: str = error["msg"]
        for strip in _STRIP:
            message = message.removeprefix(strip)
        return None, message
    if kind == "string_pattern_mismatch":
        expected = _pattern_expectation(str(ctx.get("pattern", "")))
    elif kind == "string_too_short" and ctx.get("min_length") == 1:
        expected = "a non-empty string"
    elif kind in _EXPECTED:
        expected = _EXPECTED[kind].format_map(_SafeCtx(ctx))
    else:
        return None, _lower_first(error["msg"])
    if kind in ("too_short", "too_long"):
        return expected, f"expected {expected}, got {ctx.get('actual_length', '?')}"
    message = f"expected {expected}, got {show(value)}"
    if kind in ("enum", "literal_error") and isinstance(value, str):
        choices = re.findall(r"'([^']*)'", str(ctx.get("expected")))
        close = difflib.get_close_matches(value, choices, n=1)
        message += f" (did you mean {close[0]!r}?)" if close else ""
    return expected, message


def _pattern_expectation(pattern: str) -> str:
    if pattern == IDENTIFIER:
        return "a name of letters, digits, '_', '.' and '-' that starts with a letter or '_'"
    return f"a string matching {pattern}"


class _SafeCtx(dict[str, Any]):
    """Format context: a missing entry reads '?', and 0.0 reads 0."""

    def __init__(self, ctx: Mapping[str, Any]) -> None:
        super().__init__(
            (k, int(v) if isinstance(v, float) and v.is_integer() else v) for k, v in ctx.items()
        )
        bound = self.get("min_length", self.get("max_length"))
        self["items"] = "item" if bound == 1 else "items"

    def __missing__(self, key: str) -> str:
        return "?"


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


def show(value: Any) -> str:
    """A value as a spec author wrote it, short: 'abc', 3, null, true, a list, a mapping."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple | set):
        return "a list"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _unknown_field(name: str, model: type[BaseModel] | None) -> str:
    if model is None:
        return f"unknown field {name!r}"
    allowed = [info.alias or field for field, info in model.model_fields.items()]
    message = f"unknown field {name!r}; allowed: {', '.join(allowed)}"
    close = difflib.get_close_matches(name, allowed, n=1)
    return message + (f" (did you mean {close[0]!r}?)" if close else "")


def _model_at(model: type[BaseModel], loc: Loc) -> type[BaseModel] | None:
    """The model class that validates the object at `loc` below `model`, if one does."""
    current: Any = model
    for segment in loc:
        current = _step(current, segment)
        if current is None:
            return None
    return _as_model(current)


def _step(annotation: Any, segment: str | int) -> Any:
    model = _as_model(annotation)
    if model is not None:
        for field, info in model.model_fields.items():
            if segment in (field, info.alias):
                return info.annotation
        return None
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        steps = (_step(arg, segment) for arg in args)
        return next((s for s in steps if s is not None), None)
    if origin in (list, tuple, set, frozenset, Sequence) and isinstance(segment, int) and args:
        return args[0]
    if origin in (dict, Mapping) and len(args) == 2:
        return args[1]
    return None


def _as_model(annotation: Any) -> type[BaseModel] | None:
    if inspect.isclass(annotation) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        models = (_as_model(arg) for arg in typing.get_args(annotation))
        return next((m for m in models if m is not None), None)
    return None
