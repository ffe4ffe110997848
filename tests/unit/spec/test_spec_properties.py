"""Property-based tests: random DAGs load and sort, cycles are found, specs round-trip through
JSON and YAML, and no input makes the loader raise anything but SpecError."""

from __future__ import annotations

import itertools
import json
import re
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workbench.errors import SpecError
from workbench.spec.graph import descendants, topological_order
from workbench.spec.loader import decode_spec, parse_spec
from workbench.spec.models import IDENTIFIER, CacheStrategy, WorkflowSpec

PROPERTIES = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])

ids = st.from_regex(IDENTIFIER.replace("*$", "{0,11}$"), fullmatch=True)


@st.composite
def dags(draw: st.DrawFn, min_tasks: int = 1, max_tasks: int = 25) -> dict[str, Any]:
    """A valid spec document: edges only point to tasks of lower rank; tasks are shuffled."""
    names = draw(st.lists(ids, min_size=min_tasks, max_size=max_tasks, unique=True))
    deps = [
        draw(st.lists(st.sampled_from(names[:rank]), unique=True, max_size=4)) if rank else []
        for rank in range(len(names))
    ]
    order = draw(st.permutations(range(len(names))))
    tasks = [{"task_id": names[k], "task_type": "t", "dependencies": deps[k]} for k in order]
    return {"workflow_id": draw(ids), "tasks": tasks}


def edges_of(data: dict[str, Any]) -> dict[str, list[str]]:
    return {task["task_id"]: task["dependencies"] for task in data["tasks"]}


@PROPERTIES
@given(dags())
def test_random_dags_load_and_sort(data: dict[str, Any]) -> None:
    spec = parse_spec(data)
    assert spec == decode_spec(json.dumps(data), "json").spec
    assert spec == decode_spec(yaml.safe_dump(data), "yaml").spec
    order = topological_order(spec)
    assert sorted(order) == sorted(spec.task_ids)
    position = {task_id: i for i, task_id in enumerate(order)}
    for task_id, deps in edges_of(data).items():
        for dep in deps:
            assert position[dep] < position[task_id]
            assert task_id in descendants(spec, dep)


CYCLE = re.compile(r"dependency cycle: (.*) \(each task depends on the next\)")


@st.composite
def cyclic(draw: st.DrawFn) -> dict[str, Any]:
    """A DAG with a cycle through 2 or more of its tasks added."""
    data = draw(dags(min_tasks=2))
    tasks = data["tasks"]
    members = draw(st.permutations(range(len(tasks))))[: draw(st.integers(2, len(tasks)))]
    for a, b in zip(members, [*members[1:], members[0]], strict=True):
        if tasks[b]["task_id"] not in tasks[a]["dependencies"]:
            tasks[a]["dependencies"].append(tasks[b]["task_id"])
    return data


@PROPERTIES
@given(cyclic())
def test_an_injected_cycle_is_always_named_with_real_edges(data: dict[str, Any]) -> None:
    edges = edges_of(data)
    for attempt in (lambda: parse_spec(data), lambda: decode_spec(json.dumps(data), "json")):
        try:
            attempt()
        except SpecError as exc:
            cycles = [m.group(1) for i in exc.issues if (m := CYCLE.search(i.message))]
        else:
            raise AssertionError("a cyclic spec loaded")
        assert cycles
        for cycle in cycles:
            names = cycle.split(" -> ")
            assert len(names) >= 3 and names[0] == names[-1]
            for task_id, dep in itertools.pairwise(names):
                assert dep in edges[task_id]


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=10,
)
positive = st.floats(min_value=0.001, max_value=1e6, allow_nan=False)


@st.composite
def full_specs(draw: st.DrawFn) -> WorkflowSpec:
    data = draw(dags(max_tasks=6))
    for task in data["tasks"]:
        if draw(st.booleans()):
            task["parameters"] = draw(
                st.dictionaries(st.text(max_size=10), json_values, max_size=4)
            )
            task["cache_strategy"] = draw(st.sampled_from(list(CacheStrategy)))
            base = draw(st.floats(0, 100))
            task["retry_policy"] = {
                "max_retries": draw(st.integers(0, 100)),
                "backoff_base_s": base,
                "backoff_max_s": base + draw(st.floats(0, 100)),
                "jitter": draw(st.booleans()),
            }
            task["resources"] = {
                "cpu": draw(positive),
                "memory": draw(st.none() | st.integers(0, 2**40)),
                "gpu": draw(st.integers(0, 8)),
                "capabilities": draw(st.dictionaries(ids, positive, max_size=2)),
            }
            task["timeout_s"] = draw(st.none() | positive)
            task["description"] = draw(st.text(max_size=20))
    data["description"] = draw(st.text(max_size=30))
    data["global_parameters"] = draw(st.dictionaries(st.text(max_size=8), json_values, max_size=3))
    data["imports"] = draw(st.lists(st.text(min_size=1, max_size=10), max_size=2))
    return WorkflowSpec.model_validate(data)


@PROPERTIES
@given(full_specs())
def test_specs_round_trip_through_json_and_yaml(spec: WorkflowSpec) -> None:
    dumped = spec.model_dump(mode="json")
    assert decode_spec(json.dumps(dumped, indent=1), "json").spec == spec
    assert decode_spec(yaml.safe_dump(dumped, sort_keys=False), "yaml").spec == spec


def only_spec_errors(data: bytes | str) -> None:
    for fmt in ("yaml", "json"):
        try:
            decode_spec(data, fmt)
        except SpecError as exc:
            assert exc.issues and all(issue.message for issue in exc.issues)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_garbage_bytes_raise_only_spec_errors(data: bytes) -> None:
    only_spec_errors(data)


yaml_ish = st.text(alphabet=[*"ab1 :-[]{}&*!|>'\"#\n\t,?%@`.<=~\\x", "\x00", "é"], max_size=60)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200) | yaml_ish)
def test_garbage_text_raises_only_spec_errors(text: str) -> None:
    only_spec_errors(text)


spec_keys = st.sampled_from(
    ["workflow_id", "tasks", "task_id", "task_type", "dependencies", "parameters", "resources"]
)
documents = st.recursive(
    json_values,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(spec_keys | st.text(max_size=5), inner, max_size=5)
    ),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(spec_keys, documents, max_size=5))
def test_garbage_documents_raise_only_spec_errors(data: dict[str, Any]) -> None:
    try:
        parse_spec(data)
    except SpecError as exc:
        assert exc.issues
    only_spec_errors(json.dumps(data))
