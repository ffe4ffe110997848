"""What the package hands out: the `CodeVersion` result, its error, and the named-function
shape (a reference to a task function by module and attribute, never imported)."""

from __future__ import annotations

import functools
import hashlib
import inspect
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Protocol, TypeGuard

from workbench.errors import WorkbenchError

# Part of every digest: bump it when the analysis changes what a digest covers.
FORMAT_VERSION = 1


class CodeVersionError(WorkbenchError):
    """A task's code cannot be located or parsed, so no code version can be derived."""


@dataclass(frozen=True)
class CodeVersion:
    """What a task's result depends on in code. `digest` covers every other field."""

    digest: str
    # "module:name" -> digest, for the task's definition and every in-project one it reaches.
    functions: Mapping[str, str] = field(hash=False)
    # distribution -> version, for third-party libraries imported by the visited modules.
    libraries: Mapping[str, str] = field(hash=False)
    # Names read from ctx.global_parameters; None when it cannot be told statically.
    globals_read: frozenset[str] | None

    def __reduce__(self) -> tuple[Any, ...]:
        # The mappings are read-only views (results are shared by the memo), which do not
        # pickle: ship plain dicts and rebuild the views.
        fields = (self.digest, dict(self.functions), dict(self.libraries), self.globals_read)
        return (_rebuild, fields)


def _rebuild(
    digest: str,
    functions: dict[str, str],
    libraries: dict[str, str],
    globals_read: frozenset[str] | None,
) -> CodeVersion:
    return CodeVersion(
        digest, MappingProxyType(functions), MappingProxyType(libraries), globals_read
    )


class NamedFunction(Protocol):
    """A function named by module and attribute, read from source without importing it
    (Workbench's TaskRef)."""

    @property
    def module(self) -> str: ...

    @property
    def attribute(self) -> str: ...


def is_named_function(obj: object) -> TypeGuard[NamedFunction]:
    """Whether `obj` names a function (str `module` and `attribute`) rather than being one.
    Checked before treating an object as a callable: a TaskRef is callable too."""
    if inspect.isclass(obj) or inspect.isroutine(obj) or isinstance(obj, functools.partial):
        return False
    return isinstance(getattr(obj, "module", None), str) and isinstance(
        getattr(obj, "attribute", None), str
    )


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
