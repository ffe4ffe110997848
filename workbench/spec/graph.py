"""The task graph of a workflow spec: validation, topological order and reachability.

The DAG executor uses these too, so everything is iterative (no recursion limit) and linear in
tasks + dependencies (the order uses a heap: n log n) for specs with tens of thousands of tasks.
Edges run from a task to the tasks it depends on, as written in the spec.
"""

from __future__ import annotations

import difflib
import heapq
from collections.abc import Iterable, Mapping, Sequence

from workbench.errors import SpecError, SpecIssue
from workbench.spec.models import WorkflowSpec

# difflib is O(tasks) per call: beyond this many unknown names, skip the suggestions.
_MAX_SUGGESTIONS = 50


def graph_issues(spec: WorkflowSpec) -> list[SpecIssue]:
    """Duplicate ids, unknown and self dependencies, and cycles of a spec's task graph."""
    return task_graph_issues(spec.task_ids, [task.dependencies for task in spec.tasks])


def task_graph_issues(ids: Sequence[str], dependencies: Sequence[Sequence[str]]) -> list[SpecIssue]:
    """graph_issues over plain lists: `dependencies[i]` are the ids task `ids[i]` depends on.

    The loader also runs it on documents that failed model validation, so all problems of a
    spec are reported at once.
    """
    issues: list[SpecIssue] = []
    index: dict[str, int] = {}
    for i, task_id in enumerate(ids):
        if task_id in index:
            issues.append(
                SpecIssue(
                    f"tasks[{i}].task_id",
                    f"duplicate task_id {task_id!r}; tasks[{index[task_id]}] has it already",
                )
            )
        else:
            index[task_id] = i
    suggestions_left = _MAX_SUGGESTIONS
    for i, deps in enumerate(dependencies):
        seen: set[str] = set()
        for j, dep in enumerate(deps):
            where = f"tasks[{i}].dependencies[{j}]"
            if dep in seen:
                issues.append(SpecIssue(where, f"{dep!r} is listed twice in dependencies"))
            elif dep == ids[i]:
                issues.append(SpecIssue(where, f"task {dep!r} depends on itself"))
            elif dep not in index:
                hint = ""
                if suggestions_left > 0:
                    suggestions_left -= 1
                    close = difflib.get_close_matches(dep, index, n=1)
                    hint = f"; did you mean {close[0]!r}?" if close else ""
                issues.append(SpecIssue(where, f"unknown dependency {dep!r}{hint}"))
            seen.add(dep)
    issues.extend(_cycle_issues(ids, dependencies, index))
    return issues


def _cycle_issues(
    ids: Sequence[str], dependencies: Sequence[Sequence[str]], index: Mapping[str, int]
) -> list[SpecIssue]:
    """One issue per cycle found by an iterative depth-first search (self-loops excluded)."""
    edges = [_known_edges(i, deps, index) for i, deps in enumerate(dependencies)]
    state = [0] * len(ids)  # 0 new, 1 on the current path, 2 done
    reported: set[int] = set()
    issues: list[SpecIssue] = []
    for root in range(len(ids)):
        if state[root]:
            continue
        path = [root]
        on_path = {root: 0}  # node -> position in path
        iters = [iter(edges[root])]
        state[root] = 1
        while iters:
            nxt = next(iters[-1], None)
            if nxt is None:
                done = path.pop()
                state[done] = 2
                del on_path[done]
                iters.pop()
                continue
            if state[nxt] == 0:
                state[nxt] = 1
                on_path[nxt] = len(path)
                path.append(nxt)
                iters.append(iter(edges[nxt]))
            elif state[nxt] == 1:
                cycle = path[on_path[nxt] :]
                if not reported.intersection(cycle):
                    reported.update(cycle)
                    issues.append(_cycle_issue(cycle, ids, dependencies))
    return issues


def _known_edges(i: int, deps: Sequence[str], index: Mapping[str, int]) -> list[int]:
    return [index[d] for d in dict.fromkeys(deps) if d in index and index[d] != i]


