"""Describe the public API of an importable module as JSON (run as a script, in a subprocess).

    python api_dump.py <module> <out.json> [<distribution>]

For every public name: its kind (class, enum, function, method, property, value), the members of
classes (recursively, a few levels), the signatures of callables (from `inspect.signature`, or
parsed from the `name(arg: type = default) -> ret` lines pybind11 writes into docstrings) and the
type of plain values. Nothing is called except introspection; the module only has to import.
Standard library only: it runs under whatever interpreter and PYTHONPATH the caller sets up.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import inspect
import json
import re
import sys
from typing import Any

MAX_DEPTH = 3
KEEP_DUNDERS = {"__init__", "__version__", "__call__", "__len__", "__getitem__", "__iter__"}


def split_top_level(text: str) -> list[str]:
    """Split on commas outside (), [], {} and <> (pybind11 writes defaults as <Enum.X: 0>)."""
    parts, depth, current = [], 0, []
    for char in text:
        if char in "([{<":
            depth += 1
        elif char in ")]}>":
            depth -= 1
        if char == "," and depth == 0:
            parts.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    tail = "".join(current).strip()
    if tail:
        parts.append(tail)
    return parts


def parse_params(text: str) -> list[dict[str, Any]]:
    params = []
    for part in split_top_level(text):
        if part == "*":
            continue
        if part.startswith("**"):
            name = part[2:].split(":")[0]
            params.append({"name": name, "kind": "VAR_KEYWORD", "default": True})
        elif part.startswith("*"):
            name = part[1:].split(":")[0]
            params.append({"name": name, "kind": "VAR_POSITIONAL", "default": True})
        else:
            name = re.split(r"[:=]", part, maxsplit=1)[0].strip()
            params.append({"name": name, "kind": "POSITIONAL_OR_KEYWORD", "default": "=" in part})
    return params


def docstring_signatures(name: str, doc: str) -> list[dict[str, Any]]:
    """The `name(...) -> ret` lines of a pybind11 docstring (one per overload)."""
    pattern = re.compile(rf"^\s*(?:\d+\.\s+)?{re.escape(name)}\((.*)\)\s*->\s*(.+?)\s*$")
    sigs = []
    for line in doc.splitlines():
        match = pattern.match(line)
        if match and match.group(1) != "*args, **kwargs":
            sigs.append({"params": parse_params(match.group(1)), "returns": match.group(2)})
    return sigs


def signatures(name: str, obj: Any) -> list[dict[str, Any]]:
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):
        return docstring_signatures(name, getattr(obj, "__doc__", None) or "")
    params = [
        {
            "name": p.name,
            "kind": p.kind.name,
            "default": p.default is not inspect.Parameter.empty,
        }
        for p in signature.parameters.values()
    ]
    returns = signature.return_annotation
    text = None if returns is inspect.Signature.empty else str(returns)
    if len(params) == 2 and params[0]["kind"] == "VAR_POSITIONAL":  # a generic (*args, **kwargs)
        from_doc = docstring_signatures(name, getattr(obj, "__doc__", None) or "")
        if from_doc:
            return from_doc
    return [{"params": params, "returns": text}]


def is_enum(cls: type) -> bool:
    return hasattr(cls, "__members__") and isinstance(getattr(cls, "__members__", None), dict)


def describe_class(cls: type, depth: int) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "kind": "enum" if is_enum(cls) else "class",
        "qualname": cls.__qualname__,
        "module": cls.__module__,
        "bases": [base.__qualname__ for base in cls.__mro__[1:] if base is not object],
        "members": {},
    }
    if entry["kind"] == "enum":
        entry["values"] = list(cls.__members__)
    if depth >= MAX_DEPTH:
        return entry
    for name in sorted(dir(cls)):
        if name.startswith("__") and name not in KEEP_DUNDERS:
            continue
        try:
            raw = inspect.getattr_static(cls, name)
        except AttributeError:
            continue
        entry["members"][name] = describe_member(cls, name, raw, depth + 1)
    return entry


def describe_member(owner: Any, name: str, raw: Any, depth: int) -> dict[str, Any]:
    if isinstance(raw, property):
        doc = (raw.__doc__ or "").strip().splitlines()
        return {"kind": "property", "settable": raw.fset is not None, "doc": doc[:1]}
    if type(raw).__name__ == "getset_descriptor" or type(raw).__name__ == "member_descriptor":
        return {"kind": "property", "settable": True, "doc": []}
    if isinstance(raw, staticmethod | classmethod):
        return {"kind": "function", "sigs": signatures(name, getattr(owner, name))}
    if inspect.isclass(raw):
        return describe_class(raw, depth)
    value = getattr(owner, name, raw)
    if _is_routine(raw):
        kind = "method" if inspect.isclass(owner) else "function"
        return {"kind": kind, "sigs": signatures(name, value)}
    return describe_value(value)


def describe_value(value: Any) -> dict[str, Any]:
    kind = type(value)
    entry = {"kind": "value", "type": kind.__qualname__, "type_module": kind.__module__}
    if is_enum(kind) or isinstance(value, int):
        with contextlib.suppress(TypeError, ValueError):
            entry["int"] = int(value)
    return entry


def _is_routine(raw: Any) -> bool:
    return inspect.isroutine(raw) or type(raw).__name__ in (
        "instancemethod",
        "cython_function_or_method",
        "builtin_function_or_method",
        "method_descriptor",
        "wrapper_descriptor",
        "function",
    )


def dump(module_name: str, distribution: str | None = None) -> dict[str, Any]:
    module = importlib.import_module(module_name)
    version = str(getattr(module, "__version__", ""))
    if distribution:  # the installed wheel's own version (some modules carry none)
        version = importlib.metadata.version(distribution)
    names: dict[str, Any] = {}
    for name in sorted(dir(module)):
        if name.startswith("__") and name not in KEEP_DUNDERS:
            continue
        raw = getattr(module, name)
        if inspect.ismodule(raw):
            continue
        if inspect.isclass(raw):
            names[name] = describe_class(raw, 1)
        elif _is_routine(raw):
            names[name] = {"kind": "function", "sigs": signatures(name, raw)}
        else:
            names[name] = describe_value(raw)
    class_modules = sorted(
        {entry["module"] for entry in names.values() if entry["kind"] in ("class", "enum")}
    )
    return {
        "module": module_name,
        "version": version,
        "python": sys.version.split()[0],
        "class_modules": class_modules,
        "names": names,
    }


def main() -> None:
    module_name, out = sys.argv[1], sys.argv[2]
    distribution = sys.argv[3] if len(sys.argv) > 3 else None
    with open(out, "w") as handle:
        json.dump(dump(module_name, distribution), handle, indent=0, sort_keys=True)


if __name__ == "__main__":
    main()
