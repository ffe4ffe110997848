"""Where a module's source lives and which project it belongs to, found without importing it.

A project is the set of modules analysed rather than versioned as libraries: the task's
top-level package (or, for a file outside any package, the file and its siblings) and
Workbench itself.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
from pathlib import Path

# Workbench's own code is analysed like the task's project, not versioned as a library: its
# version string does not change while it is developed, and a custom task calling a Workbench
# helper reads global parameters through it.
FRAMEWORK = "workbench"
# The folder that holds the `workbench` package (this file is workbench/cache/code/locate.py).
FRAMEWORK_ROOT = Path(__file__).resolve().parents[3]


def find_module_file(name: str) -> Path | None:
    """The source file of a module, found like the import system would, importing nothing
    (importlib.util.find_spec would import the parent packages)."""
    parts = name.split(".")
    try:
        loaded = sys.modules.get(parts[0])
        spec = getattr(loaded, "__spec__", None) or importlib.util.find_spec(parts[0])
        for i in range(1, len(parts)):
            full = ".".join(parts[: i + 1])
            loaded = sys.modules.get(full)
            if getattr(loaded, "__spec__", None) is not None:
                spec = loaded.__spec__  # type: ignore[union-attr]
                continue
            locations = spec.submodule_search_locations if spec is not None else None
            if not locations:
                return None
            spec = importlib.machinery.PathFinder.find_spec(full, list(locations))
    except (ImportError, ValueError):
        return None
    origin = getattr(spec, "origin", None)
    return Path(origin) if origin and origin not in ("built-in", "frozen") else None


def project_of(path: Path, module: str) -> tuple[str, Project]:
    """The module's stable label and its project: its top-level package, or for a file that is
    not in a package (an `imports:` file, __main__), the file and its siblings."""
    parts = module.split(".")
    is_init = path.name == "__init__.py"
    if (
        all(p.isidentifier() for p in parts)
        and module != "__main__"
        and (len(parts) > 1 or is_init)
    ):
        depth = len(parts) if is_init else len(parts) - 1
        if depth < len(path.parents):
            root = path.parents[depth]
            expected = (
                root.joinpath(*parts, "__init__.py")
                if is_init
                else root.joinpath(*parts[:-1], parts[-1] + ".py")
            )
            if expected == path:
                return module, Project({FRAMEWORK: FRAMEWORK_ROOT, parts[0]: root}, None)
    # Its module name may be generated from its path (registry.import_task_module): the stem
    # keeps the label the same wherever the file lives.
    project = Project({FRAMEWORK: FRAMEWORK_ROOT}, path.parent)
    if module == "__main__":
        # A script's top-level statements drive it (run the workflow); a task defined in it
        # reaches Dask workers by value, without them.
        project.without_side_effects.add(path.stem)
    return path.stem, project


class Project:
    """Which modules are analysed (rather than versioned as libraries) and where they live."""

    def __init__(self, roots: dict[str, Path], standalone_dir: Path | None) -> None:
        self.roots = roots
        # An installation directory is not a project: everything in it would be a "sibling".
        if standalone_dir is not None and standalone_dir.name in ("site-packages", "dist-packages"):
            standalone_dir = None
        self.standalone_dir = standalone_dir
        self.without_side_effects: set[str] = set()
        self._located: dict[str, tuple[Path, bool] | None] = {}

    def root_of(self, top: str) -> Path | None:
        if top in self.roots:
            return self.roots[top]
        folder = self.standalone_dir
        if folder is not None and (
            (folder / f"{top}.py").is_file() or (folder / top / "__init__.py").is_file()
        ):
            self.roots[top] = folder
            return folder
        return None

    def contains(self, module: str) -> bool:
        return self.root_of(module.split(".")[0]) is not None

    def locate(self, module: str) -> tuple[Path, bool] | None:
        """(source file, is a package) of a project module; a namespace package is its folder."""
        if module in self._located:
            return self._located[module]
        found: tuple[Path, bool] | None = None
        parts = module.split(".")
        root = self.root_of(parts[0])
        if root is not None and all(p.isidentifier() or p == "__main__" for p in parts):
            base = root.joinpath(*parts)
            if (base / "__init__.py").is_file():
                found = (base / "__init__.py", True)
            elif base.with_name(base.name + ".py").is_file():
                found = (base.with_name(base.name + ".py"), False)
            elif base.is_dir() and len(parts) > 1:
                found = (base, True)
        if found is None and parts[0] == FRAMEWORK:
            # An odd installation of Workbench: ask the import system (already imported).
            path = find_module_file(module)
            if path is not None and path.suffix == ".py":
                found = (path, path.name == "__init__.py")
        self._located[module] = found
        return found
