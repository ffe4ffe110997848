"""code_version: a task's code version changes with its code and libraries, not with cosmetics.

Most tests write a throwaway package into tmp_path and name its task with a TaskRef, which
code_version reads without importing it.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import importlib
import importlib.metadata
import json
import os
import pickle
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from workbench.cache.code import CodeVersion, CodeVersionError, clear_cache, code_version
from workbench.cache.code import libraries as library_versions
from workbench.cache.code import version as code_version_module
from workbench.tasks.base import TaskRef
from workbench.tasks.registry import _FILE_MODULES, import_task_module

REPO = Path(__file__).resolve().parents[3]
PKG = "cvpkg"

HELPERS = '''
"""Helpers of the throwaway package."""

import yaml

SCALE = 3


def double(x):
    """Twice x."""
    return x * 2 * SCALE // SCALE


def triple(x):
    return x * 3


def unrelated_helper(x):
    return x - 1


def read_seed(ctx):
    return ctx.global_parameters["seed"]


class Scaler:
    factor = 2

    def apply(self, x):
        return x * self.factor
'''

TASKS = '''
"""Tasks of the throwaway package."""

import json

from . import helpers
from .helpers import double

LIMIT = 10
OTHER = 5


def _local(x):
    # Clamp to the limit.
    return min(x, LIMIT)


def noise():
    return 42


def run(ctx):
    """Run it."""
    seed = ctx.global_parameters.get("seed", 0)
    noise = helpers.triple(seed)
    return double(_local(seed)) + noise


def unrelated(ctx):
    return OTHER + noise()
'''


class Package:
    """A package `cvpkg` written under a folder that is put on sys.path."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.edits = 0

    @property
    def folder(self) -> Path:
        return self.root / PKG

    def write(self, name: str, source: str) -> None:
        path = self.folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source).lstrip())
        # A distinct mtime per edit: same-size edits within one clock tick stay distinct.
        self.edits += 1
        stamp = time.time_ns() + self.edits * 1000
        os.utime(path, ns=(stamp, stamp))

    def edit(self, name: str, old: str, new: str) -> None:
        source = (self.folder / name).read_text()
        assert old in source, f"{old!r} not in {name}"
        self.write(name, source.replace(old, new))

    def version(self, module: str = "tasks", attribute: str = "run") -> CodeVersion:
        return code_version(TaskRef(f"{PKG}.{module}", attribute))


@pytest.fixture
def pkg(tmp_path: Path) -> Iterator[Package]:
    package = Package(tmp_path / "site")
    package.write("__init__.py", "")
    package.write("helpers.py", HELPERS)
    package.write("tasks.py", TASKS)
    sys.path.insert(0, str(package.root))
    importlib.invalidate_caches()
    try:
        yield package
    finally:
        sys.path.remove(str(package.root))
        for name in [m for m in sys.modules if m == PKG or m.startswith(f"{PKG}.")]:
            del sys.modules[name]
        importlib.invalidate_caches()


def changed(before: CodeVersion, after: CodeVersion) -> set[str]:
    """The definitions whose digests differ (or that appeared or went)."""
    keys = set(before.functions) | set(after.functions)
    return {k for k in keys if before.functions.get(k) != after.functions.get(k)}


# -- what the version covers --------------------------------------------------------------------
def test_the_version_lists_the_task_and_what_it_reaches(pkg: Package) -> None:
    version = pkg.version()
    assert set(version.functions) == {
        "cvpkg.tasks:run",
        "cvpkg.tasks:_local",
        "cvpkg.tasks:LIMIT",
        "cvpkg.helpers:double",
        "cvpkg.helpers:triple",
        "cvpkg.helpers:SCALE",
    }
    assert version.globals_read == frozenset({"seed"})
    assert len(version.digest) == 64
    assert pkg.version() == version
    assert pickle.loads(pickle.dumps(version)) == version  # it may travel to workers
    with pytest.raises(TypeError):
        version.functions["cvpkg.tasks:run"] = "x"  # type: ignore[index]


