"""Graph checks, topological order and reachability, including 10,000-task specs."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

import pytest

from workbench.errors import SpecError
from workbench.spec.graph import (
    ancestors,
    dependencies_map,
    dependents_map,
    descendants,
    graph_issues,
    task_graph_issues,
    topological_order,
)
from workbench.spec.models import WorkflowSpec


def make(deps: dict[str, list[str]]) -> WorkflowSpec:
    """A spec with one task per key, in the dict's order."""
    tasks = [{"task_id": t, "task_type": "x", "dependencies": d} for t, d in deps.items()]
    return WorkflowSpec.model_validate({"workflow_id": "g", "tasks": tasks})


DIAMOND = {"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"], "e": []}


def test_a_valid_graph_has_no_issues() -> None:
    assert graph_issues(make(DIAMOND)) == []


def test_duplicate_ids() -> None:
    issues = task_graph_issues(["a", "b", "a"], [[], [], []])
    assert [(i.path, i.message) for i in issues] == [
        ("tasks[2].task_id", "duplicate task_id 'a'; tasks[0] has it already")
    ]


def test_unknown_dependency_suggests_a_close_id() -> None:
    issues = graph_issues(make({"preprocess": [], "train": ["preproces", "zzz"]}))
    assert [(i.path, i.message) for i in issues] == [
        ("tasks[1].dependencies[0]", "unknown dependency 'preproces'; did you mean 'preprocess'?"),
        ("tasks[1].dependencies[1]", "unknown dependency 'zzz'"),
    ]


def test_self_dependency_and_repeated_dependency() -> None:
    issues = graph_issues(make({"a": [], "b": ["b", "a", "a"]}))
    assert [(i.path, i.message) for i in issues] == [
        ("tasks[1].dependencies[0]", "task 'b' depends on itself"),
        ("tasks[1].dependencies[2]", "'a' is listed twice in dependencies"),
    ]


def test_cycle_is_named_from_the_first_task_written() -> None:
    issues = graph_issues(make({"x": [], "c": ["a"], "a": ["b", "x"], "b": ["c"]}))
    assert len(issues) == 1
    # c (written first) depends on a, a on b, b on c.
    assert issues[0].message == (
        "dependency cycle: c -> a -> b -> c (each task depends on the next); "
        "remove one of these dependencies"
    )
    assert issues[0].path == "tasks[1].dependencies[0]"


def test_two_separate_cycles_are_both_reported() -> None:
    issues = graph_issues(make({"a": ["b"], "b": ["a"], "c": ["d"], "d": ["c"], "e": ["a"]}))
    assert [i.message.split(" (")[0] for i in issues] == [
        "dependency cycle: a -> b -> a",
        "dependency cycle: c -> d -> c",
    ]


def test_topological_order_keeps_the_spec_order_when_it_can() -> None:
    assert topological_order(make(DIAMOND)) == ["a", "b", "c", "d", "e"]
    spec = make({"d": ["b", "c"], "c": ["a"], "e": [], "b": ["a"], "a": []})
    assert topological_order(spec) == ["e", "a", "c", "b", "d"]


def test_topological_order_rejects_an_invalid_graph() -> None:
    with pytest.raises(SpecError, match="dependency cycle: a -> b -> a"):
        topological_order(make({"a": ["b"], "b": ["a"]}))
    with pytest.raises(SpecError, match="unknown dependency 'q'"):
        topological_order(make({"a": ["q"]}))


def test_repeated_dependencies_do_not_break_the_order() -> None:
    assert topological_order(make({"b": ["a", "a"], "a": []})) == ["a", "b"]


def test_maps_and_reachability() -> None:
    spec = make(DIAMOND)
    assert dependents_map(spec) == {"a": ["b", "c"], "b": ["d"], "c": ["d"], "d": [], "e": []}
    assert dependencies_map(spec)["d"] == ["b", "c"]
    assert descendants(spec, "a") == {"b", "c", "d"}
    assert descendants(dependents_map(spec), "b") == {"d"}
    assert descendants(spec, "e") == set()
    assert ancestors(spec, "d") == {"a", "b", "c"}
    assert ancestors(dependencies_map(spec), "a") == set()


N = 10_000
T = TypeVar("T")


def _timed(fn: Callable[..., T], *args: Any) -> tuple[T, float]:
    start = time.perf_counter()
    result = fn(*args)
    return result, time.perf_counter() - start


def test_a_10000_task_chain_is_fast_and_needs_no_recursion() -> None:
    ids = [f"t{i}" for i in range(N)]
    spec = make({ids[i]: ([ids[i - 1]] if i else []) for i in reversed(range(N))})
    issues, took_issues = _timed(graph_issues, spec)
    order, took_order = _timed(topological_order, spec)
    reached, took_reach = _timed(descendants, spec, "t0")
    assert issues == [] and order == ids and len(reached) == N - 1
    assert max(took_issues, took_order, took_reach) < 2.0


def test_a_10000_task_cycle_is_found_without_recursion() -> None:
    ids = [f"t{i}" for i in range(N)]
    spec = make({ids[i]: [ids[(i + 1) % N]] for i in range(N)})
    issues, took = _timed(graph_issues, spec)
    assert len(issues) == 1 and took < 2.0
    assert issues[0].message.startswith("dependency cycle: t0 -> t1 -> t2")
    assert f"t{N - 1} -> t0 (each" in issues[0].message


def test_a_wide_10000_task_graph_is_fast() -> None:
    ids = [f"t{i}" for i in range(N)]
    deps = {t: [ids[j] for j in range(max(0, i - 5), i)] for i, t in enumerate(ids)}
    spec = make(deps)
    order, took = _timed(topological_order, spec)
    assert order == ids and took < 2.0
