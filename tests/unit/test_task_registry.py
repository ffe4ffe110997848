"""Task types from packages (the `workbench.tasks` entry-point group) and from spec imports."""

from __future__ import annotations

import sys
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from workbench.errors import UnknownTaskTypeError, WorkbenchError
from workbench.tasks import registry as registry_module
from workbench.tasks.registry import ENTRY_POINT_GROUP, TaskRegistry, import_task_module

PLUGIN = """
from workbench.tasks.registry import task_type

@task_type("plugin_double")
def double(ctx):
    return 2
"""


def test_entry_point_plugins_register_their_types(tmp_path, monkeypatch):
    (tmp_path / "wb_plugin_pkg.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    point = EntryPoint(name="double", value="wb_plugin_pkg", group=ENTRY_POINT_GROUP)
    monkeypatch.setattr(registry_module, "entry_points", lambda group: [point])
    fresh = TaskRegistry()
    monkeypatch.setattr(registry_module, "REGISTRY", fresh)
    assert "plugin_double" in fresh.names()
    assert fresh.get("plugin_double").fn is not None
    sys.modules.pop("wb_plugin_pkg", None)


def test_a_broken_plugin_gets_a_clear_error(monkeypatch):
    point = EntryPoint(name="broken", value="no_such_module_xyz", group=ENTRY_POINT_GROUP)
    monkeypatch.setattr(registry_module, "entry_points", lambda group: [point])
    with pytest.raises(WorkbenchError, match=r"plug-in 'broken'.*failed to load"):
        TaskRegistry().names()


def test_unknown_type_lists_the_known_ones():
    from workbench.tasks.registry import REGISTRY

    with pytest.raises(UnknownTaskTypeError, match=r"known types: .*model_training"):
        REGISTRY.get("model_trainin")


def test_spec_imports_load_a_file_once_and_keep_it_out_of_sys_modules(tmp_path: Path):
    (tmp_path / "my_tasks.py").write_text(PLUGIN.replace("plugin_double", "file_double"))
    import_task_module("my_tasks.py", tmp_path)
    import_task_module("my_tasks.py", tmp_path)  # a second import is a no-op, not a clash
    from workbench.tasks.registry import REGISTRY

    fn = REGISTRY.get("file_double").fn
    # not importable by reference, so Dask ships it to workers by value
    assert fn.__module__ not in sys.modules
    with pytest.raises(WorkbenchError, match="not found"):
        import_task_module("missing.py", tmp_path)
