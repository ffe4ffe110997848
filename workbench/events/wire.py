"""Events on the wire: one JSON object per Kafka message, keyed by execution id.

`decode` never lets a malformed message through as an Event and never raises anything but
`BadEventError`, so a subscriber can skip a bad message with a warning and go on.
"""

from __future__ import annotations

import json
import math
from typing import Any

from pydantic import ValidationError
from pydantic_core import PydanticSerializationError

from workbench.errors import WorkbenchError
from workbench.events.models import SCHEMA_VERSION, Event, EventType

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_ID = "https://workbench.dev/schemas/event.schema.json"

# How much of a bad message an error quotes: enough to recognise it, not a whole payload.
_QUOTE_CHARS = 120


class BadEventError(WorkbenchError):
    """A message on the event topic is not an Event this Workbench can read: skip it."""


def encode_key(event: Event) -> bytes:
    """The message key: every event of one execution lands on one partition, in order."""
    return event.execution_id.encode()


def encode(event: Event) -> bytes:
    """The event as compact UTF-8 JSON.

    JSON has no NaN or infinity (pydantic writes them as null, which would then fail
    validation on the way back), so non-finite progress or metric values travel as the
    strings "NaN", "Infinity", "-Infinity", which `decode` reads back as floats.
    """
    # The slow paths copy the event with values the model's serializer does not expect:
    # its warnings about them are noise.
    warn = True
    if not _all_finite(event):
        event = event.model_copy(
            update={
                "progress": _finite_or_text(event.progress),
                "metrics": {name: _finite_or_text(v) for name, v in event.metrics.items()},
            }
        )
        warn = False
    try:
        return event.model_dump_json(warnings=warn).encode()
    except PydanticSerializationError:
        # `data` holds something JSON cannot carry (a numpy array, a path...): its text
        # is more use to a UI than losing the whole event.
        safe = json.loads(json.dumps(event.data, default=str))
        return event.model_copy(update={"data": safe}).model_dump_json(warnings=False).encode()


def decode(data: bytes) -> Event:
    """The Event in a message value; BadEventError says what is wrong with any other."""
    try:
        event = Event.model_validate_json(data)
    except ValidationError as exc:
        raise BadEventError(_diagnose(data, exc)) from None
    if event.schema_version != SCHEMA_VERSION:
        raise BadEventError(_wrong_version(event.schema_version, data))
    if "schema_version" not in event.model_fields_set:  # the model's default is no evidence
        raise BadEventError(f"not a valid event: missing field 'schema_version': {_quote(data)}")
    return event


def event_json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of one event message."""
    schema = Event.model_json_schema(mode="validation")
    properties = schema["properties"]
    properties["schema_version"]["const"] = SCHEMA_VERSION
    properties["type"] = {
        "type": "string",
        "enum": [member.value for member in EventType],
        "description": "What happened; task.* events carry task_id.",
    }
    schema.get("$defs", {}).pop("EventType", None)
    if not schema.get("$defs"):
        schema.pop("$defs", None)
    schema["required"] = ["schema_version", *schema["required"]]  # decode insists on it
    non_finite = {"type": "string", "enum": ["NaN", "Infinity", "-Infinity"]}
    properties["metrics"]["additionalProperties"] = {"anyOf": [{"type": "number"}, non_finite]}
    properties["progress"]["anyOf"].insert(1, non_finite)
    return {
        "$schema": SCHEMA_DIALECT,
        "$id": SCHEMA_ID,
        **schema,
        "title": "Workbench event",
        "description": (
            "One state change of a workflow execution, as published to Kafka (UTF-8 JSON, "
            "keyed by execution_id). seq numbers an execution's events from its first: a "
            "subscriber drops duplicates by it and notices gaps. Non-finite numbers in "
            "progress and metrics are the strings 'NaN', 'Infinity' and '-Infinity'."
        ),
    }


def _all_finite(event: Event) -> bool:
    if event.progress is not None and not math.isfinite(event.progress):
        return False
    return all(math.isfinite(value) for value in event.metrics.values())


def _finite_or_text(value: float | None) -> float | str | None:
    if value is None or math.isfinite(value):
        return value
    if math.isnan(value):
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"


def _diagnose(data: bytes, exc: ValidationError) -> str:
    """Name the first thing wrong: not JSON, not an object, the version, then the fields."""
    try:
        payload = json.loads(data)
    except (ValueError, UnicodeDecodeError) as err:
        return f"not a JSON event ({err}): {_quote(data)}"
    if not isinstance(payload, dict):
        return f"not a JSON object but {type(payload).__name__}: {_quote(data)}"
    if "schema_version" in payload and payload["schema_version"] != SCHEMA_VERSION:
        return _wrong_version(payload["schema_version"], data)
    problems = [] if "schema_version" in payload else ["missing field 'schema_version'"]
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"]) or "(message)"
        if error["type"] == "missing":
            problems.append(f"missing field {where!r}")
        elif error["loc"] == ("type",):
            known = ", ".join(member.value for member in EventType)
            problems.append(f"unknown event type {payload.get('type')!r} (known: {known})")
        else:
            got = repr(error["input"])
            got = got if len(got) <= 60 else got[:57] + "..."
            problems.append(f"{where}: {error['msg']} (got {got})")
    return f"not a valid event: {'; '.join(problems)}: {_quote(data)}"


def _wrong_version(version: object, data: bytes) -> str:
    return (
        f"unknown schema_version {version!r}: this Workbench reads version {SCHEMA_VERSION}; "
        f"upgrade the reader if the publisher is newer: {_quote(data)}"
    )


def _quote(data: bytes) -> str:
    text = data[:_QUOTE_CHARS].decode("utf-8", errors="replace")
    return repr(text) + ("..." if len(data) > _QUOTE_CHARS else "")
