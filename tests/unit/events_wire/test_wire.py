"""Events on the wire: JSON round trips, and clear errors for anything else on the topic."""

from __future__ import annotations

import json
import math

import pytest

from workbench.errors import WorkbenchError
from workbench.events.models import SCHEMA_VERSION, Event, EventType
from workbench.events.wire import BadEventError, decode, encode, encode_key, event_json_schema


def make_event(event_type: EventType = EventType.TASK_STARTED, **fields: object) -> Event:
    values: dict[str, object] = {
        "type": event_type,
        "execution_id": "exec-1",
        "workflow_id": "fraud",
        "task_id": None if event_type.value.startswith("workflow.") else "train",
        "instance_id": "instance-a",
        "seq": 7,
        "timestamp": 1_700_000_000.25,
    }
    values.update(fields)
    return Event.model_validate(values)


def valid_payload() -> dict[str, object]:
    return json.loads(encode(make_event()))


@pytest.mark.parametrize("event_type", list(EventType), ids=lambda t: t.value)
def test_every_event_type_round_trips(event_type: EventType) -> None:
    event = make_event(
        event_type,
        status="running",
        progress=0.5,
        message="round 50 of 100",
        metrics={"auc": 0.91, "logloss": 0.2},
        data={"attempt": 2, "worker": "tcp://10.0.0.3:4000", "nested": {"a": [1, 2]}},
    )
    data = encode(event)
    assert isinstance(data, bytes)
    assert json.loads(data)["type"] == event_type.value
    assert decode(data) == event


def test_the_key_is_the_execution_id() -> None:
    assert encode_key(make_event(execution_id="exec-42")) == b"exec-42"


def test_non_finite_numbers_survive_the_round_trip() -> None:
    event = make_event(
        EventType.TASK_METRIC, progress=math.inf, metrics={"loss": math.nan, "low": -math.inf}
    )
    wire = json.loads(encode(event))
    assert wire["metrics"] == {"loss": "NaN", "low": "-Infinity"}
    back = decode(encode(event))
    assert math.isnan(back.metrics["loss"]) and back.metrics["low"] == -math.inf
    assert back.progress == math.inf


def test_data_json_cannot_carry_travels_as_text() -> None:
    event = make_event(data={"where": object(), "n": 1})
    back = decode(encode(event))
    assert back.data["n"] == 1 and back.data["where"].startswith("<object object")


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (b"not json at all", "not a JSON event"),
        (b"\xff\xfe\x00garbage", "not a JSON event"),
        (b"", "not a JSON event"),
        (b"[1, 2, 3]", "not a JSON object but list"),
        (b'"a string"', "not a JSON object but str"),
    ],
)
def test_malformed_json_is_a_bad_event(data: bytes, says: str) -> None:
    with pytest.raises(BadEventError, match=says):
        decode(data)


@pytest.mark.parametrize("field", ["type", "execution_id", "workflow_id", "seq", "timestamp"])
def test_a_missing_field_is_named(field: str) -> None:
    payload = valid_payload()
    del payload[field]
    with pytest.raises(BadEventError, match=f"missing field '{field}'"):
        decode(json.dumps(payload).encode())


def test_a_missing_schema_version_is_not_assumed() -> None:
    payload = valid_payload()
    del payload["schema_version"]
    with pytest.raises(BadEventError, match="missing field 'schema_version'"):
        decode(json.dumps(payload).encode())


@pytest.mark.parametrize("version", [SCHEMA_VERSION + 1, 0, "v2", None])
def test_an_unknown_version_is_named(version: object) -> None:
    payload = valid_payload()
    payload["schema_version"] = version
    with pytest.raises(BadEventError) as caught:
        decode(json.dumps(payload).encode())
    message = str(caught.value)
    assert f"unknown schema_version {version!r}" in message
    assert f"reads version {SCHEMA_VERSION}" in message


def test_a_newer_version_with_other_fields_still_says_version() -> None:
    data = json.dumps({"schema_version": SCHEMA_VERSION + 1, "kind": "x"}).encode()
    with pytest.raises(BadEventError, match="unknown schema_version"):
        decode(data)


def test_an_unknown_event_type_lists_the_known_ones() -> None:
    payload = valid_payload()
    payload["type"] = "task.teleported"
    with pytest.raises(BadEventError) as caught:
        decode(json.dumps(payload).encode())
    assert "unknown event type 'task.teleported'" in str(caught.value)
    assert "task.progress" in str(caught.value)


def test_a_wrong_type_names_field_and_value() -> None:
    payload = valid_payload()
    payload["seq"] = "seven"
    with pytest.raises(BadEventError, match=r"seq: .*integer.*'seven'"):
        decode(json.dumps(payload).encode())


def test_a_huge_bad_message_is_quoted_short() -> None:
    with pytest.raises(BadEventError) as caught:
        decode(b"x" * 100_000)
    assert len(str(caught.value)) < 400


def test_bad_event_is_a_workbench_error() -> None:
    assert issubclass(BadEventError, WorkbenchError)


def test_unknown_fields_are_ignored_for_forward_compatibility() -> None:
    payload = valid_payload()
    payload["added_later"] = {"x": 1}
    assert decode(json.dumps(payload).encode()) == make_event()


def test_json_schema_describes_every_field() -> None:
    schema = event_json_schema()
    assert schema["$schema"].endswith("2020-12/schema")
    assert set(Event.model_fields) <= set(schema["properties"])
    assert set(schema["required"]) >= {
        "schema_version",
        "type",
        "execution_id",
        "workflow_id",
        "instance_id",
        "seq",
        "timestamp",
    }
    assert schema["properties"]["type"]["enum"] == [t.value for t in EventType]
    assert schema["properties"]["schema_version"]["const"] == SCHEMA_VERSION
    json.dumps(schema)  # serialisable as is


def test_encoded_events_have_exactly_the_schema_fields() -> None:
    schema = event_json_schema()
    for event_type in EventType:
        wire = json.loads(encode(make_event(event_type, metrics={"loss": math.nan})))
        assert set(wire) == set(schema["properties"])
        assert set(schema["required"]) <= set(wire)
        assert (
            wire["metrics"]["loss"]
            in schema["properties"]["metrics"]["additionalProperties"]["anyOf"][1]["enum"]
        )
