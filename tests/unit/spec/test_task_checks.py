"""check_workflow / load_workflow: types, parameters, input files and imports against a registry."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
from spec_testing import PrepParams, TrainParams, make_registry, seed

from workbench.errors import SpecError, SpecIssue
from workbench.spec.loader import parse_spec
from workbench.tasks.checks import CheckedWorkflow, check_workflow, load_workflow
from workbench.tasks.registry import TaskRegistry


@pytest.fixture
def registry() -> TaskRegistry:
    return make_registry()


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def issues_of(target: object, registry: TaskRegistry, **kwargs: object) -> list[SpecIssue]:
    with pytest.raises(SpecError) as info:
        load_workflow(target, registry=registry, **kwargs)  # type: ignore[arg-type]
    return info.value.issues


def test_the_seed_checks_from_a_dict(registry: TaskRegistry) -> None:
    checked = load_workflow(seed(), check_files=False, registry=registry)
    assert isinstance(checked, CheckedWorkflow)
    assert checked.order == ("preprocess_data", "train_model")
    assert checked.base_dir == Path.cwd()
    assert checked.source is None
    assert checked.definitions["train_model"].name == "model_training"
    train = checked.params["train_model"]
    assert isinstance(train, TrainParams)
    assert (train.algorithm, train.n_estimators) == ("xgboost", 100)
    prep = checked.params["preprocess_data"]
    assert isinstance(prep, PrepParams) and prep.dataset_path == "/data/transactions.csv"


def test_the_seed_checks_from_a_json_file(tmp_path: Path, registry: TaskRegistry) -> None:
    path = tmp_path / "seed.json"
    path.write_text(json.dumps(seed()))
    checked = load_workflow(path, check_files=False, registry=registry)
    assert checked.spec == parse_spec(seed())
    assert checked.base_dir == tmp_path.resolve() and checked.source == str(path)


def test_the_seed_data_file_must_exist_when_files_are_checked(registry: TaskRegistry) -> None:
    (issue,) = issues_of(seed(), registry)
    assert issue.path == "tasks[0].parameters.dataset_path"
    assert issue.message == "input file not found: /data/transactions.csv"


def test_a_workflow_spec_object_is_accepted(registry: TaskRegistry, tmp_path: Path) -> None:
    checked = load_workflow(parse_spec(seed()), check_files=False, registry=registry)
    assert checked.order == ("preprocess_data", "train_model")
    checked = check_workflow(
        parse_spec(seed()), base_dir=tmp_path, check_files=False, registry=registry
    )
    assert checked.base_dir == tmp_path.resolve()


SPEC = """
workflow_id: demo
tasks:
  - task_id: prep
    task_type: data_preprocessing
    parameters:
      dataset_path: data/train.csv
  - task_id: train
    task_type: model_training
    dependencies: [prep]
    parameters:
      algorithm: xgboost
      n_estimators: 100
