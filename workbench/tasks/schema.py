"""JSON Schema of workflow specs including each task type's parameters, for editors.

Each available task type adds an if/then clause to TaskSpec: `task_type: model_training` makes
`parameters` follow ModelTrainingParams' schema, so editors complete and check parameters.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic.errors import PydanticInvalidForJsonSchema, PydanticUserError

from workbench.spec.schema import workflow_json_schema
from workbench.tasks.registry import REGISTRY, TaskRegistry


def full_json_schema(registry: TaskRegistry = REGISTRY) -> dict[str, Any]:
    """workflow_json_schema() plus the parameters schema of every available task type."""
    schema = workflow_json_schema()
    defs: dict[str, Any] = schema["$defs"]
    task = defs["TaskSpec"]
    clauses = []
    names = []
    for definition in registry.definitions():
        if not definition.available:
            continue
        try:
            params = definition.params.model_json_schema(mode="validation")
        except (PydanticInvalidForJsonSchema, PydanticUserError):
            params = {"type": "object"}  # a type that cannot be described still gets its name
        params = _move_defs(params, defs, prefix=f"{_safe(definition.name)}__")
        if definition.description:
            params.setdefault("description", definition.description)
        names.append(definition.name)
        clauses.append(
            {
                "if": {
                    "properties": {"task_type": {"const": definition.name}},
                    "required": ["task_type"],
                },
                "then": {"properties": {"parameters": params}},
            }
        )
    task["properties"]["task_type"]["examples"] = names
    if clauses:
        task["allOf"] = clauses
    return schema


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def _ref(renamed: dict[str, str], value: Any) -> Any:
    return renamed.get(value, value) if isinstance(value, str) else value


def _move_defs(schema: dict[str, Any], defs: dict[str, Any], prefix: str) -> dict[str, Any]:
    """Hoist the params schema's own $defs into the workflow's, renamed with `prefix` so two
    task types' models of the same name do not clash, and point its $refs at them."""
    own = schema.pop("$defs", {})
    renamed = {f"#/$defs/{name}": f"#/$defs/{prefix}{name}" for name in own}

    def fix(node: Any) -> Any:
        if isinstance(node, dict):
            return {
                key: _ref(renamed, value) if key == "$ref" else fix(value)
                for key, value in node.items()
            }
        if isinstance(node, list):
            return [fix(item) for item in node]
        return node

    for name, body in own.items():
        defs[prefix + name] = fix(body)
    fixed: dict[str, Any] = fix(schema)
    return fixed
