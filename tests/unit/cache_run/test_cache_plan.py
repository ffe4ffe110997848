"""Keys of whole workflows: what changes them and what must not (no Dask, no servers)."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from workbench.cache.fingerprints import FileFingerprints
from workbench.execution.cache_plan import CacheMode, plan_cache
from workbench.spec.models import CacheStrategy
from workbench.tasks.checks import load_workflow

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "fraud_detection.yaml"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    folder = tmp_path / "project"
    (folder / "data").mkdir(parents=True)
    shutil.copy(EXAMPLE, folder / "flow.yaml")
    (folder / "data" / "transactions.csv").write_text("amount,is_fraud\n1.0,0\n2.0,1\n")
    return folder


def spec_of(folder: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((folder / "flow.yaml").read_text())
    return loaded


def keys(spec: dict[str, Any], base_dir: Path, mode: CacheMode = CacheMode.USE) -> dict[str, str]:
    checked = load_workflow(spec, base_dir=base_dir)
    plans = plan_cache(checked, mode, CacheStrategy.DISK, FileFingerprints())
    return {tid: plan.key or "" for tid, plan in plans.items()}


def test_moving_the_workflow_and_its_data_keeps_every_key(project: Path, tmp_path: Path) -> None:
    before = keys(spec_of(project), project)
    moved = shutil.copytree(project, tmp_path / "elsewhere" / "deeper")
    assert keys(spec_of(moved), moved) == before


def test_renaming_tasks_keeps_every_key(project: Path) -> None:
    spec = spec_of(project)
    before = keys(spec, project)
    renamed = copy.deepcopy(spec)
    names = {t["task_id"]: f"step_{i}" for i, t in enumerate(renamed["tasks"])}
    for task in renamed["tasks"]:
        task["task_id"] = names[task["task_id"]]
        task["dependencies"] = [names[d] for d in task.get("dependencies", [])]
    after = keys(renamed, project)
    assert {names[tid]: key for tid, key in before.items()} == after


def test_reordering_parameters_keeps_the_key(project: Path) -> None:
    spec = spec_of(project)
    before = keys(spec, project)
    for task in spec["tasks"]:
        task["parameters"] = dict(reversed(list(task.get("parameters", {}).items())))
    assert keys(spec, project) == before


def test_a_parameter_changes_its_task_and_everything_below(project: Path) -> None:
    spec = spec_of(project)
    before = keys(spec, project)
    train = next(t for t in spec["tasks"] if t["task_id"] == "train")
    train["parameters"]["n_estimators"] = 301
    after = keys(spec, project)
    changed = {tid for tid in before if before[tid] != after[tid]}
    assert changed == {"train", "validate", "evaluate", "score"}


def test_data_file_content_changes_the_readers_and_below(project: Path) -> None:
    before = keys(spec_of(project), project)
    csv = project / "data" / "transactions.csv"
    csv.write_text(csv.read_text() + "3.0,0\n")
    after = keys(spec_of(project), project)
    # prepare and score both read the file; everything below prepare changes with it.
    assert {tid for tid in before if before[tid] != after[tid]} == set(before)


def test_only_the_globals_a_task_reads_are_in_its_key(project: Path) -> None:
    spec = spec_of(project)
    before = keys(spec, project)
    spec["global_parameters"]["unrelated"] = "x"
    assert keys(spec, project) == before
    spec["global_parameters"]["random_state"] = 8
    after = keys(spec, project)
    # prepare reads random_state; every other task sits below it, so all keys change.
    assert before["prepare"] != after["prepare"]
    assert all(before[tid] != after[tid] for tid in before)


def test_modes_and_strategies_decide_reads_and_writes(project: Path) -> None:
    spec = spec_of(project)
    spec["tasks"][1]["cache_strategy"] = "none"
    checked = load_workflow(spec, base_dir=project)
    use = plan_cache(checked, CacheMode.USE, CacheStrategy.DISK, FileFingerprints())
    assert (use["prepare"].read, use["prepare"].write) == (True, True)
    assert (use["features"].read, use["features"].write) == (False, False)
    assert use["features"].why_not == "cache_strategy is none"
    assert use["features"].key, "a task that is not cached still has a key for its dependents"
    refresh = plan_cache(checked, CacheMode.REFRESH, CacheStrategy.DISK, FileFingerprints())
    assert (refresh["train"].read, refresh["train"].write) == (False, True)
    off = plan_cache(checked, CacheMode.OFF, CacheStrategy.DISK, FileFingerprints())
    assert not any(p.read or p.write for p in off.values())
    assert off["train"].why_not == "caching is off for this run (--no-cache)"