"""


def test_relative_input_files_resolve_against_the_spec_folder(
    tmp_path: Path, registry: TaskRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train.csv").write_text("a,b\n1,2\n")
    path = write(tmp_path, "spec.yaml", SPEC)
    monkeypatch.chdir("/")
    checked = load_workflow(path, registry=registry)
    assert checked.base_dir == tmp_path.resolve()
    assert checked.order == ("prep", "train")


def test_missing_relative_input_file_names_the_resolved_path(
    tmp_path: Path, registry: TaskRegistry
) -> None:
    (issue,) = issues_of(write(tmp_path, "spec.yaml", SPEC), registry)
    assert issue.path == "tasks[0].parameters.dataset_path"
    assert issue.message == f"input file not found: {tmp_path.resolve() / 'data' / 'train.csv'}"
    assert issue.line == 6


def test_an_input_directory_is_not_a_file(tmp_path: Path, registry: TaskRegistry) -> None:
    (tmp_path / "data" / "train.csv").mkdir(parents=True)
    (issue,) = issues_of(write(tmp_path, "spec.yaml", SPEC), registry)
    assert issue.message == f"input path is not a file: {tmp_path.resolve() / 'data/train.csv'}"


def test_an_unreadable_input_file(
    tmp_path: Path, registry: TaskRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "data").mkdir()
    data = tmp_path / "data" / "train.csv"
    data.write_text("a\n1\n")
    real_open = Path.open

    def deny(self: Path, *args: Any, **kwargs: Any) -> Any:
        if self == data.resolve():
            raise PermissionError(13, "Permission denied")
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", deny)
    (issue,) = issues_of(write(tmp_path, "spec.yaml", SPEC), registry)
    assert issue.message == f"input file cannot be read: {data.resolve()} (Permission denied)"


def test_input_files_in_lists_and_urls(tmp_path: Path, registry: TaskRegistry) -> None:
    (tmp_path / "in.csv").write_text("x\n")
    data = {
        "workflow_id": "w",
        "tasks": [
            {
                "task_id": "score",
                "task_type": "batch_inference",
                "parameters": {
                    "dataset_path": "s3://bucket/in.csv",
                    "extra_files": ["in.csv", "gone.csv"],
                },
            }
        ],
    }
    (issue,) = issues_of(data, registry, base_dir=tmp_path)
    assert issue.path == "tasks[0].parameters.extra_files[1]"
    assert issue.message == f"input file not found: {tmp_path.resolve() / 'gone.csv'}"


def test_files_are_not_checked_when_asked_not_to(tmp_path: Path, registry: TaskRegistry) -> None:
    checked = load_workflow(write(tmp_path, "s.yaml", SPEC), check_files=False, registry=registry)
    assert checked.order == ("prep", "train")


def test_unknown_task_type_lists_the_known_ones(tmp_path: Path, registry: TaskRegistry) -> None:
    path = write(
        tmp_path, "spec.yaml", SPEC.replace("task_type: model_training", "task_type: model_trainin")
    )
    (issue,) = issues_of(path, registry, check_files=False)
    assert issue.path == "tasks[1].task_type"
    assert issue.line == 8
    assert issue.message.startswith(
        "unknown task type 'model_trainin'; known types: batch_inference, boosted, "
        "data_preprocessing, gpu_training, model_training."
    )
    assert issue.message.endswith("Did you mean 'model_training'?")


def test_unavailable_task_type_says_why(registry: TaskRegistry) -> None:
    data = seed()
    data["tasks"][1]["task_type"] = "gpu_training"
    (issue,) = issues_of(data, registry, check_files=False)
    assert issue.path == "tasks[1].task_type"
    assert issue.message == "task type 'gpu_training' is not available: needs CUDA"


PARAMS_SPEC = """
workflow_id: demo
tasks:
  - task_id: prep
    task_type: data_preprocessing
    parameters: {}
  - task_id: train
    task_type: model_training
    dependencies: [prep]
    parameters:
      algorithm: xgbost
      n_estimators: many
      n_estimator: 5
      booster: {depth: 0}