@pytest.mark.parametrize(
    ("file", "old", "new", "definition"),
    [
        ("tasks.py", "return double(_local(seed)) + noise", "return double(_local(seed))", "run"),
        ("tasks.py", "return min(x, LIMIT)", "return max(x, LIMIT)", "_local"),
        ("helpers.py", "x * 2 * SCALE", "x * 3 * SCALE", "double"),
        ("helpers.py", "return x * 3", "return x * 4", "triple"),
        ("tasks.py", "LIMIT = 10", "LIMIT = 11", "LIMIT"),
        ("helpers.py", "SCALE = 3", "SCALE = 4", "SCALE"),
    ],
)
def test_a_code_change_changes_the_version_and_names_the_definition(
    pkg: Package, file: str, old: str, new: str, definition: str
) -> None:
    before = pkg.version()
    pkg.edit(file, old, new)
    after = pkg.version()
    assert after.digest != before.digest
    assert changed(before, after) == {f"cvpkg.{file.removesuffix('.py')}:{definition}"}


def test_reading_another_global_changes_the_version(pkg: Package) -> None:
    before = pkg.version()
    pkg.edit(
        "tasks.py",
        'seed = ctx.global_parameters.get("seed", 0)',
        'seed = ctx.global_parameters.get("seed", 0) + ctx.global_parameters.get("offset", 0)',
    )
    after = pkg.version()
    assert after.digest != before.digest
    assert after.globals_read == frozenset({"seed", "offset"})


COSMETIC = '''
"""A new module docstring."""

import json

from . import helpers
from .helpers import (
    double,
)

LIMIT = (10)  # the limit
OTHER = 5



def _local(x):
    """Now with a docstring."""
    return min(
        x,
        LIMIT,
    )


def noise():
    return 42


def run(ctx):
    # A comment where the docstring was.
    seed = ctx.global_parameters.get('seed', 0)
    noise = helpers.triple(seed)

    return (double(_local(seed)) + noise)


def unrelated(ctx):
    return OTHER + noise()
'''


def test_comments_docstrings_and_formatting_do_not_change_the_version(pkg: Package) -> None:
    before = pkg.version()
    pkg.write("tasks.py", COSMETIC)
    pkg.edit("helpers.py", '    """Twice x."""\n', "")
    pkg.edit("helpers.py", "SCALE = 3", "SCALE = 3  # a comment\n\n")
    assert pkg.version() == before


def test_unrelated_code_does_not_change_the_version(pkg: Package) -> None:
    before = pkg.version()
    pkg.edit("tasks.py", "return OTHER + noise()", "return OTHER * 2")
    pkg.edit("tasks.py", "OTHER = 5", "OTHER = 6")
    pkg.edit("tasks.py", "return 42", "return 43")  # shadowed by run's local `noise`
    pkg.edit("helpers.py", "return x - 1", "return x - 2")
    pkg.edit("helpers.py", "factor = 2", "factor = 3")
    pkg.write("other.py", "def more():\n    return 1\n")
    assert pkg.version() == before
    # ... while the task that does use them changes.
    assert pkg.version("tasks", "unrelated") != before


def test_moving_the_package_keeps_the_version(pkg: Package, tmp_path: Path) -> None:
    before = pkg.version()
    sys.path.remove(str(pkg.root))
    moved = tmp_path / "somewhere" / "else"
    moved.parent.mkdir(parents=True)
    shutil.move(pkg.root, moved)
    pkg.root = moved
    sys.path.insert(0, str(moved))
    importlib.invalidate_caches()
    after = pkg.version()
    assert after == before


