"""The code version of a task: what its result depends on besides its inputs and parameters.

`code_version(fn_or_ref)` reads the task's source statically (`ast`, never an import, so the
orchestrator does not load pandas or scikit-learn to derive a cache key) and follows every
definition the task reaches inside its project: helpers in the same module, helpers imported
from other modules of the same top-level package, the module-level constants they read. Each
definition is digested from its syntax tree without docstrings, so comments, formatting,
docstrings and the package's location on disk do not change the version; any change to code
does. Third-party libraries imported by the visited modules count by their installed version.

Erring on the side of a new key:
- A definition counts as a whole: a class with all its methods, a function with all its body;
  statements a visited module runs at import (other than definitions) count too.
- A name bound in several places counts with all of them; a module used as an object (passed
  around, `getattr(module, name)`) counts with all its definitions.

Not seen (the version may stay the same although behaviour changed):
- Code reached only through computed names (`importlib.import_module(variable)`, strings), a
  method called on an object whose class the code never names (`ctx.resolve_path`), names used
  only in function annotations, and the body of Workbench's `@task_type` (it only registers).
- Global parameters read by code outside the analysed modules, a closure's cell values, a bound
  method's instance. Library versions are those of the process that computes the version, read
  once per process (`clear_cache` after upgrading a library in place).

Modules, lowest first: `model` (the result and its error), `memo` (file stamps, the results
memo), `locate` (module files and projects, without importing), `refs` (what one statement
refers to), `index` (a parsed module), `libraries` (installed versions), `resolve` (following
names across modules), `version` (the entry point).
"""

from __future__ import annotations

from workbench.cache.code.model import CodeVersion, CodeVersionError, NamedFunction
from workbench.cache.code.version import clear_cache, code_version

__all__ = ["CodeVersion", "CodeVersionError", "NamedFunction", "clear_cache", "code_version"]
