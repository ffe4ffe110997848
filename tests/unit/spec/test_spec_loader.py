"""load_spec / parse_spec: every problem is a SpecError issue with a path, message and line."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from spec_testing import SEED, seed

from workbench.errors import SpecError, SpecIssue
from workbench.spec.loader import decode_spec, load_spec, parse_spec, read_spec
from workbench.spec.models import CacheStrategy, WorkflowSpec


def write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def issues_of(path: Path) -> list[SpecIssue]:
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert info.value.source == str(path)
    return info.value.issues


def only_issue(path: Path) -> SpecIssue:
    issues = issues_of(path)
    assert len(issues) == 1, issues
    return issues[0]


# -- the seed ---------------------------------------------------------------------------------


def test_seed_loads_exactly_as_written_from_a_dict() -> None:
    spec = parse_spec(seed())
    assert spec.model_dump(exclude_unset=True, mode="json") == SEED
    assert spec.name == "Fraud Detection Model Training"
    assert spec.tasks[0].cache_strategy is CacheStrategy.REDIS
    assert spec.tasks[0].parameters == {"dataset_path": "/data/transactions.csv"}
    assert spec.tasks[1].parameters == {"algorithm": "xgboost", "n_estimators": 100}
    assert spec.tasks[1].dependencies == ["preprocess_data"]


def test_seed_loads_exactly_as_written_from_json(tmp_path: Path) -> None:
    path = write(tmp_path, "seed.json", json.dumps(SEED, indent=2))
    assert load_spec(path) == parse_spec(seed())
    assert load_spec(path).model_dump(exclude_unset=True, mode="json") == SEED


def test_yaml_records_the_line_of_every_field(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "spec.yml",
        """
        workflow_id: w
        tasks:
          - task_id: a
            task_type: t
            parameters:
              n: 1
        """,
    )
    loaded = read_spec(path)
    assert loaded.positions["workflow_id"] == (1, 1)
    assert loaded.positions["tasks[0]"] == (3, 5)
    assert loaded.positions["tasks[0].task_type"] == (4, 5)
    assert loaded.positions["tasks[0].parameters.n"] == (6, 7)


def test_json_records_the_line_of_every_field(tmp_path: Path) -> None:
    path = write(tmp_path, "spec.json", json.dumps(SEED, indent=2))
    loaded = read_spec(path)
    lines = path.read_text().splitlines()
    line, column = loaded.positions["tasks[1].parameters.n_estimators"]
    assert lines[line - 1][column - 1 :].startswith('"n_estimators"')
    line, column = loaded.positions["tasks[1].dependencies[0]"]
    assert lines[line - 1][column - 1 :].startswith('"preprocess_data"')


def test_yaml_dates_stay_strings_like_in_json(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "spec.yaml",
        """
        workflow_id: w
        tasks: [{task_id: a, task_type: t, parameters: {cutoff: 2024-01-31}}]
        """,
    )
    assert load_spec(path).tasks[0].parameters == {"cutoff": "2024-01-31"}


def test_a_utf8_bom_is_accepted(tmp_path: Path) -> None:
    path = write(tmp_path, "spec.json", b"\xef\xbb\xbf" + json.dumps(SEED).encode())
    assert load_spec(path) == parse_spec(seed())


def test_yaml_anchors_and_merge_keys_work(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "spec.yaml",
        """
        workflow_id: w
        tasks:
          - &base {task_id: a, task_type: t, timeout_s: 5}
          - <<: *base
            task_id: b
            dependencies: [a]
        """,
    )
    spec = load_spec(path)
    assert spec.tasks[1].timeout_s == 5 and spec.tasks[1].task_type == "t"


# -- the file ---------------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    issue = only_issue(tmp_path / "nope.yaml")
    assert issue.message == f"file not found: {tmp_path / 'nope.yaml'}"
    assert issue.line is None and issue.path == ""


def test_a_directory(tmp_path: Path) -> None:
    folder = tmp_path / "spec.yaml"
    folder.mkdir()
    assert only_issue(folder).message == "is a directory; expected a .yaml, .yml or .json file"


def test_unsupported_suffix(tmp_path: Path) -> None:
    path = write(tmp_path, "spec.toml", "workflow_id = 'w'")
    assert only_issue(path).message == "unsupported file type '.toml'; use .yaml, .yml or .json"


def test_unreadable_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "spec.yaml", "workflow_id: w")

    def denied(self: Path) -> bytes:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "read_bytes", denied)
    assert only_issue(path).message == "cannot read the file: Permission denied"


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("empty.yaml", ""),
        ("blank.yaml", "  \n\n\t\n"),
        ("comments.yaml", "# just a comment\n# and another\n"),
        ("empty.json", "\n"),
        ("doc-marker.yaml", "---\n"),
    ],
)
def test_empty_files(tmp_path: Path, name: str, text: str) -> None:
    issue = only_issue(write(tmp_path, name, text))
    assert issue.message == "the spec is empty; expected a mapping with workflow_id and tasks"


def test_non_utf8_bytes_give_the_offset_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "spec.yaml", b"workflow_id: w\nname: caf\xe9\n")
    issue = only_issue(path)
    assert issue.message == (
        "the file is not valid UTF-8: byte 0xe9 at offset 24; save it as UTF-8"
    )
    assert (issue.line, issue.column) == (2, 10)


def test_yaml_syntax_error_has_line_and_column(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "spec.yaml",
        """
        workflow_id: w
        tasks:
          - task_id: a
            task_type: [t
        """,
    )
    issue = only_issue(path)
    assert issue.message.startswith("YAML syntax error: expected ',' or ']'")
    assert "while parsing a flow sequence at line 4" in issue.message
    assert issue.line == 5


def test_yaml_bad_indentation(tmp_path: Path) -> None:
    path = write(tmp_path, "spec.yaml", "workflow_id: w\n  name: x\n")
    issue = only_issue(path)
    assert issue.message == "YAML syntax error: mapping values are not allowed here"
    assert (issue.line, issue.column) == (2, 7)


def test_json_syntax_error_has_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, "spec.json", '{\n  "workflow_id": "w",\n  "tasks": [,]\n}')
    issue = only_issue(path)
    assert issue.message == "JSON syntax error: Expecting value"
    assert (issue.line, issue.column) == (3, 13)


def test_yaml_control_characters(tmp_path: Path) -> None:
    path = write(tmp_path, "spec.yaml", "workflow_id: w\nname: a\x07b\n")
    issue = only_issue(path)
    assert issue.message == "character U+0007 is not allowed in YAML; remove it"
    assert (issue.line, issue.column) == (2, 8)


def test_several_yaml_documents(tmp_path: Path) -> None:
    path = write(tmp_path, "spec.yaml", "workflow_id: w\n---\nworkflow_id: v\n")
    issue = only_issue(path)
    assert issue.message == "a spec is one YAML document, but another one starts here (after '---')"
    assert issue.line == 2


def test_unknown_yaml_tag(tmp_path: Path) -> None:
    path = write(tmp_path, "spec.yaml", "workflow_id: !!python/name:os.system w\n")
    issue = only_issue(path)
    assert issue.message.startswith("YAML error: could not determine a constructor for the tag")
    assert issue.line == 1


def test_self_containing_alias(tmp_path: Path) -> None:
    path = write(tmp_path, "spec.yaml", "workflow_id: w\nglobal_parameters: &x {a: *x}\n")
    issue = only_issue(path)
    assert issue.path == "global_parameters.a"
    assert issue.message == "an alias refers to a node that contains it"
    assert issue.line == 2


@pytest.mark.parametrize(("name", "text"), [("deep.yaml", "[" * 3000), ("deep.json", "[" * 3000)])
def test_deep_nesting(tmp_path: Path, name: str, text: str) -> None:
    issue = only_issue(write(tmp_path, name, text + "]" * 3000))
    assert issue.message == "the document is nested too deeply"


@pytest.mark.parametrize(
    ("name", "text", "got"),
    [
        ("list.yaml", "- workflow_id: w\n", "a list"),
        ("scalar.yaml", "just text\n", "'just text'"),
        ("number.json", "42", "42"),
        ("null.json", "null", None),
    ],
)
def test_top_level_must_be_a_mapping(tmp_path: Path, name: str, text: str, got: str) -> None:
    issue = only_issue(write(tmp_path, name, text))
    if got is None:
        assert issue.message.startswith("the spec is empty")
    else:
        assert issue.message == (
            f"the top level must be a mapping with workflow_id and tasks, got {got}"
        )
        assert issue.line == 1


def test_parse_spec_rejects_non_mappings() -> None:
    with pytest.raises(SpecError, match="top level must be a mapping"):
        parse_spec(["x"])  # type: ignore[arg-type]


# -- duplicate keys ---------------------------------------------------------------------------


def test_yaml_duplicate_key_names_both_lines(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "spec.yaml",
        """
        workflow_id: w
        tasks:
          - task_id: a
            task_type: t
            timeout_s: 5
            timeout_s: 10
        """,
    )
    issue = only_issue(path)
    assert issue.path == "tasks[0].timeout_s"
    assert issue.message == "duplicate key 'timeout_s' (first at line 5, again at line 6); keep one"
    assert (issue.line, issue.column) == (6, 5)


def test_json_duplicate_key_names_both_lines(tmp_path: Path) -> None:
    text = '{\n  "workflow_id": "w",\n  "tasks": [],\n  "workflow_id": "v"\n}'
    issue = only_issue(write(tmp_path, "spec.json", text))
    assert issue.path == "workflow_id"
    assert issue.message == (
        "duplicate key 'workflow_id' (first at line 2, again at line 4); keep one"
    )
    assert (issue.line, issue.column) == (4, 3)


def test_same_key_in_different_mappings_is_fine(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "spec.yaml",
        """
        workflow_id: w
        tasks:
          - {task_id: a, task_type: t}
          - {task_id: b, task_type: t}
        """,
    )
    assert load_spec(path).task_ids == ["a", "b"]


# -- model validation -------------------------------------------------------------------------


BROKEN_YAML = """
workflow_id: 9lives
tasks:
  - task_id: prep
    task_type: data_preprocessing
    cache_strategy: rediss
    dependecies: []
  - task_type: model_training
    dependencies: [prep]
  - task_id: train
    task_type: model_training
    timeout_s: soon
    retry_policy: {backoff_base_s: 10, backoff_max_s: 1}
    resources: {memory: lots, gpu: -1}
"""


def test_every_model_error_is_an_issue_with_path_message_and_line(tmp_path: Path) -> None:
    issues = issues_of(write(tmp_path, "spec.yaml", BROKEN_YAML))
    found = {issue.path: (issue.line, issue.message) for issue in issues}
    assert found == {
        "workflow_id": (
            1,
            "expected a name of letters, digits, '_', '.' and '-' that starts with a letter "
            "or '_', got '9lives'",
        ),
        "tasks[0].cache_strategy": (
            5,
            "expected one of 'none', 'memory', 'redis', 'disk' or 'hybrid', got 'rediss' "
            "(did you mean 'redis'?)",
        ),
        "tasks[0].dependecies": (
            6,
            "unknown field 'dependecies'; allowed: task_id, task_type, dependencies, parameters, "
            "cache_strategy, retry_policy, resources, timeout_s, description "
            "(did you mean 'dependencies'?)",
        ),
        "tasks[1].task_id": (7, "required field is missing"),
        "tasks[2].timeout_s": (11, "expected a number, got 'soon'"),
        "tasks[2].retry_policy": (12, "backoff_max_s must be >= backoff_base_s"),
        "tasks[2].resources.memory": (13, "expected a size such as '512MB' or '4GiB', got 'lots'"),
        "tasks[2].resources.gpu": (13, "expected a number >= 0, got -1"),
    }
    assert [issue.line for issue in issues] == sorted(issue.line or 0 for issue in issues)


def test_json_model_errors_carry_lines_too(tmp_path: Path) -> None:
    data = seed()
    data["tasks"][1]["timeout_s"] = "soon"
    path = write(tmp_path, "spec.json", json.dumps(data, indent=2))
    issue = only_issue(path)
    assert issue.path == "tasks[1].timeout_s"
    assert issue.message == "expected a number, got 'soon'"
    assert issue.line is not None
    assert path.read_text().splitlines()[issue.line - 1].strip() == '"timeout_s": "soon"'


@pytest.mark.parametrize(
    ("change", "path", "message"),
    [
        ({"tasks": []}, "tasks", "expected at least 1 item, got 0"),
        ({"tasks": {"a": 1}}, "tasks", "expected a list, got a mapping"),
        ({"tasks": [5]}, "tasks[0]", "expected a mapping, got 5"),
        ({"name": ["x"]}, "name", "expected a string, got a list"),
        ({"workflow_id": "x" * 200}, "workflow_id", "expected a string of at most 128 characters"),
        ({"imports": "x.py"}, "imports", "expected a list, got 'x.py'"),
        ({"tasks": [{"task_id": "a", "task_type": 3}]}, "tasks[0].task_type", "expected a string"),
        (
            {"tasks": [{"task_id": "a", "task_type": "t", "retry_policy": {"max_retries": 1.5}}]},
            "tasks[0].retry_policy.max_retries",
            "expected a whole number, got 1.5",
        ),
        (
            {"tasks": [{"task_id": "a", "task_type": "t", "retry_policy": {"jitter": "maybe"}}]},
            "tasks[0].retry_policy.jitter",
            "expected true or false, got 'maybe'",
        ),
        (
            {"tasks": [{"task_id": "a", "task_type": "t", "resources": {"cpuz": 1}}]},
            "tasks[0].resources.cpuz",
            "unknown field 'cpuz'; allowed: cpu, memory, gpu, capabilities (did you mean 'cpu'?)",
        ),
        ({"extra": 1}, "extra", "unknown field 'extra'; allowed: workflow_id, name"),
    ],
)
def test_model_error_messages(change: dict[str, object], path: str, message: str) -> None:
    data = {**seed(), **change}
    with pytest.raises(SpecError) as info:
        parse_spec(data)
    found = {issue.path: issue.message for issue in info.value.issues}
    assert path in found, found
    assert found[path].startswith(message)


def test_graph_problems_come_with_model_problems(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "spec.yaml",
        """
        workflow_id: w
        tasks:
          - task_id: a
            task_type: t
            timeout_s: -3
            dependencies: [b]
          - task_id: b
            task_type: t
            dependencies: [a, c]
        """,
    )
    issues = issues_of(path)
    assert [(i.line, i.path) for i in issues] == [
        (5, "tasks[0].timeout_s"),
        (6, "tasks[0].dependencies[0]"),
        (9, "tasks[1].dependencies[1]"),
    ]
    assert issues[0].message == "expected a number > 0, got -3"
    assert issues[1].message.startswith("dependency cycle: a -> b -> a")
    assert issues[2].message == "unknown dependency 'c'"


def test_graph_problems_have_lines(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "spec.yaml",
        """
        workflow_id: w
        tasks:
          - task_id: prepare
            task_type: t
          - task_id: train
            task_type: t
            dependencies:
              - prepar
              - train
          - task_id: prepare
            task_type: t
        """,
    )
    issues = issues_of(path)
    assert [(i.line, i.message) for i in issues] == [
        (8, "unknown dependency 'prepar'; did you mean 'prepare'?"),
        (9, "task 'train' depends on itself"),
        (10, "duplicate task_id 'prepare'; tasks[0] has it already"),
    ]


def test_decode_spec_takes_text() -> None:
    loaded = decode_spec(json.dumps(SEED), "json", source="inline")
    assert loaded.spec == parse_spec(seed()) and loaded.source == "inline"


def test_the_error_text_names_file_line_and_field(tmp_path: Path) -> None:
    path = write(tmp_path, "spec.yaml", "workflow_id: w\ntasks:\n  - {task_id: a, task_type: 1}\n")
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert f"{path}:3:18: tasks[0].task_type: expected a string, got 1" in str(info.value)


def test_a_workflow_spec_is_what_load_returns(tmp_path: Path) -> None:
    path = write(tmp_path, "spec.yaml", "workflow_id: w\ntasks: [{task_id: a, task_type: t}]\n")
    spec = load_spec(path)
    assert isinstance(spec, WorkflowSpec) and spec.name == "w"


def test_union_errors_become_one_issue() -> None:
    from pydantic import BaseModel, ValidationError

    from workbench.spec.issues import validation_issues

    class Params(BaseModel):
        source: str | list[str]
        limits: dict[str, int] = {}

    data = {"source": 5, "limits": {"a": "x"}}
    with pytest.raises(ValidationError) as info:
        Params.model_validate(data)
    issues = validation_issues(info.value, Params, data, prefix=("tasks", 0, "parameters"))
    assert [(i.path, i.message) for i in issues] == [
        ("tasks[0].parameters.source", "expected a string or a list, got 5"),
        ("tasks[0].parameters.limits.a", "expected an integer, got 'x'"),
    ]