def _cycle_issue(
    cycle: list[int], ids: Sequence[str], dependencies: Sequence[Sequence[str]]
) -> SpecIssue:
    # Start at the task written first, so the message does not depend on the search order.
    start = cycle.index(min(cycle))
    cycle = cycle[start:] + cycle[:start]
    names = [ids[i] for i in cycle]
    first, second = cycle[0], cycle[1 % len(cycle)]
    j = list(dependencies[first]).index(ids[second])
    return SpecIssue(
        f"tasks[{first}].dependencies[{j}]",
        f"dependency cycle: {' -> '.join([*names, names[0]])} (each task depends on the next); "
        "remove one of these dependencies",
    )


def topological_order(spec: WorkflowSpec) -> list[str]:
    """Task ids, every task after its dependencies; ties keep the spec's order.

    A spec already written in dependency order comes back unchanged. Raises SpecError when the
    graph is invalid (see graph_issues).
    """
    ids = spec.task_ids
    index = {task_id: i for i, task_id in enumerate(ids)}
    if len(index) != len(ids) or any(
        d not in index or d == task.task_id for task in spec.tasks for d in task.dependencies
    ):
        raise SpecError(graph_issues(spec))
    waiting = [len(set(task.dependencies)) for task in spec.tasks]
    downstream = _dependents_by_index(spec, index)
    ready = [i for i, n in enumerate(waiting) if n == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        i = heapq.heappop(ready)
        order.append(ids[i])
        for child in downstream[i]:
            waiting[child] -= 1
            if waiting[child] == 0:
                heapq.heappush(ready, child)
    if len(order) != len(ids):
        raise SpecError(graph_issues(spec))
    return order


def _dependents_by_index(spec: WorkflowSpec, index: Mapping[str, int]) -> list[list[int]]:
    downstream: list[list[int]] = [[] for _ in spec.tasks]
    for i, task in enumerate(spec.tasks):
        for dep in dict.fromkeys(task.dependencies):
            if dep in index:
                downstream[index[dep]].append(i)
    return downstream


def dependents_map(spec: WorkflowSpec) -> dict[str, list[str]]:
    """task id -> ids of the tasks that depend on it directly, in spec order (every task a key)."""
    result: dict[str, list[str]] = {task_id: [] for task_id in spec.task_ids}
    for task in spec.tasks:
        for dep in dict.fromkeys(task.dependencies):
            if dep in result:
                result[dep].append(task.task_id)
    return result


def dependencies_map(spec: WorkflowSpec) -> dict[str, list[str]]:
    """task id -> ids of the tasks it depends on directly (duplicates dropped)."""
    return {task.task_id: list(dict.fromkeys(task.dependencies)) for task in spec.tasks}


Edges = Mapping[str, Iterable[str]]


def descendants(spec_or_edges: WorkflowSpec | Edges, task_id: str) -> set[str]:
    """Every task that depends on `task_id`, directly or not (itself only through a cycle).

    Pass the spec, or a dependents map (as from dependents_map) to reuse it across calls.
    """
    if isinstance(spec_or_edges, WorkflowSpec):
        spec_or_edges = dependents_map(spec_or_edges)
    return _reachable(spec_or_edges, task_id)


def ancestors(spec_or_edges: WorkflowSpec | Edges, task_id: str) -> set[str]:
    """Every task that `task_id` depends on, directly or not.

    Pass the spec, or a dependencies map (as from dependencies_map).
    """
    if isinstance(spec_or_edges, WorkflowSpec):
        spec_or_edges = dependencies_map(spec_or_edges)
    return _reachable(spec_or_edges, task_id)


def _reachable(edges: Edges, start: str) -> set[str]:
    found: set[str] = set()
    stack = [start]
    while stack:
        for nxt in edges.get(stack.pop(), ()):
            if nxt not in found:
                found.add(nxt)
                stack.append(nxt)
    return found


def depths(graph: Mapping[str, Sequence[str]]) -> dict[str, int]:
    """Each task's distance from the roots, for a graph in topological order (task id -> the
    tasks it depends on): how far the UIs indent it."""
    depth: dict[str, int] = {}
    for task_id, upstream in graph.items():
        depth[task_id] = 1 + max((depth.get(u, 0) for u in upstream), default=-1)
    return depth
