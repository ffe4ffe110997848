"""What one top-level statement refers to: the names it loads from module scope, found by
Python's scoping rules so that locals are not taken for globals, and the global parameters it
reads (`ctx.global_parameters`)."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Import:
    module: str  # absolute dotted name
    attr: str | None  # None: the name is bound to the module itself


@dataclass(frozen=True)
class Ref:
    """A name a definition loads from outside itself, with the attributes read off it."""

    name: str
    attrs: tuple[str, ...]
    via: Import | None = None  # bound by an import inside a function


def absolute(module: str | None, level: int, package: str | None) -> str | None:
    if level == 0:
        return module
    parts = package.split(".") if package else []
    if level > len(parts):
        return None  # a relative import outside any package: it fails at run time anyway
    base = ".".join(parts[: len(parts) - level + 1])
    return f"{base}.{module}" if module else base


def const_str(node: ast.AST | None) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return None


class Scope:
    __slots__ = ("bound", "declared_global", "imports", "kind", "parent")

    def __init__(self, kind: str, parent: Scope | None) -> None:
        self.kind = kind  # "module", "class" or "function" (lambdas and comprehensions too)
        self.parent = parent
        self.bound: set[str] = set()
        self.declared_global: set[str] = set()
        self.imports: dict[str, Import] = {}


class RefCollector(ast.NodeVisitor):
    """The names a top-level statement loads from module scope (or through imports made inside
    its functions), following Python's scoping rules so that locals are not taken for globals.
    Annotations of function signatures are skipped (they do not run the code); annotations in
    class bodies are kept (dataclasses and pydantic models build fields from them)."""

    def __init__(self, package: str | None) -> None:
        self.package = package
        self.scope = Scope("module", None)
        self.loads: list[tuple[str, tuple[str, ...], Scope]] = []

    def refs(self) -> list[Ref]:
        found: dict[Ref, None] = {}
        for name, attrs, scope in self.loads:
            ref = self._resolve(name, attrs, scope)
            if ref is not None:
                found[ref] = None
        return list(found)

    @staticmethod
    def _resolve(name: str, attrs: tuple[str, ...], scope: Scope) -> Ref | None:
        current: Scope | None = scope
        while current is not None and current.kind != "module":
            # A class body's names are not visible in the functions nested in it.
            if current.kind != "class" or current is scope:
                if name in current.declared_global:
                    break
                if name in current.bound:
                    via = current.imports.get(name)
                    return None if via is None else Ref(name, attrs, via)
            current = current.parent
        return Ref(name, attrs)

    def _enter(self, kind: str) -> None:
        self.scope = Scope(kind, self.scope)

    def _leave(self) -> None:
        assert self.scope.parent is not None
        self.scope = self.scope.parent

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Load):
            self.loads.append((node.id, (), self.scope))
        else:
            self.scope.bound.add(node.id)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        attrs: list[str] = []
        value: ast.expr = node
        while isinstance(value, ast.Attribute):
            attrs.append(value.attr)
            value = value.value
        if isinstance(value, ast.Name) and isinstance(value.ctx, ast.Load):
            self.loads.append((value.id, tuple(reversed(attrs)), self.scope))
        else:
            self.visit(value)

    def visit_Global(self, node: ast.Global) -> None:
        self.scope.declared_global.update(node.names)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            top = alias.name.split(".")[0]
            self._bind_import(
                alias.asname or top, Import(alias.name if alias.asname else top, None)
            )

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = absolute(node.module, node.level, self.package)
        for alias in node.names:
            if alias.name != "*" and base is not None:
                self._bind_import(alias.asname or alias.name, Import(base, alias.name))

    def _bind_import(self, name: str, target: Import) -> None:
        self.scope.bound.add(name)
        if self.scope.kind != "module":  # module-level imports are the module's bindings
            self.scope.imports[name] = target

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        for decorator in node.decorator_list:
            self.visit(decorator)
        self._function(node.args, node.body)
        self.scope.bound.add(node.name)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Lambda(self, node: ast.Lambda) -> None:
        self._function(node.args, [node.body])

    def _function(self, args: ast.arguments, body: list[ast.stmt] | list[ast.expr]) -> None:
        for default in [*args.defaults, *args.kw_defaults]:
            if default is not None:
                self.visit(default)
        self._enter("function")
        for arg in [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]:
            if arg is not None:
                self.scope.bound.add(arg.arg)
        for node in body:
            self.visit(node)
        self._leave()

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        for expr in [*node.decorator_list, *node.bases, *(k.value for k in node.keywords)]:
            self.visit(expr)
        self._enter("class")
        for stmt in node.body:
            self.visit(stmt)
        self._leave()
        self.scope.bound.add(node.name)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        if self.scope.kind != "function":
            self.visit(node.annotation)
        self.visit(node.target)
        if node.value is not None:
            self.visit(node.value)

    def _comprehension(self, node: Any, results: list[ast.expr]) -> None:
        generators: list[ast.comprehension] = node.generators
        self.visit(generators[0].iter)  # the first iterable is evaluated outside
        self._enter("function")
        for i, generator in enumerate(generators):
            if i:
                self.visit(generator.iter)
            self.visit(generator.target)
            for condition in generator.ifs:
                self.visit(condition)
        for result in results:
            self.visit(result)
        self._leave()

    def visit_ListComp(self, node: ast.ListComp) -> None:
        self._comprehension(node, [node.elt])

    def visit_SetComp(self, node: ast.SetComp) -> None:
        self._comprehension(node, [node.elt])

    def visit_GeneratorExp(self, node: ast.GeneratorExp) -> None:
        self._comprehension(node, [node.elt])

    def visit_DictComp(self, node: ast.DictComp) -> None:
        self._comprehension(node, [node.key, node.value])

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        if node.name:
            self.scope.bound.add(node.name)
        self.generic_visit(node)

    def visit_MatchAs(self, node: ast.MatchAs) -> None:
        if node.name:
            self.scope.bound.add(node.name)
        self.generic_visit(node)

    def visit_MatchStar(self, node: ast.MatchStar) -> None:
        if node.name:
            self.scope.bound.add(node.name)

    def visit_MatchMapping(self, node: ast.MatchMapping) -> None:
        if node.rest:
            self.scope.bound.add(node.rest)
        self.generic_visit(node)


def global_parameters_read(unit: ast.stmt) -> frozenset[str] | None:
    """Keys a statement reads from `<x>.global_parameters`: `.get("k", ...)`, `["k"]` and
    `"k" in`. Any other use (a computed key, iteration, passing the mapping on) is None."""
    uses = [
        node
        for node in ast.walk(unit)
        if (isinstance(node, ast.Attribute) and node.attr == "global_parameters")
        or const_str(node) == "global_parameters"  # getattr(ctx, "global_parameters")
    ]
    if not uses:
        return frozenset()
    parents = {id(c): p for p in ast.walk(unit) for c in ast.iter_child_nodes(p)}
    names: set[str] = set()
    for node in uses:
        if isinstance(node, ast.Attribute) and not isinstance(node.ctx, ast.Load):
            continue  # assigned, as TaskContext.__init__ does: not a read
        parent = parents.get(id(node))
        key: str | None = None
        if isinstance(parent, ast.Attribute) and parent.attr == "get":
            call = parents.get(id(parent))
            if (
                isinstance(call, ast.Call)
                and call.func is parent
                and 1 <= len(call.args) <= 2
                and not call.keywords
                and not any(isinstance(a, ast.Starred) for a in call.args)
            ):
                key = const_str(call.args[0])
        elif isinstance(parent, ast.Subscript) and parent.value is node:
            key = const_str(parent.slice) if isinstance(parent.ctx, ast.Load) else None
        elif isinstance(parent, ast.Compare):
            for i, comparator in enumerate(parent.comparators):
                if comparator is node and isinstance(parent.ops[i], ast.In | ast.NotIn):
                    key = const_str(parent.left if i == 0 else parent.comparators[i - 1])
        if key is None:
            return None
        names.add(key)
    return frozenset(names)