"""


def test_parameter_errors_have_paths_lines_and_expectations(
    tmp_path: Path, registry: TaskRegistry
) -> None:
    issues = issues_of(write(tmp_path, "spec.yaml", PARAMS_SPEC), registry)
    assert [(i.line, i.path, i.message) for i in issues] == [
        (
            5,
            "tasks[0].parameters",
            "give exactly one of 'dataset_path' (a file) or 'dataset' (built-in)",
        ),
        (
            10,
            "tasks[1].parameters.algorithm",
            "expected one of 'xgboost', 'random_forest' or 'logistic_regression', got 'xgbost' "
            "(did you mean 'xgboost'?)",
        ),
        (11, "tasks[1].parameters.n_estimators", "expected an integer, got 'many'"),
        (
            12,
            "tasks[1].parameters.n_estimator",
            "unknown field 'n_estimator'; allowed: algorithm, n_estimators, learning_rate, "
            "booster (did you mean 'n_estimators'?)",
        ),
        (13, "tasks[1].parameters.booster.depth", "expected a number >= 1, got 0"),
    ]


def test_a_number_out_of_range(registry: TaskRegistry) -> None:
    data = seed()
    data["tasks"][0]["parameters"]["test_size"] = 2
    (issue,) = issues_of(data, registry, check_files=False)
    assert (issue.path, issue.message) == (
        "tasks[0].parameters.test_size",
        "expected a number < 1, got 2",
    )


def test_a_missing_required_parameter_points_at_the_parameters(
    tmp_path: Path, registry: TaskRegistry
) -> None:
    data = seed()
    del data["tasks"][1]["parameters"]["algorithm"]
    (issue,) = issues_of(data, registry, check_files=False)
    assert (issue.path, issue.message) == (
        "tasks[1].parameters.algorithm",
        "required field is missing",
    )


def test_all_kinds_of_problems_come_out_together(tmp_path: Path, registry: TaskRegistry) -> None:
    path = write(
        tmp_path,
        "spec.yaml",
        """
        workflow_id: demo
        imports: [no_such_module_xyz]
        tasks:
          - task_id: a
            task_type: nope
            dependencies: [b]
          - task_id: b
            task_type: model_training
            dependencies: [a]
            parameters: {algorithm: xgboost, n_estimators: 0}
        """,
    )
    issues = issues_of(path, registry)
    assert [(i.line, i.path) for i in issues] == [
        (2, "imports[0]"),
        (5, "tasks[0].task_type"),
        (6, "tasks[0].dependencies[0]"),
        (10, "tasks[1].parameters.n_estimators"),
    ]
    assert issues[0].message.startswith("cannot import module 'no_such_module_xyz'")
    assert issues[2].message.startswith("dependency cycle: a -> b -> a")


def test_graph_problems_come_with_model_problems_too(registry: TaskRegistry) -> None:
    data = seed()
    data["tasks"][0]["dependencies"] = ["train_model"]
    data["tasks"][1]["timeout_s"] = 0
    issues = issues_of(data, registry, check_files=False)
    assert [i.path for i in issues] == ["tasks[1].timeout_s", "tasks[0].dependencies[0]"]
    assert issues[1].message.startswith(
        "dependency cycle: preprocess_data -> train_model -> preprocess_data"
    )


def test_imports_of_python_files(tmp_path: Path, registry: TaskRegistry) -> None:
    marker = tmp_path / "imported.txt"
    write(tmp_path, "ok_tasks.py", f"open({str(marker)!r}, 'w').close()\n")
    write(tmp_path, "broken_tasks.py", "raise RuntimeError('boom')\n")
    data = {**seed(), "imports": ["ok_tasks.py", "broken_tasks.py", "missing.py"]}
    issues = issues_of(data, registry, base_dir=tmp_path, check_files=False)
    assert marker.exists()
    assert [(i.path, i.message) for i in issues] == [
        ("imports[1]", "importing 'broken_tasks.py' failed: RuntimeError: boom"),
        ("imports[2]", f"'missing.py' not found (looked at {tmp_path.resolve() / 'missing.py'})"),
    ]


def test_check_workflow_uses_given_positions(registry: TaskRegistry, tmp_path: Path) -> None:
    data = seed()
    data["tasks"][1]["parameters"]["n_estimators"] = -1
    spec = parse_spec(data)
    with pytest.raises(SpecError) as info:
        check_workflow(
            spec,
            base_dir=tmp_path,
            source="s.yaml",
            check_files=False,
            registry=registry,
            positions={"tasks[1].parameters.n_estimators": (12, 7)},
        )
    (issue,) = info.value.issues
    assert (issue.line, issue.column) == (12, 7) and info.value.source == "s.yaml"


def test_base_dir_is_absolute(
    registry: TaskRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    checked = load_workflow(seed(), base_dir=Path("."), check_files=False, registry=registry)
    assert checked.base_dir == tmp_path.resolve()


def test_a_missing_file_is_reported_beside_other_parameter_mistakes(
    tmp_path: Path, registry: TaskRegistry
) -> None:
    spec = seed()
    spec["tasks"][0]["parameters"] = {"dataset_path": "nowhere.csv", "no_such_option": 1}
    issues = issues_of(spec, registry, base_dir=tmp_path)
    messages = {issue.path: issue.message for issue in issues}
    assert "input file not found" in messages["tasks[0].parameters.dataset_path"]
    assert "tasks[0].parameters.no_such_option" in messages
