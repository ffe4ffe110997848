"""Task-type registry: built-ins, @task_type-decorated functions and entry-point plug-ins."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
import threading
from collections.abc import Callable
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType

from pydantic import BaseModel

from workbench.errors import UnknownTaskTypeError, WorkbenchError
from workbench.tasks.base import NoParameters, TaskDefinition, TaskFunction

ENTRY_POINT_GROUP = "workbench.tasks"


class TaskRegistry:
    def __init__(self) -> None:
        self._definitions: dict[str, TaskDefinition] = {}
        self._plugins_loaded = False
        # Specs are checked on worker threads (several submissions at once): the first to ask
        # loads the built-ins and plug-ins while the others wait, never seeing half a registry.
        # Re-entrant: a plug-in being loaded may look types up on the loading thread.
        self._loading = threading.RLock()
        self._loading_now = False

    def register(self, definition: TaskDefinition, *, replace: bool = False) -> None:
        if definition.name in self._definitions and not replace:
            existing = self._definitions[definition.name]
            if existing.fn is not definition.fn:
                raise WorkbenchError(
                    f"task type {definition.name!r} is already registered "
                    f"(by {getattr(existing.fn, '__module__', '?')}); pick another name"
                )
        self._definitions[definition.name] = definition

    def get(self, name: str) -> TaskDefinition:
        self._ensure_loaded()
        try:
            return self._definitions[name]
        except KeyError:
            raise UnknownTaskTypeError(name, list(self._definitions)) from None

    def names(self) -> list[str]:
        self._ensure_loaded()
        return sorted(self._definitions)

    def definitions(self) -> list[TaskDefinition]:
        self._ensure_loaded()
        return [self._definitions[name] for name in sorted(self._definitions)]

    def _ensure_loaded(self) -> None:
        if self._plugins_loaded:
            return
        with self._loading:
            if self._plugins_loaded or self._loading_now:  # loaded, or this thread is loading
                return
            self._loading_now = True
            try:
                self._load_all()
            finally:
                self._loading_now = False
                self._plugins_loaded = True

    def _load_all(self) -> None:
        from workbench.tasks.builtin import register_builtins

        register_builtins(self)
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            try:
                ep.load()
            except Exception as exc:
                raise WorkbenchError(
                    f"the task plug-in {ep.name!r} ({ep.value}) failed to load: {exc}. "
                    "Fix or uninstall the package that provides it."
                ) from exc


REGISTRY = TaskRegistry()
_FILE_MODULES: dict[Path, ModuleType] = {}


def task_type(
    name: str, params: type[BaseModel] = NoParameters, description: str | None = None
) -> Callable[[TaskFunction], TaskFunction]:
    """Register a function as a task type: `@task_type("my_type", params=MyParams)`.

    The function receives a TaskContext (parameters as `ctx.params`, upstream outputs as
    `ctx.inputs`) and returns a TaskResult, or any value, which becomes the result's output.
    """

    def decorate(fn: TaskFunction) -> TaskFunction:
        doc = description if description is not None else (fn.__doc__ or "").strip()
        REGISTRY.register(TaskDefinition(name=name, fn=fn, params=params, description=doc))
        return fn

    return decorate


def import_task_module(reference: str, base_dir: Path) -> None:
    """Import a module (dotted name) or a .py file (relative to base_dir) that registers types.

    Modules loaded from a file are pickled by value, so Dask workers that cannot import the
    file themselves still get the task functions.
    """
    if reference.endswith(".py"):
        path = (base_dir / reference).resolve()
        if path in _FILE_MODULES:
            return
        if not path.is_file():
            raise WorkbenchError(f"imports: {reference!r} not found (looked at {path})")
        digest = hashlib.sha1(str(path).encode()).hexdigest()[:10]
        module_name = f"workbench_user_{path.stem}_{digest}"
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:
            raise WorkbenchError(f"imports: cannot load {path} as a Python module")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module  # while its classes are built
        try:
            spec.loader.exec_module(module)
        finally:
            # Out of sys.modules, its functions and classes cannot be pickled by reference,
            # so Dask ships them to workers by value (workers cannot import the file).
            del sys.modules[module_name]
        _FILE_MODULES[path] = module
    else:
        try:
            importlib.import_module(reference)
        except ImportError as exc:
            raise WorkbenchError(
                f"imports: cannot import module {reference!r}: {exc}. "
                "Install it, or give a .py file path relative to the spec."
            ) from exc
