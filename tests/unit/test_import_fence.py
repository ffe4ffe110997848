"""The core never imports the UI toolkits, and `import workbench` stays light."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import workbench

PACKAGE = Path(workbench.__file__).parent
FENCED = {"textual", "ipywidgets"}


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_no_module_of_the_core_imports_a_ui_toolkit():
    offenders = {
        str(path.relative_to(PACKAGE)): sorted(imported_roots(path) & FENCED)
        for path in PACKAGE.rglob("*.py")
        if path.parent.name != "notebook" and imported_roots(path) & FENCED
    }
    assert offenders == {}


def packages_loaded_by(code: str, packages: set[str]) -> set[str]:
    """Which of `packages` a fresh interpreter has imported after running `code`."""
    probe = (
        f"{code}\nimport sys\nprint(','.join(p for p in {sorted(packages)!r} if p in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return {name for name in out.stdout.strip().split(",") if name}


def test_loading_the_whole_core_at_runtime_pulls_in_no_ui_toolkit():
    code = (
        "import workbench, workbench.client, workbench.orchestrator, workbench.cli.app\n"
        "from workbench.tasks.registry import REGISTRY\n"
        "REGISTRY.names()"
    )
    assert packages_loaded_by(code, FENCED) == set()


def test_import_workbench_is_light():
    heavy = {"distributed", "sklearn", "xgboost", "pandas", "rich", "typer"}
    assert packages_loaded_by("import workbench", heavy) == set()


def test_validating_a_spec_does_not_import_the_data_stack():
    """The orchestrator validates and schedules built-in tasks without pandas or sklearn: they
    load on the workers that run the tasks."""
    code = (
        "from workbench.tasks.checks import load_workflow\n"
        "load_workflow({'workflow_id': 'w', 'tasks': [\n"
        "  {'task_id': 'p', 'task_type': 'data_preprocessing',\n"
        "   'parameters': {'dataset_path': 'x.csv'}},\n"
        "  {'task_id': 'f', 'task_type': 'feature_extraction', 'dependencies': ['p']},\n"
        "  {'task_id': 'e', 'task_type': 'model_evaluation', 'dependencies': ['f']}]},\n"
        "  check_files=False)"
    )
    assert packages_loaded_by(code, {"pandas", "sklearn", "xgboost", "pyarrow"}) == set()
