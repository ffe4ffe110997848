"""A search request given in code: the workflow inline or as a file's path."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from workbench.errors import SpecError
from workbench.hpo.optimizer import load_request, parse_request

WORKFLOW = {
    "workflow_id": "flow",
    "tasks": [{"task_id": "prepare", "task_type": "data_preprocessing", "parameters": {}}],
}
CONFIG = {
    "search_space": {"n_estimators": {"type": "integer", "min": 10, "max": 20}},
    "objective_metric": "f1_score",
}


@pytest.fixture
def workflow_file(tmp_path: Path) -> Path:
    path = tmp_path / "flows" / "flow.yaml"
    path.parent.mkdir()
    path.write_text(yaml.safe_dump(WORKFLOW))
    return path


def test_a_workflow_path_resolves_against_base_dir(tmp_path: Path, workflow_file: Path) -> None:
    request = parse_request(
        {
            "workflow_spec": "flow.yaml",
            "base_dir": str(workflow_file.parent),
            "hyperparameter_config": CONFIG,
        }
    )
    assert request.workflow_spec == WORKFLOW
    assert request.base_dir == workflow_file.parent


def test_without_base_dir_a_workflow_path_is_relative_to_the_current_directory(
    tmp_path: Path, workflow_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    request = parse_request({"workflow_spec": "flows/flow.yaml", "hyperparameter_config": CONFIG})
    assert request.workflow_spec == WORKFLOW
    assert request.base_dir == workflow_file.parent  # its data paths: next to the workflow


def test_a_missing_workflow_file_names_the_field_and_the_path(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as caught:
        parse_request(
            {
                "workflow_spec": "nope.yaml",
                "base_dir": str(tmp_path),
                "hyperparameter_config": CONFIG,
            }
        )
    message = str(caught.value)
    assert "workflow_spec" in message and str(tmp_path / "nope.yaml") in message, message


def test_a_request_file_finds_its_workflow_next_to_it(tmp_path: Path, workflow_file: Path) -> None:
    request_file = workflow_file.parent / "search.yaml"
    request_file.write_text(
        yaml.safe_dump({"workflow_spec": "flow.yaml", "hyperparameter_config": CONFIG})
    )
    request = load_request(request_file)
    assert request.workflow_spec == WORKFLOW
    assert request.base_dir == workflow_file.parent
