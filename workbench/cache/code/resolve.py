"""Following names from a task's definition to every in-project definition it reaches, module
by module, and assembling the result: the definitions' digests, the libraries the visited
modules import, and the global parameters they read."""

from __future__ import annotations

import builtins
import json
import sys
from types import MappingProxyType

from workbench.cache.code import libraries as installed
from workbench.cache.code.index import ParsedModule, parse
from workbench.cache.code.locate import FRAMEWORK, Project
from workbench.cache.code.memo import Stamp
from workbench.cache.code.model import FORMAT_VERSION, CodeVersion, sha256
from workbench.cache.code.refs import Import

_PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"
# Reached but not followed: `@task_type` registers a function and returns it unchanged, and
# following it would tie every custom task to the registry and to all built-in types' libraries.
_OPAQUE = frozenset({(f"{FRAMEWORK}.tasks.registry", "task_type")})
_BUILTINS = frozenset(dir(builtins))
# Set on every module by the import system, never defined in its code.
_MODULE_DUNDERS = frozenset(
    {"__builtins__", "__cached__", "__dict__", "__doc__", "__file__", "__loader__", "__name__"}
    | {"__package__", "__path__", "__spec__"}
)


class Analysis:
    """Follows the definitions a target reaches, module by module, breadth first."""

    def __init__(self, project: Project) -> None:
        self.project = project
        self.modules: dict[str, ParsedModule | None] = {}
        self._stamps: dict[str, Stamp] = {}
        self.functions: dict[str, str] = {}
        self.globals: set[str] | None = set()
        self._resolved: dict[tuple[str, str, tuple[str, ...]], bool] = {}
        self._expanded: set[tuple[str, str]] = set()
        self._units_done: set[tuple[str, int]] = set()
        self._queue: list[tuple[str, str]] = []

    def module(self, label: str) -> ParsedModule | None:
        if label in self.modules:
            return self.modules[label]
        located = self.project.locate(label)
        if located is None:
            self.modules[label] = None
            return None
        info, stamp = parse(label, *located)
        self.modules[label] = info
        if stamp is not None:
            self._stamps[stamp[0]] = stamp
        if info.side_effects and label not in self.project.without_side_effects:
            # They run whenever the module is imported.
            self._add(info, f"{label}:<module>", info.side_effects)
            for index in info.side_effects:
                self._visit_unit(info, index)
        return info

    def resolve(self, label: str, name: str, attrs: tuple[str, ...]) -> bool:
        """Reach what `name` (then `.attrs`) means in module `label`; False if unbound."""
        found = self._resolve(label, name, attrs)
        while self._queue:
            self._expand(*self._queue.pop())
        return found

    def _resolve(self, label: str, name: str, attrs: tuple[str, ...]) -> bool:
        key = (label, name, attrs)
        if key not in self._resolved:
            self._resolved[key] = True  # while in progress: an import cycle ends here
            self._resolved[key] = self._lookup(label, name, attrs)
        return self._resolved[key]

    def _lookup(self, label: str, name: str, attrs: tuple[str, ...]) -> bool:
        info = self.module(label)
        if info is None or name in _MODULE_DUNDERS:
            return False
        found = False
        if name in info.bindings:
            if (label, name) not in _OPAQUE:
                self._queue.append((label, name))
            found = True
        for target in info.imports.get(name, ()):
            self._follow(target, attrs)
            found = True
        if found:
            return True
        if info.is_package and self.project.locate(f"{label}.{name}") is not None:
            return self._resolve_module(f"{label}.{name}", attrs)
        lazy = info.lazy_exports.get(name)
        if lazy is not None and self.project.contains(lazy):
            return self._resolve(lazy, name, attrs)
        for star in info.star_imports:
            if self.project.contains(star):
                found = self._resolve(star, name, attrs) or found
        if not found and "__getattr__" in info.bindings:
            self._queue.append((label, "__getattr__"))  # computed at run time: keep it all
            found = True
        return found

    def _resolve_module(self, label: str, attrs: tuple[str, ...]) -> bool:
        if attrs:
            return self._resolve(label, attrs[0], attrs[1:])
        info = self.module(label)  # the module object itself is used: all of it may matter
        if info is None:
            return False
        for name in [*info.bindings, *info.imports]:
            self._resolve(label, name, ())
        return True

    def _follow(self, target: Import, attrs: tuple[str, ...]) -> None:
        if not self.project.contains(target.module):
            return  # a library: versioned by distribution, not analysed
        if target.attr is None:
            self._resolve_module(target.module, attrs)
        else:
            self._resolve(target.module, target.attr, attrs)

    def _expand(self, label: str, name: str) -> None:
        if (label, name) in self._expanded:
            return
        self._expanded.add((label, name))
        info = self.modules[label]
        assert info is not None
        indices = info.bindings[name]
        self._add(info, f"{label}:{name}", indices)
        for index in indices:
            self._visit_unit(info, index)

    def _add(self, info: ParsedModule, key: str, indices: list[int]) -> None:
        self.functions[key] = sha256("\0".join(info.dump(i) for i in indices))

    def _visit_unit(self, info: ParsedModule, index: int) -> None:
        if (info.label, index) in self._units_done:
            return
        self._units_done.add((info.label, index))
        read = info.globals_read(index)
        if read is None:
            self.globals = None
        elif self.globals is not None:
            self.globals |= read
        for ref in info.refs(index):
            if ref.via is not None:
                self._follow(ref.via, ref.attrs)
            elif ref.name in _BUILTINS and ref.name not in info.bindings | info.imports.keys():
                continue  # len, print, ValueError: not the module's, nothing to follow
            else:
                self._resolve(info.label, ref.name, ref.attrs)

    def stamps(self) -> tuple[Stamp, ...]:
        return tuple(sorted(self._stamps.values()))

    def result(self, target: str) -> CodeVersion:
        roots: set[str] = set()
        for info in self.modules.values():
            if info is not None:
                roots |= info.imported_roots
        libraries: dict[str, str] = {}
        for top in sorted(roots):
            if top in sys.stdlib_module_names or self.project.contains(top):
                continue
            libraries.update(installed.distributions(top))
        globals_read = None if self.globals is None else frozenset(self.globals)
        payload = {
            "format": FORMAT_VERSION,
            "python": _PYTHON,
            "target": target,
            "functions": self.functions,
            "libraries": libraries,
            "globals_read": None if globals_read is None else sorted(globals_read),
        }
        return CodeVersion(
            digest=sha256(json.dumps(payload, sort_keys=True, separators=(",", ":"))),
            functions=MappingProxyType(dict(sorted(self.functions.items()))),
            libraries=MappingProxyType(libraries),
            globals_read=globals_read,
        )
