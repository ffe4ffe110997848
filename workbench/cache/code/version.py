"""The public entry point: `code_version` of a task function, a named function (TaskRef) or a
partial of one, memoised while the files it was derived from do not change, with a digest of
the code object for functions that have no source file."""

from __future__ import annotations

import functools
import hashlib
import inspect
import sys
import threading
import weakref
from collections.abc import Callable
from pathlib import Path
from types import CodeType, MappingProxyType
from typing import Any, cast

from workbench.cache.code import libraries as installed
from workbench.cache.code import memo
from workbench.cache.code.index import PARSED
from workbench.cache.code.locate import find_module_file, project_of
from workbench.cache.code.model import (
    FORMAT_VERSION,
    CodeVersion,
    CodeVersionError,
    NamedFunction,
    is_named_function,
    sha256,
)
from workbench.cache.code.resolve import Analysis

_ANALYSIS = threading.RLock()

# Code-object digests of functions without a source file, guarded by memo.lock.
_FALLBACKS: weakref.WeakKeyDictionary[CodeType, CodeVersion] = weakref.WeakKeyDictionary()


def code_version(target: Callable[..., Any] | NamedFunction) -> CodeVersion:
    """The code version of a task function, a named function such as a TaskRef (never
    imported) or a partial of one.

    Raises CodeVersionError when a TaskRef's module or attribute cannot be found in source, or
    a project module does not parse.
    """
    # One analysis at a time: CPython's ast module is not safe to drive from several threads
    # at once ("AST constructor recursion depth mismatch"), and runs plan keys in threads.
    with _ANALYSIS:
        return _code_version(target)


def _code_version(target: Callable[..., Any] | NamedFunction) -> CodeVersion:
    if is_named_function(target):  # first: a TaskRef is callable too
        return _named_version(target)
    if isinstance(target, functools.partial):
        inner = _code_version(target.func)
        bound = _stable_value((target.args, sorted(target.keywords.items())))
        digest = sha256(f"partial\0{inner.digest}\0{bound}")
        return CodeVersion(digest, inner.functions, inner.libraries, inner.globals_read)
    # Not a named function: a callable (TypeGuard does not narrow this branch).
    return _callable_version(cast("Callable[..., Any]", target))


def clear_cache() -> None:
    """Forget parsed modules, results and library versions (tests, or after a `pip install`)."""
    with memo.lock:
        PARSED.clear()
        memo.RESULTS.clear()
        _FALLBACKS.clear()
    installed.clear()


def _named_version(ref: NamedFunction) -> CodeVersion:
    # Located on every call (~10 us): sys.path may now lead to another copy of the module.
    path = find_module_file(ref.module)
    key = ("ref", ref.module, ref.attribute, str(path))
    cached = memo.memoised(key)
    if cached is not None:
        return cached
    if path is None or path.suffix != ".py" or not path.is_file():
        raise CodeVersionError(
            f"cannot find the Python source of module {ref.module!r} (task {ref.module}:"
            f"{ref.attribute}); install it, or check the module name"
        )
    label, project = project_of(path, ref.module)
    analysis = Analysis(project)
    if not analysis.resolve(label, ref.attribute, ()):
        raise CodeVersionError(
            f"module {ref.module!r} ({path}) defines no {ref.attribute!r}; check the "
            "task's attribute name"
        )
    result = analysis.result(f"{label}:{ref.attribute}")
    memo.remember(key, result, analysis.stamps())
    return result


def _callable_version(target: Callable[..., Any]) -> CodeVersion:
    obj: Any = inspect.unwrap(target)  # functools.wraps: the decorated def is the source
    if inspect.ismethod(obj):
        obj = obj.__func__
    if not (inspect.isfunction(obj) or inspect.isclass(obj)):
        if not callable(obj) or inspect.isbuiltin(obj):
            raise CodeVersionError(f"cannot derive a code version for {target!r}: no Python code")
        obj = type(obj)  # a callable instance: its class holds the code
    module = getattr(obj, "__module__", None) or ""
    qualname: str = obj.__qualname__
    code: CodeType | None = getattr(obj, "__code__", None)
    path = _source_path(obj, module, code)
    top = qualname.split(".")[0]
    if path is not None and top.isidentifier():
        key = ("fn", str(path), module, qualname)
        cached = memo.memoised(key)
        if cached is not None:
            return cached
        label, project = project_of(path, module)
        analysis = Analysis(project)
        if analysis.resolve(label, top, ()):
            result = analysis.result(f"{label}:{qualname}")
            memo.remember(key, result, analysis.stamps())
            return result
    if code is None:
        raise CodeVersionError(
            f"cannot find the source of {module}.{qualname}; define it in a .py file"
        )
    return _fallback_version(obj, code)


def _source_path(obj: Any, module: str, code: CodeType | None) -> Path | None:
    if code is not None:
        filename = code.co_filename
    else:
        filename = getattr(sys.modules.get(module), "__file__", None) or ""
    if not filename or filename.startswith("<"):
        return None  # exec, the REPL, a notebook cell
    path = Path(filename)
    path = path if path.is_absolute() else Path.cwd() / path
    return path if path.suffix == ".py" and path.is_file() else None


def _fallback_version(fn: Any, code: CodeType) -> CodeVersion:
    """No source: digest the code object. Deterministic for one Python version only."""
    with memo.lock:
        cached = _FALLBACKS.get(code)
    if cached is not None:
        return cached
    h = hashlib.sha256(f"code\0{FORMAT_VERSION}\0{sys.version}\0".encode())
    _digest_code(code, h)
    defaults = (getattr(fn, "__defaults__", None), getattr(fn, "__kwdefaults__", None))
    h.update(_stable_value(defaults).encode())
    name_digest = h.hexdigest()
    result = CodeVersion(
        digest=sha256(f"fallback\0{name_digest}"),
        functions=MappingProxyType({fn.__qualname__: name_digest}),
        libraries=MappingProxyType({}),
        globals_read=None,
    )
    with memo.lock:
        _FALLBACKS[code] = result
    return result


def _digest_code(code: CodeType, h: Any) -> None:
    h.update(code.co_code)
    h.update("\0".join((code.co_name, *code.co_names, *code.co_varnames)).encode())
    h.update("\0".join((*code.co_freevars, *code.co_cellvars)).encode())
    for const in code.co_consts:
        if isinstance(const, CodeType):
            _digest_code(const, h)
        else:
            h.update(_stable_value(const).encode())


def _stable_value(value: Any) -> str:
    """A representation that is the same in every process (sets sorted, functions by code)."""
    if value is None or isinstance(value, bool | int | float | complex | str | bytes):
        return f"{type(value).__name__}:{value!r}"
    if isinstance(value, tuple | list):
        return f"{type(value).__name__}[" + ",".join(map(_stable_value, value)) + "]"
    if isinstance(value, set | frozenset):
        return "set[" + ",".join(sorted(map(_stable_value, value))) + "]"
    if isinstance(value, dict):
        items = sorted(f"{_stable_value(k)}={_stable_value(v)}" for k, v in value.items())
        return "dict[" + ",".join(items) + "]"
    if (
        is_named_function(value)
        or isinstance(value, functools.partial)
        or inspect.isfunction(value)
    ):
        return f"code:{code_version(value).digest}"
    # Other objects by repr: an unstable repr costs cache hits, never a wrong hit.
    return f"{type(value).__module__}.{type(value).__qualname__}:{value!r}"
