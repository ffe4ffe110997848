"""JSON Schema of workflow specs, for editors (completion and checks while typing).

Point an editor at the output of `workflow_json_schema()` (or, with the task parameters,
`workbench.tasks.schema.full_json_schema()`), e.g. `# yaml-language-server: $schema=...`.
"""

from __future__ import annotations

from typing import Any

from workbench.spec.models import TaskType, WorkflowSpec

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_ID = "https://workbench.dev/schemas/workflow.schema.json"

# What parse_memory accepts as a string (the model's schema says only integer).
_MEMORY_PATTERN = r"^\s*\d+(\.\d+)?\s*([kKmMgGtTpP]?[iI]?[bB]?)\s*$"


def workflow_json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a workflow spec file."""
    schema = WorkflowSpec.model_json_schema(mode="validation")
    defs = schema["$defs"]
    _accept_lenient_inputs(defs)
    task_type = defs["TaskSpec"]["properties"]["task_type"]
    task_type["examples"] = [member.value for member in TaskType]
    return {
        "$schema": SCHEMA_DIALECT,
        "$id": SCHEMA_ID,
        **schema,
        "title": "Workbench workflow",
        "description": (
            "An ML workflow for Workbench: tasks of registered types, their parameters and "
            "the dependencies between them, which must form a DAG."
        ),
    }


def _accept_lenient_inputs(defs: dict[str, Any]) -> None:
    """Widen fields whose before-validators accept more than their type: a size string for
    `memory`, a list of names for `capabilities`. Otherwise editors flag valid specs."""
    resources = defs["Resources"]["properties"]
    resources["memory"]["anyOf"] = [
        {"type": "number", "minimum": 0},
        {"type": "string", "pattern": _MEMORY_PATTERN, "examples": ["512MB", "4GiB"]},
        {"type": "null"},
    ]
    capabilities = resources["capabilities"]
    resources["capabilities"] = {
        "title": capabilities.get("title", "Capabilities"),
        "description": "Worker resources by name and amount; a list of names means 1 of each.",
        "anyOf": [
            {key: value for key, value in capabilities.items() if key != "title"},
            {"type": "array", "items": {"type": "string"}},
        ],
    }