@pytest.mark.parametrize(
    ("imports", "call"),
    [
        ("from .helpers import triple", "triple(x)"),
        ("from . import helpers", "helpers.triple(x)"),
        ("from cvpkg import helpers as h", "h.triple(x)"),
        ("import cvpkg.helpers as h", "h.triple(x)"),
        ("import cvpkg.helpers", "cvpkg.helpers.triple(x)"),
        ("from .sub.deep import triple", "triple(x)"),  # re-exported through a package
        ("", "__import__('math') and _late(x)"),  # an import inside a function
    ],
)
def test_every_import_style_is_followed(pkg: Package, imports: str, call: str) -> None:
    pkg.write("sub/__init__.py", "")
    pkg.write("sub/deep.py", "from ..helpers import triple as triple\n")
    late = "def _late(x):\n    from .helpers import triple\n\n    return triple(x)\n"
    pkg.write("styles.py", f"{imports}\n\n\n{late}\n\ndef run(x):\n    return {call}\n")
    before = pkg.version("styles")
    assert "cvpkg.helpers:triple" in before.functions
    pkg.edit("helpers.py", "return x * 3", "return x * 5")
    assert changed(before, pkg.version("styles")) == {"cvpkg.helpers:triple"}


def test_classes_decorators_and_import_time_code_are_part_of_the_version(pkg: Package) -> None:
    pkg.write(
        "rich.py",
        """
        import functools

        from .helpers import Scaler

        CALLS = []
        CALLS.append("loaded")


        def logged(fn):
            @functools.wraps(fn)
            def wrapper(*args):
                return fn(*args)

            return wrapper


        @logged
        def run(ctx):
            return Scaler().apply(1)


        if __name__ == "__main__":
            print(run(None))
        """,
    )
    before = pkg.version("rich")
    assert {"cvpkg.rich:logged", "cvpkg.helpers:Scaler", "cvpkg.rich:<module>"} <= set(
        before.functions
    )
    pkg.edit("helpers.py", "factor = 2", "factor = 3")
    after = pkg.version("rich")
    assert changed(before, after) == {"cvpkg.helpers:Scaler"}
    pkg.edit("rich.py", "return fn(*args)", "return fn(*args) * 2")
    assert changed(after, pkg.version("rich")) == {"cvpkg.rich:logged"}
    # Import-time statements run with the task; a script's main block never does.
    before = pkg.version("rich")
    pkg.edit("rich.py", 'CALLS.append("loaded")', 'CALLS.append("loaded twice")')
    after = pkg.version("rich")
    assert changed(before, after) == {"cvpkg.rich:<module>"}
    pkg.edit("rich.py", "print(run(None))", "print(run(1))")
    assert pkg.version("rich") == after


def test_a_function_object_and_its_taskref_agree(pkg: Package) -> None:
    module = importlib.import_module("cvpkg.tasks")
    assert code_version(module.run) == pkg.version()
    assert code_version(module.unrelated) == pkg.version("tasks", "unrelated")


def test_a_wrapped_function_is_versioned_by_its_definition(pkg: Package) -> None:
    pkg.write(
        "wrapped.py",
        """
        import functools


        def traced(fn):
            @functools.wraps(fn)
            def wrapper(ctx):
                return fn(ctx)

            return wrapper


        @traced
        def run(ctx):
            return 1
        """,
    )
    module = importlib.import_module("cvpkg.wrapped")
    version = code_version(module.run)
    assert version == pkg.version("wrapped")
    assert {"cvpkg.wrapped:run", "cvpkg.wrapped:traced"} <= set(version.functions)


