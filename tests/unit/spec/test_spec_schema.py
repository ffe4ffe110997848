"""The JSON Schemas for editors: the workflow alone, and with each task type's parameters."""

from __future__ import annotations

import json
from typing import Any

from spec_testing import make_registry

from workbench.spec.schema import SCHEMA_ID, workflow_json_schema
from workbench.tasks.schema import full_json_schema


def refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"]} if isinstance(node.get("$ref"), str) else set()
        return found.union(*(refs(value) for value in node.values()))
    if isinstance(node, list):
        return set().union(*(refs(item) for item in node))
    return set()


def assert_refs_resolve(schema: dict[str, Any]) -> None:
    for ref in refs(schema):
        assert ref.startswith("#/$defs/") and ref.removeprefix("#/$defs/") in schema["$defs"], ref


def test_workflow_schema_identifies_itself() -> None:
    schema = workflow_json_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == SCHEMA_ID
    assert schema["title"] == "Workbench workflow"
    assert "DAG" in schema["description"]
    assert schema["required"] == ["workflow_id", "tasks"]
    assert schema["additionalProperties"] is False
    json.dumps(schema)
    assert_refs_resolve(schema)


def test_workflow_schema_describes_tasks() -> None:
    task = workflow_json_schema()["$defs"]["TaskSpec"]
    assert task["required"] == ["task_id", "task_type"]
    assert "model_training" in task["properties"]["task_type"]["examples"]
    assert task["properties"]["task_id"]["pattern"].startswith("^[A-Za-z_]")


def test_workflow_schema_accepts_what_the_validators_accept() -> None:
    resources = workflow_json_schema()["$defs"]["Resources"]["properties"]
    kinds = [option.get("type") for option in resources["memory"]["anyOf"]]
    assert kinds == ["number", "string", "null"]
    assert {"type": "array", "items": {"type": "string"}} in resources["capabilities"]["anyOf"]


def test_full_schema_adds_parameters_per_available_type() -> None:
    schema = full_json_schema(make_registry())
    task = schema["$defs"]["TaskSpec"]
    clauses = {c["if"]["properties"]["task_type"]["const"]: c for c in task["allOf"]}
    assert set(clauses) == {"batch_inference", "boosted", "data_preprocessing", "model_training"}
    assert task["properties"]["task_type"]["examples"] == sorted(clauses)
    params = clauses["model_training"]["then"]["properties"]["parameters"]
    assert params["required"] == ["algorithm"]
    assert params["additionalProperties"] is False
    assert params["properties"]["algorithm"]["enum"] == [
        "xgboost",
        "random_forest",
        "logistic_regression",
    ]
    assert params["description"] == "Train a model."
    assert clauses["model_training"]["if"]["required"] == ["task_type"]
    json.dumps(schema)


def test_nested_models_of_different_types_do_not_clash() -> None:
    schema = full_json_schema(make_registry())
    assert_refs_resolve(schema)
    clauses = {
        c["if"]["properties"]["task_type"]["const"]: c["then"]["properties"]["parameters"]
        for c in schema["$defs"]["TaskSpec"]["allOf"]
    }
    training = clauses["model_training"]["properties"]["booster"]["$ref"]
    boosted = clauses["boosted"]["properties"]["booster"]["$ref"]
    assert training != boosted
    assert "depth" in schema["$defs"][training.removeprefix("#/$defs/")]["properties"]
    assert "gamma" in schema["$defs"][boosted.removeprefix("#/$defs/")]["properties"]
