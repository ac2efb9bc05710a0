"""Check the names a source file uses from a binding module against that module's real API.

`api_dump.py` describes a real module (classes, members, signatures, property setters) as JSON;
`check_source` reads a source file with `ast` and finds every use of that module:

- dotted chains rooted at the module's import alias (`trt.BuilderFlag.INT8`, `cudart.cudaMalloc`);
- members of objects whose type is known: parameters, variables and `self.` attributes annotated
  with a class of the module (`builder: trt.Builder`, `list[trt.IExecutionContext]`, `X | None`),
  objects made by calling a class (`trt.Runtime(logger)`), and results of calls whose return type
  the signatures give (`builder.create_network(flags)` → `INetworkDefinition`), followed through
  chains and plain assignments;
- `getattr(obj, "NAME", default)` / `hasattr(obj, "NAME")` as guarded (optional) uses.

Each use is then checked: the member exists; an assignment targets a settable property; a call
targets something callable and its positional/keyword arguments fit one overload; an annotation
names a class; an annotated assignment agrees with the callee's declared return type.
Nothing is imported or executed from the checked source.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

CONTAINERS = {"list", "List", "Sequence", "Iterable", "tuple", "Tuple", "Iterator", "set"}
OPTIONAL = {"Optional"}


@dataclass(frozen=True)
class Ref:
    """What an expression is, as far as the API is concerned."""

    kind: str  # "module" | "class" | "instance" | "member" | "list" | "self"
    path: tuple[str, ...] = ()
    name: str = ""  # the member's name for kind "member"


MODULE = Ref("module")


@dataclass(frozen=True)
class Use:
    owner: Ref  # the module, a class object or an instance of a class
    name: str
    line: int
    action: str  # "get" | "call" | "set" | "type"
    positional: int = 0
    keywords: tuple[str, ...] = ()
    starred: bool = False
    optional: bool = False

    @property
    def label(self) -> str:
        return ".".join([*self.owner.path, self.name])


@dataclass
class Finding:
    use: Use | None
    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


@dataclass
class Report:
    uses: list[Use] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    missing_optional: list[Use] = field(default_factory=list)  # guarded, absent in this version

    def names(self) -> set[str]:
        """The distinct API names used ('Builder.create_network', 'BuilderFlag.INT8', ...)."""
        return {use.label for use in self.uses}


class Api:
    """Lookups over an `api_dump.py` description."""

    def __init__(self, dump: dict[str, Any]) -> None:
        self.dump = dump
        self.version = dump.get("version", "")
        self._prefixes = sorted(
            (f"{module}." for module in dump.get("class_modules", [])), key=len, reverse=True
        )

    def entry(self, path: tuple[str, ...]) -> dict[str, Any] | None:
        node: dict[str, Any] | None = {"kind": "module", "members": self.dump["names"]}
        for part in path:
            if node is None or "members" not in node:
                return None
            node = node["members"].get(part)
        return node

    def member(self, owner: Ref, name: str) -> dict[str, Any] | None:
        entry = self.entry(owner.path)
        if entry is None or "members" not in entry:
            return None
        found: dict[str, Any] | None = entry["members"].get(name)
        return found

    def class_path(self, text: str | None) -> tuple[str, ...] | None:
        """The path of the class a type string names ('tensorrt.IBuilderConfig',
        'nvonnxparser::IParserError', 'ILogger.Severity'), or None."""
        if not text:
            return None
        text = text.strip().strip("'\"")
        optional = re.fullmatch(r"(?:typing\.)?Optional\[(.+)\]", text)
        if optional:
            text = optional.group(1)
        text = re.sub(r"\s*\|\s*None$", "", text)
        if "::" in text:
            text = text.rsplit("::", 1)[1]
        for prefix in self._prefixes:
            if text.startswith(prefix):
                text = text[len(prefix) :]
                break
        if not re.fullmatch(r"[A-Za-z_][\w.]*", text):
            return None
        candidates = [text]
        if text.startswith("I") and "." not in text:
            candidates.append(text[1:])  # C++ interface name → Python class (IParserError)
        for candidate in candidates:
            path = tuple(candidate.split("."))
            entry = self.entry(path)
            if entry is not None and entry.get("kind") in ("class", "enum"):
                return path
        return None

    def is_subclass(self, child: tuple[str, ...], parent: tuple[str, ...]) -> bool:
        if child == parent:
            return True
        entry = self.entry(child)
        return entry is not None and ".".join(parent) in entry.get("bases", [])

    def returns(self, entry: dict[str, Any]) -> tuple[str, ...] | None:
        """The class a callable returns when all its overloads agree."""
        paths = {self.class_path(sig.get("returns")) for sig in entry.get("sigs", [])}
        if len(paths) == 1:
            return paths.pop()
        return None


def _aliases(tree: ast.AST, modules: set[str]) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in modules:
                    names.add(alias.asname or alias.name.split(".")[0])
        elif isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                if f"{node.module}.{alias.name}" in modules:
                    names.add(alias.asname or alias.name)
    return names


def _fits(sig: dict[str, Any], use: Use, drop_self: bool) -> bool:
    params = list(sig.get("params", []))
    if drop_self and params and params[0]["name"] == "self":
        params = params[1:]
    if use.starred:
        return True
    positional = [p for p in params if p["kind"] in ("POSITIONAL_ONLY", "POSITIONAL_OR_KEYWORD")]
    var_positional = any(p["kind"] == "VAR_POSITIONAL" for p in params)
    var_keyword = any(p["kind"] == "VAR_KEYWORD" for p in params)
    if use.positional > len(positional) and not var_positional:
        return False
    by_name = {p["name"]: p for p in params if p["kind"] != "POSITIONAL_ONLY"}
    for keyword in use.keywords:
        if keyword not in by_name and not var_keyword:
            return False
    covered = {p["name"] for p in positional[: use.positional]} | set(use.keywords)
    return all(
        p["default"] or p["name"] in covered
        for p in params
        if p["kind"] not in ("VAR_POSITIONAL", "VAR_KEYWORD")
    )


class _Scope:
    def __init__(self, parent: _Scope | None = None) -> None:
        self.names: dict[str, Ref] = dict(parent.names) if parent else {}


class Checker:
    def __init__(self, source: str, api: Api, modules: set[str]) -> None:
        self.tree = ast.parse(source)
        self.api = api
        self.aliases = _aliases(self.tree, modules)
        self.report = Report()
        self.class_attrs: dict[str, dict[str, Ref]] = {}
        self.returns: dict[str, Ref] = {}  # "func" or "Class.method" → declared return
        self._class: str | None = None

    # -- results ----------------------------------------------------------------------------

    def run(self) -> Report:
        self._declarations()
        for statement in self.tree.body:
            self._statement(statement, _Scope())
        self._verify()
        return self.report

    def _finding(self, line: int, message: str, use: Use | None = None) -> None:
        self.report.findings.append(Finding(use, line, message))

    def _record(self, use: Use) -> None:
        self.report.uses.append(use)

    # -- pass 1: declared types of attributes and return values -----------------------------

    def _declarations(self) -> None:
        for node in ast.walk(self.tree):
            if isinstance(node, ast.ClassDef):
                attrs = self.class_attrs.setdefault(node.name, {})
                for item in ast.walk(node):
                    if isinstance(item, ast.AnnAssign):
                        target = item.target
                        ref = self._annotation(item.annotation, record=False)
                        if ref is None:
                            continue
                        if isinstance(target, ast.Name) and item in node.body:
                            attrs[target.id] = ref
                        elif (
                            isinstance(target, ast.Attribute)
                            and isinstance(target.value, ast.Name)
                            and target.value.id == "self"
                        ):
                            attrs[target.attr] = ref
                for item in node.body:
                    if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef) and item.returns:
                        ref = self._annotation(item.returns, record=False)
                        if ref is not None:
                            self.returns[f"{node.name}.{item.name}"] = ref
        for node in self.tree.body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.returns:
                ref = self._annotation(node.returns, record=False)
                if ref is not None:
                    self.returns[node.name] = ref

    # -- annotations --------------------------------------------------------------------------

    def _annotation(self, node: ast.expr | None, record: bool = True) -> Ref | None:
        """The API type an annotation names (instances of a class, or a list of them)."""
        if node is None:
            return None
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            try:
                parsed = ast.parse(node.value, mode="eval").body
            except SyntaxError:
                return None
            return self._annotation(ast.copy_location(parsed, node), record)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
            left = self._annotation(node.left, record)
            right = self._annotation(node.right, record)
            return left or right
        if isinstance(node, ast.Subscript):
            base = node.value.id if isinstance(node.value, ast.Name) else None
            if isinstance(node.value, ast.Attribute):
                base = node.value.attr
            inner_node = node.slice
            if isinstance(inner_node, ast.Tuple) and inner_node.elts:
                inner_node = inner_node.elts[0]
            inner = self._annotation(inner_node, record)
            if base in OPTIONAL:
                return inner
            if base in CONTAINERS and inner is not None and inner.kind == "instance":
                return Ref("list", inner.path)
            return None
        chain = _chain(node)
        if chain is None or chain[0] not in self.aliases:
            return None
        owner = MODULE
        for part in chain[1:]:
            if record:
                self._record(Use(owner, part, node.lineno, "type"))
            entry = self.api.member(owner, part)
            if entry is None or entry.get("kind") not in ("class", "enum"):
                return None
            owner = Ref("class", (*owner.path, part))
        return Ref("instance", owner.path) if owner.path else None

    # -- statements -----------------------------------------------------------------------------

    def _statement(self, node: ast.stmt, scope: _Scope) -> None:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            self._function(node, scope)
        elif isinstance(node, ast.ClassDef):
            outer, self._class = self._class, node.name
            for expr in [*node.bases, *node.decorator_list]:
                self._expr(expr, scope)
            for item in node.body:
                self._statement(item, _Scope(scope))
            self._class = outer
        elif isinstance(node, ast.Assign):
            value = self._expr(node.value, scope)
            for target in node.targets:
                self._bind(target, value, scope, node.lineno)
        elif isinstance(node, ast.AnnAssign):
            declared = self._annotation(node.annotation)
            value = self._expr(node.value, scope) if node.value is not None else None
            if (
                declared is not None
                and value is not None
                and declared.kind == value.kind == "instance"
                and not self.api.is_subclass(value.path, declared.path)
            ):
                self._finding(
                    node.lineno,
                    f"annotated {'.'.join(declared.path)} but the call returns "
                    f"{'.'.join(value.path)}",
                )
            self._bind(node.target, declared or value, scope, node.lineno)
        elif isinstance(node, ast.AugAssign):
            self._expr(node.value, scope)
            if isinstance(node.target, ast.Attribute):
                owner = self._expr(node.target.value, scope)
                self._member_use(owner, node.target.attr, node.lineno, "get")
                self._member_use(owner, node.target.attr, node.lineno, "set")
            else:
                self._expr(node.target, scope)
        elif isinstance(node, ast.For | ast.AsyncFor):
            iterable = self._expr(node.iter, scope)
            self._bind(node.target, _item(iterable), scope, node.lineno)
            self._block([*node.body, *node.orelse], scope)
        elif isinstance(node, ast.With | ast.AsyncWith):
            for with_item in node.items:
                value = self._expr(with_item.context_expr, scope)
                if with_item.optional_vars is not None:
                    entered = value if value and value.kind == "instance" else None
                    self._bind(with_item.optional_vars, entered, scope, node.lineno)
            self._block(node.body, scope)
        elif isinstance(node, ast.If | ast.While):
            self._expr(node.test, scope)
            self._block([*node.body, *node.orelse], scope)
        elif isinstance(node, ast.Try):
            self._block(node.body, scope)
            for handler in node.handlers:
                if handler.type is not None:
                    self._expr(handler.type, scope)
                self._block(handler.body, scope)
            self._block([*node.orelse, *node.finalbody], scope)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            return
        else:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.expr):
                    self._expr(child, scope)
                elif isinstance(child, ast.stmt):
                    self._statement(child, scope)

    def _block(self, body: Iterable[ast.stmt], scope: _Scope) -> None:
        for statement in body:
            self._statement(statement, scope)

    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef, outer: _Scope) -> None:
        scope = _Scope(outer)
        for decorator in node.decorator_list:
            self._expr(decorator, outer)
        args = node.args
        all_args = [*args.posonlyargs, *args.args, *args.kwonlyargs]
        if args.vararg:
            all_args.append(args.vararg)
        if args.kwarg:
            all_args.append(args.kwarg)
        for default in [*args.defaults, *(d for d in args.kw_defaults if d is not None)]:
            self._expr(default, outer)
        for index, arg in enumerate(all_args):
            if index == 0 and self._class is not None and arg.arg == "self":
                scope.names["self"] = Ref("self", (), self._class)
                continue
            ref = self._annotation(arg.annotation)
            if ref is not None:
                scope.names[arg.arg] = ref
            else:
                scope.names.pop(arg.arg, None)
        self._annotation(node.returns)
        self._block(node.body, scope)

    def _bind(self, target: ast.expr, value: Ref | None, scope: _Scope, line: int) -> None:
        if isinstance(target, ast.Name):
            if value is not None and value.kind in ("instance", "list", "module", "class"):
                scope.names[target.id] = value
            else:
                scope.names.pop(target.id, None)
        elif isinstance(target, ast.Attribute):
            owner = self._expr(target.value, scope)
            if owner is not None and owner.kind == "self":
                attrs = self.class_attrs.setdefault(owner.name, {})
                if target.attr not in attrs and value is not None and value.kind != "member":
                    attrs[target.attr] = value
            else:
                self._member_use(owner, target.attr, line, "set")
        elif isinstance(target, ast.Tuple | ast.List):
            for element in target.elts:
                self._bind(element, None, scope, line)
        elif isinstance(target, ast.Subscript):
            self._expr(target.value, scope)
            self._expr(target.slice, scope)
        elif isinstance(target, ast.Starred):
            self._bind(target.value, None, scope, line)

    # -- expressions ----------------------------------------------------------------------------

    def _expr(self, node: ast.expr | None, scope: _Scope) -> Ref | None:
        if node is None:
            return None
        if isinstance(node, ast.Name):
            if node.id in self.aliases:
                return MODULE
            return scope.names.get(node.id)
        if isinstance(node, ast.Attribute):
            owner = self._expr(node.value, scope)
            if owner is not None and owner.kind == "self":
                return self._self_attr(owner.name, node.attr)
            action = "set" if isinstance(node.ctx, ast.Store) else "get"
            return self._member_use(owner, node.attr, node.lineno, action)
        if isinstance(node, ast.Call):
            return self._call(node, scope)
        if isinstance(node, ast.Subscript):
            value = self._expr(node.value, scope)
            self._expr(node.slice, scope)
            if value is not None and value.kind == "list":
                return Ref("instance", value.path)
            return None
        if isinstance(node, ast.Lambda):
            inner = _Scope(scope)
            for arg in [*node.args.args, *node.args.kwonlyargs]:
                inner.names.pop(arg.arg, None)
            for default in node.args.defaults:
                self._expr(default, scope)
            self._expr(node.body, inner)
            return None
        if isinstance(node, ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp):
            inner = _Scope(scope)
            for generator in node.generators:
                iterable = self._expr(generator.iter, inner)
                self._bind(generator.target, _item(iterable), inner, node.lineno)
                for condition in generator.ifs:
                    self._expr(condition, inner)
            if isinstance(node, ast.DictComp):
                self._expr(node.key, inner)
                self._expr(node.value, inner)
            else:
                self._expr(node.elt, inner)
            return None
        if isinstance(node, ast.NamedExpr):
            value = self._expr(node.value, scope)
            self._bind(node.target, value, scope, node.lineno)
            return value
        if isinstance(node, ast.IfExp):
            self._expr(node.test, scope)
            body = self._expr(node.body, scope)
            orelse = self._expr(node.orelse, scope)
            return body if body == orelse else body or orelse
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.expr):
                self._expr(child, scope)
        return None

    def _self_attr(self, class_name: str, attr: str) -> Ref | None:
        return self.class_attrs.get(class_name, {}).get(attr)

    def _member_use(
        self,
        owner: Ref | None,
        name: str,
        line: int,
        action: str,
        call: ast.Call | None = None,
        optional: bool = False,
    ) -> Ref | None:
        """Record `owner.name` when owner is part of the API; the type of the result."""
        if owner is None or owner.kind not in ("module", "class", "instance"):
            return None
        use = Use(owner, name, line, action, optional=optional)
        if call is not None:
            use = Use(
                owner,
                name,
                line,
                "call",
                positional=sum(not isinstance(a, ast.Starred) for a in call.args),
                keywords=tuple(k.arg for k in call.keywords if k.arg is not None),
                starred=any(isinstance(a, ast.Starred) for a in call.args)
                or any(k.arg is None for k in call.keywords),
                optional=optional,
            )
        self._record(use)
        entry = self.api.member(owner, name)
        if entry is None:
            return None
        kind = entry.get("kind")
        path = (*owner.path, name)
        if kind in ("class", "enum"):
            return Ref("class", path)
        if kind == "value":
            type_path = self.api.class_path(entry.get("type"))
            return Ref("instance", type_path) if type_path else None
        if kind in ("method", "function"):
            return Ref("member", owner.path, name)
        return None

    def _call(self, node: ast.Call, scope: _Scope) -> Ref | None:
        for arg in node.args:
            self._expr(arg.value if isinstance(arg, ast.Starred) else arg, scope)
        for keyword in node.keywords:
            self._expr(keyword.value, scope)
        func = node.func
        if (
            isinstance(func, ast.Name)
            and func.id in ("getattr", "hasattr")
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
            and isinstance(node.args[1].value, str)
        ):
            owner = self._expr(node.args[0], scope)
            optional = func.id == "hasattr" or len(node.args) == 3
            return self._member_use(owner, node.args[1].value, node.lineno, "get", None, optional)
        if isinstance(func, ast.Attribute):
            owner = self._expr(func.value, scope)
            if owner is not None and owner.kind == "self":
                declared = self.returns.get(f"{owner.name}.{func.attr}")
                return declared
            result = self._member_use(owner, func.attr, node.lineno, "call", node)
        elif isinstance(func, ast.Name):
            if func.id in self.returns:
                return self.returns[func.id]
            result = self._expr(func, scope)
        else:
            result = self._expr(func, scope)
        if result is None:
            return None
        if result.kind == "class":
            return Ref("instance", result.path)
        if result.kind == "member":
            entry = self.api.member(Ref("class", result.path), result.name)
            path = self.api.returns(entry) if entry else None
            return Ref("instance", path) if path else None
        return None

    # -- verification -------------------------------------------------------------------------

    def _verify(self) -> None:
        for use in self.report.uses:
            for problem in self.problems(use):
                self._finding(use.line, problem, use)

    def problems(self, use: Use) -> Iterator[str]:
        entry = self.api.member(use.owner, use.name)
        version = self.api.version
        if entry is None:
            if use.optional:
                self.report.missing_optional.append(use)
            else:
                yield f"{use.label} does not exist in {version}"
            return
        kind = entry.get("kind")
        if use.action == "type" and kind not in ("class", "enum"):
            yield f"{use.label} is a {kind}, not a class ({version})"
        if use.action == "set" and not (kind == "property" and entry.get("settable")):
            what = "a read-only property" if kind == "property" else f"a {kind}"
            yield f"{use.label} is {what}: it cannot be assigned ({version})"
        if use.action == "call":
            if kind == "property" or kind == "value":
                yield f"{use.label} is a {kind}, not callable ({version})"
                return
            sigs = entry.get("sigs", [])
            drop_self = use.owner.kind == "instance"
            if kind in ("class", "enum"):
                init = (entry.get("members") or {}).get("__init__") or {}
                sigs, drop_self = init.get("sigs", []), True
            if sigs and not any(_fits(sig, use, drop_self) for sig in sigs):
                shown = "; ".join(
                    ", ".join(p["name"] for p in sig["params"] if p["name"] != "self")
                    for sig in sigs
                )
                call = f"{use.positional} positional" + (
                    f" + {', '.join(use.keywords)}" if use.keywords else ""
                )
                yield f"{use.label} called with {call} arguments; it takes ({shown}) ({version})"


def _item(iterable: Ref | None) -> Ref | None:
    """The type of the items of a list-typed iterable."""
    return Ref("instance", iterable.path) if iterable and iterable.kind == "list" else None


def _chain(node: ast.expr) -> list[str] | None:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return parts[::-1]


def check_source(source: str, api: Api, modules: set[str]) -> Report:
    """Every use of `modules` (import names) in `source`, checked against `api`."""
    return Checker(source, api, modules).run()