def test_nested_functions_methods_and_callable_objects(pkg: Package) -> None:
    pkg.write("star.py", "from .helpers import *\n")
    pkg.write(
        "shapes.py",
        """
        try:
            import cvpkg_optional_speedup as fast
        except ImportError:
            fast = None

        from .star import triple


        def make():
            def task(ctx):
                return triple(ctx)

            return task


        class Task:
            def __call__(self, ctx):
                return triple(ctx)

            def run(self, ctx):
                return fast
        """,
    )
    module = importlib.import_module("cvpkg.shapes")
    nested, instance = code_version(module.make()), code_version(module.Task())
    method = code_version(module.Task().run)
    assert {"cvpkg.shapes:make", "cvpkg.helpers:triple"} <= set(nested.functions)
    assert {"cvpkg.shapes:Task", "cvpkg.helpers:triple", "cvpkg.shapes:fast"} <= set(
        instance.functions
    )
    assert method.functions == instance.functions
    # A try/except import is a library like any other, and no import-time code.
    assert nested.libraries["cvpkg_optional_speedup"] == "not-installed"
    assert "cvpkg.shapes:<module>" not in nested.functions
    pkg.edit("helpers.py", "return x * 3", "return x * 4")
    assert changed(nested, code_version(module.make())) == {"cvpkg.helpers:triple"}


def test_a_partial_is_versioned_with_its_arguments(pkg: Package) -> None:
    run = importlib.import_module("cvpkg.tasks").run
    one, other = functools.partial(run, limit=1), functools.partial(run, limit=2)
    assert code_version(one) == code_version(functools.partial(run, limit=1))
    assert code_version(one).digest != code_version(other).digest
    assert code_version(one).functions == code_version(run).functions


def test_any_named_function_is_read_like_a_taskref_and_never_imported(pkg: Package) -> None:
    @dataclasses.dataclass(frozen=True)
    class Named:  # the shape code_version asks for: module and attribute, nothing else
        module: str
        attribute: str

    assert code_version(Named(f"{PKG}.tasks", "run")) == pkg.version()
    assert f"{PKG}.tasks" not in sys.modules
    task: Any = TaskRef(f"{PKG}.tasks")  # a partial binding a TaskRef: versioned by its code
    bound = functools.partial(task, limit=TaskRef(f"{PKG}.tasks", "unrelated"))
    assert code_version(bound).functions == pkg.version().functions
    other = functools.partial(task, limit=TaskRef(f"{PKG}.tasks", "run"))
    assert code_version(bound).digest != code_version(other).digest
    assert f"{PKG}.tasks" not in sys.modules


def test_the_cache_package_does_not_import_the_tasks_package() -> None:
    """workbench.cache sits below workbench.tasks in the design: it names TaskRef's shape only."""
    package = Path(code_version_module.__file__).parents[1]
    offenders = set()
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            offenders |= {f"{path.name}: {n}" for n in names if n.startswith("workbench.tasks")}
    assert offenders == set()


# -- libraries ----------------------------------------------------------------------------------
def test_libraries_imported_by_the_visited_modules_are_listed_with_their_version(
    pkg: Package,
) -> None:
    libraries = pkg.version().libraries
    assert libraries == {"PyYAML": importlib.metadata.version("PyYAML")}  # json: stdlib
    pkg.write("lonely.py", "import json\n\n\ndef run(ctx):\n    return json.dumps(1)\n")
    assert pkg.version("lonely").libraries == {}  # it does not reach helpers, nor yaml
    pkg.write(
        "missing.py",
        "def run(ctx):\n    import cvpkg_no_such_library_xyz\n\n    return 1\n",
    )
    assert pkg.version("missing").libraries == {"cvpkg_no_such_library_xyz": "not-installed"}


def test_a_library_version_is_part_of_the_digest(
    pkg: Package, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = pkg.version()
    clear_cache()
    monkeypatch.setattr(library_versions, "distributions", lambda top: (("PyYAML", "99.0"),))
    after = pkg.version()
    assert after.libraries == {"PyYAML": "99.0"}
    assert after.digest != before.digest
    assert after.functions == before.functions


# -- global parameters --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ('return ctx.global_parameters.get("a")', {"a"}),
        ('return ctx.global_parameters.get("a", 1) + ctx.global_parameters["b"]', {"a", "b"}),
        ('return "c" in ctx.global_parameters or "d" not in ctx.global_parameters', {"c", "d"}),
        ("return read_seed(ctx)", {"seed"}),  # through a helper in another module
        ("return 1", set()),
        ("return dict(ctx.global_parameters)", None),
        ("return [k for k in ctx.global_parameters]", None),
        ("return ctx.global_parameters.get(ctx.task_id)", None),
        ("return ctx.global_parameters[ctx.task_id]", None),
        ("return read_seed(ctx) + len(ctx.global_parameters)", None),
        ('return getattr(ctx, "global_parameters")', None),
        ("getter = ctx.global_parameters.get\n    return getter('a')", None),
    ],
)
def test_globals_read(pkg: Package, body: str, expected: set[str] | None) -> None:
    pkg.write(
        "globals.py",
        f"from .helpers import read_seed\n\n\ndef run(ctx):\n    {body}\n",
    )
    read = pkg.version("globals").globals_read
    assert read == (None if expected is None else frozenset(expected))


