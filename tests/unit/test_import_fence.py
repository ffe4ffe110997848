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


def test_loading_the_whole_core_at_runtime_pulls_in_no_ui_toolkit():
    code = (
        "import sys, workbench\n"
        "import workbench.client, workbench.orchestrator, workbench.cli.app\n"
        "from workbench.tasks.registry import REGISTRY\n"
        "REGISTRY.names()\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in {'textual', 'ipywidgets'})\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_import_workbench_is_light():
    code = (
        "import sys, workbench\n"
        "heavy = {'distributed', 'sklearn', 'xgboost', 'pandas', 'rich', 'typer'}\n"
        "print(','.join(sorted(m for m in heavy if m in sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_validating_a_spec_does_not_import_the_data_stack():
    """The orchestrator validates and schedules built-in tasks without pandas or sklearn: they
    load on the workers that run the tasks."""
    code = (
        "import sys\n"
        "from workbench.tasks.checks import load_workflow\n"
        "load_workflow({'workflow_id': 'w', 'tasks': [\n"
        "  {'task_id': 'p', 'task_type': 'data_preprocessing',\n"
        "   'parameters': {'dataset_path': 'x.csv'}},\n"
        "  {'task_id': 'f', 'task_type': 'feature_extraction', 'dependencies': ['p']},\n"
        "  {'task_id': 'e', 'task_type': 'model_evaluation', 'dependencies': ['f']}]},\n"
        "  check_files=False)\n"
        "heavy = {'pandas', 'sklearn', 'xgboost', 'pyarrow'}\n"
        "print(','.join(sorted(m for m in heavy if m in sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
