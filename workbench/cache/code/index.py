"""A parsed module: its top-level statements ("units"), which names each one binds, its
imports, the statements it runs at import, and the libraries it imports. Docstrings are
stripped before anything is digested."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from workbench.cache.code import memo
from workbench.cache.code.memo import Stamp
from workbench.cache.code.model import CodeVersionError
from workbench.cache.code.refs import (
    Import,
    Ref,
    RefCollector,
    absolute,
    const_str,
    global_parameters_read,
)

_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
_BODY_FIELDS = ("body", "orelse", "finalbody", "handlers", "cases")
_COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)
# (path, label) -> the module parsed from the file with that stamp; guarded by memo.lock.
PARSED: dict[tuple[str, str], tuple[Stamp, ParsedModule]] = {}


class ParsedModule:
    """A parsed module: its top-level statements ("units") and what binds each name.

    Shared between threads through the parse cache; its lazily filled dicts may be filled twice
    by two threads at once, with the same values, which is harmless.
    """

    def __init__(
        self, label: str, path: Path, is_package: bool, tree: ast.Module | None, source: bytes
    ) -> None:
        self.label = label
        self.path = path
        self.is_package = is_package
        self.package = label if is_package else label.rpartition(".")[0] or None
        self.units: list[ast.stmt] = tree.body if tree is not None else []
        self.bindings: dict[str, list[int]] = {}
        self.imports: dict[str, list[Import]] = {}
        self.side_effects: list[int] = []  # statements run at import that bind no name
        self.star_imports: list[str] = []
        self.lazy_exports: dict[str, str] = {}  # PEP 562: name -> module, read by __getattr__
        self.imported_roots: set[str] = set()
        self._source_lines = source.splitlines() if b"global_parameters" in source else None
        self._refs: dict[int, list[Ref]] = {}
        self._dumps: dict[int, str] = {}
        self._globals: dict[int, frozenset[str] | None] = {}
        for index, unit in enumerate(self.units):
            self._index(index, unit)
        if tree is not None:
            self.imported_roots = _imported_roots(tree, source)
        if "__getattr__" in self.bindings:
            self._index_lazy_exports()

    def _index(self, index: int, unit: ast.stmt) -> None:
        for stmt in _module_level(unit):
            if isinstance(stmt, ast.Import):
                for alias in stmt.names:
                    top = alias.name.split(".")[0]
                    target = Import(alias.name if alias.asname else top, None)
                    self.imports.setdefault(alias.asname or top, []).append(target)
            elif isinstance(stmt, ast.ImportFrom):
                base = absolute(stmt.module, stmt.level, self.package)
                if base is None:
                    continue
                for alias in stmt.names:
                    if alias.name == "*":
                        self.star_imports.append(base)
                    else:
                        target = Import(base, alias.name)
                        self.imports.setdefault(alias.asname or alias.name, []).append(target)
            else:
                for name in _bound_names(stmt):
                    units = self.bindings.setdefault(name, [])
                    if not units or units[-1] != index:
                        units.append(index)
        if _has_effect(unit):
            self.side_effects.append(index)

    def _index_lazy_exports(self) -> None:
        for unit in self.units:
            value = unit.value if isinstance(unit, ast.Assign | ast.AnnAssign) else None
            if isinstance(value, ast.Dict):
                for key, module in zip(value.keys, value.values, strict=True):
                    k, m = const_str(key), const_str(module)
                    if k is not None and m is not None:
                        self.lazy_exports.setdefault(k, m)

    def dump(self, index: int) -> str:
        if index not in self._dumps:
            unit = self.units[index]
            self._dumps[index] = ast.dump(unit, annotate_fields=False, include_attributes=False)
        return self._dumps[index]

    def refs(self, index: int) -> list[Ref]:
        if index not in self._refs:
            collector = RefCollector(self.package)
            collector.visit(self.units[index])
            self._refs[index] = collector.refs()
        return self._refs[index]

    def globals_read(self, index: int) -> frozenset[str] | None:
        if index not in self._globals:
            unit, lines = self.units[index], self._source_lines
            if lines is not None:  # walking a tree is slow: look at its text first
                start = min([unit.lineno, *(d.lineno for d in getattr(unit, "decorator_list", ()))])
                if b"global_parameters" not in b"\n".join(lines[start - 1 : unit.end_lineno]):
                    lines = None
            self._globals[index] = frozenset() if lines is None else global_parameters_read(unit)
        return self._globals[index]


def parse(label: str, path: Path, is_package: bool) -> tuple[ParsedModule, Stamp | None]:
    if path.is_dir():  # a namespace package: no code of its own
        return ParsedModule(label, path, True, None, b""), None
    stamp = memo.stamp(path)
    key = (str(path), label)
    with memo.lock:
        entry = PARSED.get(key)
    if entry is not None and entry[0] == stamp:
        return entry[1], stamp
    try:
        source = path.read_bytes()
        tree = ast.parse(source, filename=str(path))
    except (OSError, SyntaxError, ValueError) as exc:
        raise CodeVersionError(f"cannot read the task code in {path}: {exc}") from exc
    _strip_docstrings(tree)
    module = ParsedModule(label, path, is_package, tree, source)
    if stamp is not None and not memo.racy(stamp):
        with memo.lock:
            PARSED[key] = (stamp, module)
    return module, stamp


def _statements(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """Every statement, nested ones included (statements never nest inside expressions, so
    this is much cheaper than ast.walk)."""
    for stmt in body:
        yield stmt
        for name in _BODY_FIELDS:
            for child in getattr(stmt, name, ()):
                if isinstance(child, ast.stmt):
                    yield from _statements([child])
                else:  # an except handler or a match case
                    yield from _statements(child.body)


def _strip_docstrings(tree: ast.Module) -> None:
    for node in [tree, *_statements(tree.body)]:
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            first = node.body[0] if node.body else None
            if isinstance(first, ast.Expr) and const_str(first.value) is not None:
                del node.body[0]


def _module_level(stmt: ast.stmt) -> Iterator[ast.stmt]:
    """The statement and those nested in its blocks (if/try/for/with), not in defs."""
    yield stmt
    if isinstance(stmt, _SCOPES):
        return
    for name in _BODY_FIELDS:
        for child in getattr(stmt, name, ()):
            if isinstance(child, ast.stmt):
                yield from _module_level(child)
            else:  # an except handler or a match case: their own bodies
                for nested in getattr(child, "body", ()):
                    yield from _module_level(nested)


def _bound_names(stmt: ast.stmt) -> Iterator[str]:
    """Names a statement binds in its own scope (not in nested defs, lambdas, comprehensions)."""
    if isinstance(stmt, _SCOPES):
        yield stmt.name
        return
    todo: list[ast.AST] = []
    for name, value in ast.iter_fields(stmt):
        if name not in _BODY_FIELDS:
            todo.extend(v for v in (value if isinstance(value, list) else [value]))
    for handler in getattr(stmt, "handlers", ()):
        if handler.name:
            yield handler.name
    while todo:
        node = todo.pop()
        if not isinstance(node, ast.AST) or isinstance(node, (ast.Lambda, *_COMPREHENSIONS)):
            continue
        if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
            yield node.id
        elif isinstance(node, ast.MatchAs | ast.MatchStar) and node.name:
            yield node.name
        elif isinstance(node, ast.MatchMapping) and node.rest:
            yield node.rest
        todo.extend(ast.iter_child_nodes(node))


def _has_effect(unit: ast.stmt) -> bool:
    """Whether a top-level statement does more than import, define and assign names: calls
    (`np.random.seed(0)`, `REGISTRY.append(f)`), item or attribute assignments and the like.
    Such statements run whenever the module is imported, so they are part of its version."""
    if _is_main(unit):
        return False
    for stmt in _module_level(unit):
        if isinstance(stmt, (ast.Import, ast.ImportFrom, ast.Pass, ast.Global, *_SCOPES)):
            continue
        if any(hasattr(stmt, name) for name in _BODY_FIELDS):
            continue  # a block: its statements are looked at one by one
        targets = (
            stmt.targets
            if isinstance(stmt, ast.Assign)
            else [stmt.target]
            if isinstance(stmt, ast.AnnAssign | ast.AugAssign)
            else None
        )
        if targets is None or not all(map(_plain_target, targets)):
            return True
    return False


def _plain_target(target: ast.expr) -> bool:
    if isinstance(target, ast.Tuple | ast.List):
        return all(map(_plain_target, target.elts))
    if isinstance(target, ast.Starred):
        return _plain_target(target.value)
    return isinstance(target, ast.Name)


def _is_main(stmt: ast.stmt) -> bool:
    """`if __name__ == "__main__":` runs only as a script, never when a task runs."""
    test = stmt.test if isinstance(stmt, ast.If) else None
    return (
        isinstance(test, ast.Compare)
        and isinstance(test.left, ast.Name)
        and test.left.id == "__name__"
        and len(test.comparators) == 1
        and const_str(test.comparators[0]) == "__main__"
    )


def _imported_roots(tree: ast.Module, source: bytes) -> set[str]:
    """Top-level names of every absolute import, at module level or inside functions, and of
    `importlib.import_module("name")` / `__import__("name")` with a literal name."""
    roots: set[str] = set()
    for node in _statements(tree.body):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    if b"import_module" not in source and b"__import__" not in source:
        return roots
    for call in ast.walk(tree):
        if isinstance(call, ast.Call) and call.args:
            func = call.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            module = const_str(call.args[0])
            if name in ("import_module", "__import__") and module and not module.startswith("."):
                roots.add(module.split(".")[0])
    return roots