# -- the built-in tasks and standalone files ----------------------------------------------------
def test_the_builtin_preprocessing_task() -> None:
    version = code_version(TaskRef("workbench.tasks.preprocessing"))
    assert version.globals_read == frozenset({"random_state", "target_column"})
    assert {"pandas", "scikit-learn", "numpy"} <= set(version.libraries)
    assert "xgboost" not in version.libraries
    assert {
        "workbench.tasks.preprocessing:run",
        "workbench.tasks.preprocessing:find_target",
        "workbench.tasks.datasets:read_table",
        "workbench.tasks.params:PreprocessingParams",
    } <= set(version.functions)
    assert "workbench.tasks.preprocessing:run" in version.functions
    training = code_version(TaskRef("workbench.tasks.training"))
    assert training.globals_read == frozenset({"random_state"})
    assert "xgboost" in training.libraries
    assert "workbench.tasks.features:build_transformer" in training.functions


def test_a_builtin_is_memoised() -> None:
    ref = TaskRef("workbench.tasks.training")
    first = code_version(ref)
    started = time.perf_counter()
    for _ in range(100):
        assert code_version(ref) is first
    assert (time.perf_counter() - started) / 100 < 0.001


def test_the_example_custom_task_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(REPO / "examples"))
    version = code_version(TaskRef("custom_task", "rebalance"))
    assert {
        "custom_task:rebalance",
        "custom_task:RebalanceParams",
        "workbench.tasks.base:TaskResult",
        "workbench.tasks.data:PreparedData",
    } <= set(version.functions)
    # Registering with @task_type does not tie it to the registry and every built-in type.
    assert not any(key.startswith("workbench.tasks.registry:") for key in version.functions)
    assert {"pandas", "pydantic"} <= set(version.libraries)
    assert not {"xgboost", "scikit-learn", "workbench"} & set(version.libraries)
    assert version.globals_read == frozenset()


STANDALONE = '''
"""A task file loaded through a spec's `imports:`."""

COUNT = 3


def count(ctx):
    import my_helpers

    from workbench.tasks.training import resolve_seed

    return my_helpers.helper(COUNT) + resolve_seed(ctx, None)
'''


def test_a_standalone_file_and_its_siblings(tmp_path: Path) -> None:
    def load(folder: Path) -> Callable[..., Any]:
        import_task_module("my_task.py", folder)  # kept out of sys.modules, by value
        return _FILE_MODULES[(folder / "my_task.py").resolve()].count  # type: ignore[no-any-return]

    first = tmp_path / "one"
    first.mkdir()
    (first / "my_task.py").write_text(STANDALONE)
    (first / "my_helpers.py").write_text("def helper(n):\n    return n * 2\n")
    version = code_version(load(first))
    assert {
        "my_task:count",
        "my_task:COUNT",
        "my_helpers:helper",
        "workbench.tasks.training:resolve_seed",  # Workbench's own code is followed
    } <= set(version.functions)
    assert version.globals_read == frozenset({"random_state"})  # read by resolve_seed
    assert "workbench" not in version.libraries

    # The same files elsewhere: the same version (the generated module name holds the path).
    second = tmp_path / "two"
    shutil.copytree(first, second)
    assert code_version(load(second)) == version

    (second / "my_helpers.py").write_text("def helper(n):\n    return n * 3\n")
    assert changed(version, code_version(load(second))) == {"my_helpers:helper"}


# -- no source ----------------------------------------------------------------------------------
def test_a_function_without_source_is_versioned_by_its_code_object() -> None:
    def build(body: str) -> Callable[..., Any]:
        namespace: dict[str, Any] = {}
        exec(f"def task(ctx, n=2):\n    return {body}\n", namespace)
        return namespace["task"]  # type: ignore[no-any-return]

    version = code_version(build("{'a', 'b'} and n"))
    assert version == code_version(build("{'a', 'b'} and n"))
    assert version.digest != code_version(build("{'a', 'c'} and n")).digest
    assert list(version.functions) == ["task"]
    assert version.libraries == {}
    assert version.globals_read is None


def test_the_fallback_digest_depends_on_the_python_version(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    namespace: dict[str, Any] = {}
    exec("def task(ctx):\n    return 1\n", namespace)
    before = code_version(namespace["task"])
    clear_cache()
    monkeypatch.setattr(sys, "version", "3.99.0 (a future Python)")
    assert code_version(namespace["task"]).digest != before.digest


def test_clear_errors(pkg: Package) -> None:
    with pytest.raises(CodeVersionError, match=r"cvpkg\.nope"):
        code_version(TaskRef("cvpkg.nope"))
    with pytest.raises(CodeVersionError, match="defines no 'missing'"):
        code_version(TaskRef("cvpkg.tasks", "missing"))
    with pytest.raises(CodeVersionError, match="no Python code"):
        code_version(len)
    pkg.write("broken.py", "def run(ctx)\n    return 1\n")
    with pytest.raises(CodeVersionError, match=r"broken\.py"):
        pkg.version("broken")


# -- memo, threads, processes -------------------------------------------------------------------
def test_the_memo_sees_a_change_to_an_old_file(pkg: Package) -> None:
    old = time.time_ns() - 3600 * 10**9
    for path in pkg.folder.glob("*.py"):
        os.utime(path, ns=(old, old))
    before = pkg.version()
    assert pkg.version() is before  # memoised: its files are outside the racy window
    pkg.edit("helpers.py", "return x * 3", "return x * 4")  # same size, new mtime
    assert changed(before, pkg.version()) == {"cvpkg.helpers:triple"}


def test_concurrent_calls_agree(pkg: Package) -> None:
    clear_cache()
    results: list[str] = []

    def work() -> None:
        results.append(pkg.version().digest)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 8 and len(set(results)) == 1


def test_no_data_stack_is_imported_and_the_digest_is_the_same_in_another_process() -> None:
    probe = (
        "import json, sys\n"
        "from workbench.cache.code import code_version\n"
        "from workbench.tasks.base import TaskRef\n"
        "v = code_version(TaskRef('workbench.tasks.training'))\n"
        "heavy = [m for m in ('pandas', 'sklearn', 'xgboost', 'numpy') if m in sys.modules]\n"
        "ns = {}\n"
        f"exec({FALLBACK!r}, ns)\n"
        "fallback = code_version(ns['task']).digest\n"
        "print(json.dumps({'digest': v.digest, 'heavy': heavy, 'fallback': fallback}))\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}  # a different str hash than ours
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, env=env
    )
    answer = json.loads(out.stdout)
    assert answer["heavy"] == []
    assert answer["digest"] == code_version(TaskRef("workbench.tasks.training")).digest
    namespace: dict[str, Any] = {}
    exec(FALLBACK, namespace)
    assert answer["fallback"] == code_version(namespace["task"]).digest


# Set and frozenset constants iterate in a per-process order: the fallback must sort them.
FALLBACK = "def task(ctx):\n    return ctx in {'alpha', 'beta', 'gamma', 'delta'}\n"
