"""One docstring style (Google ``Args:`` / ``Returns:``) across the public API.

Scope: the modules under ``src/freqlens/{spectral,attacks,utils,metrics,attribution,analysis,data,
models,training,report}/`` (``models/zoo/`` included) and ``src/freqlens/interop.py``,
``src/freqlens/errors.py``, ``src/freqlens/distributed.py``; a module whose path (relative to
``src/freqlens``) has a part starting with ``_`` is private and skipped, ``__init__.py`` excepted. The
modules are read with :mod:`ast` (nothing is imported).

The rule, per module:

* **what is checked**: every public (no leading ``_``) module-level function, every public class, and
  every public method of a public class (properties included; ``__init__`` counts for its class,
  other dunders are not public);
* **parameters** counted: positional-only, positional and keyword-only ones, without ``self`` / ``cls``
  and without ``*args`` / ``**kwargs``;
* a callable that takes **2 or more** such parameters needs a docstring containing ``Args:``
  (one-parameter callables may keep a one-line docstring);
* a **class** is checked on its constructor: the parameters of its own ``__init__``, and its docstring
  *or* its ``__init__``'s docstring must contain ``Args:``. A ``@dataclass`` without its own
  ``__init__`` has its fields (annotated class attributes, ``ClassVar`` excluded) as parameters and may
  document them under ``Attributes:`` instead. A class with neither (it inherits its constructor) is
  not checked: its base is;
* **overrides without a docstring are exempt**: a method with no docstring at all whose class derives,
  through classes in scope, from a class defining the same method with ``Args:`` in its docstring (the
  documentation of the base applies). An override that has its own docstring must follow the rule.
"""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "src" / "freqlens"
FOLDERS = ("spectral", "attacks", "utils", "metrics", "attribution", "analysis", "data", "models", "training",
           "report")
FILES = ("interop.py", "errors.py", "distributed.py")


def _in_scope(path: Path) -> bool:
    parts = path.relative_to(ROOT).parts
    return not any(part.startswith("_") and part != "__init__.py" for part in parts)


def scoped_modules() -> list[Path]:
    """The ``.py`` files the rule applies to, sorted."""
    paths = [path for folder in FOLDERS for path in (ROOT / folder).rglob("*.py")]
    paths += [ROOT / name for name in FILES]
    return sorted(path for path in paths if path.is_file() and _in_scope(path))


def _is_public(name: str) -> bool:
    return not name.startswith("_")


def _parameters(function: ast.FunctionDef | ast.AsyncFunctionDef) -> list[str]:
    """Named parameters other than ``self`` / ``cls`` (``*args`` and ``**kwargs`` left out)."""
    arguments = function.args
    names = [arg.arg for arg in (*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs)]
    return [name for name in names if name not in ("self", "cls")]


def _decorator_name(decorator: ast.expr) -> str:
    target = decorator.func if isinstance(decorator, ast.Call) else decorator
    if isinstance(target, ast.Attribute):
        return target.attr
    return target.id if isinstance(target, ast.Name) else ""


def _base_names(cls: ast.ClassDef) -> list[str]:
    names = []
    for base in cls.bases:
        if isinstance(base, ast.Name):
            names.append(base.id)
        elif isinstance(base, ast.Attribute):
            names.append(base.attr)
    return names


def _methods(cls: ast.ClassDef) -> dict[str, ast.FunctionDef | ast.AsyncFunctionDef]:
    return {node.name: node for node in cls.body if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))}


def _dataclass_fields(cls: ast.ClassDef) -> list[str]:
    fields = []
    for node in cls.body:
        if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                and "ClassVar" not in ast.unparse(node.annotation)):
            fields.append(node.target.id)
    return fields


def _has_args(node: ast.AST, *sections: str) -> bool:
    doc = ast.get_docstring(node) or ""  # type: ignore[arg-type]
    return any(section in doc for section in (sections or ("Args:",)))


def class_index(trees: list[ast.Module]) -> dict[str, list[ast.ClassDef]]:
    """Every top-level class of ``trees`` by name (names may repeat across modules)."""
    index: dict[str, list[ast.ClassDef]] = {}
    for tree in trees:
        for node in tree.body:
            if isinstance(node, ast.ClassDef):
                index.setdefault(node.name, []).append(node)
    return index


def _documented_in_base(cls: ast.ClassDef, method: str, index: dict[str, list[ast.ClassDef]]) -> bool:
    """Whether a base of ``cls`` (followed through the classes of ``index``) defines ``method`` with ``Args:``."""
    seen: set[int] = set()
    pending = [base for name in _base_names(cls) for base in index.get(name, [])]
    while pending:
        base = pending.pop()
        if id(base) in seen:
            continue
        seen.add(id(base))
        own = _methods(base).get(method)
        if own is not None and _has_args(own):
            return True
        pending.extend(parent for name in _base_names(base) for parent in index.get(name, []))
    return False


def undocumented(tree: ast.Module, index: dict[str, list[ast.ClassDef]] | None = None) -> list[str]:
    """The public callables of ``tree`` that break the rule of the module docstring, as ``name (line)``."""
    index = class_index([tree]) if index is None else index
    problems = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and _is_public(node.name):
            if len(_parameters(node)) >= 2 and not _has_args(node):
                problems.append(f"{node.name} (line {node.lineno})")
        elif isinstance(node, ast.ClassDef) and _is_public(node.name):
            methods = _methods(node)
            init = methods.get("__init__")
            if init is not None:
                constructor, documented = _parameters(init), _has_args(node) or _has_args(init)
                where = f"{node.name}.__init__ (line {init.lineno})"
            elif any(_decorator_name(decorator) == "dataclass" for decorator in node.decorator_list):
                constructor, documented = _dataclass_fields(node), _has_args(node, "Args:", "Attributes:")
                where = f"{node.name} fields (line {node.lineno})"
            else:  # the constructor is inherited: checked on the base
                constructor, documented, where = [], True, ""
            if len(constructor) >= 2 and not documented:
                problems.append(where)
            for name, method in methods.items():
                if not _is_public(name) or len(_parameters(method)) < 2 or _has_args(method):
                    continue
                if ast.get_docstring(method) is None and _documented_in_base(node, name, index):
                    continue  # an override without a docstring: the base's documentation applies
                problems.append(f"{node.name}.{name} (line {method.lineno})")
    return problems


MODULES = scoped_modules()
TREES = {path: ast.parse(path.read_text(encoding="utf-8"), filename=str(path)) for path in MODULES}
INDEX = class_index(list(TREES.values()))


def test_scope_is_not_empty():
    """The parametrised test below covers the expected folders (so it cannot pass on no module)."""
    folders = {path.relative_to(ROOT).parts[0] for path in MODULES}
    assert set(FOLDERS) <= folders
    assert {ROOT / name for name in FILES} <= set(MODULES)
    assert len(MODULES) >= 80


@pytest.mark.parametrize("path", MODULES, ids=[str(path.relative_to(ROOT)) for path in MODULES])
def test_public_callables_document_their_arguments(path: Path):
    problems = undocumented(TREES[path], INDEX)
    assert not problems, (
        f"freqlens/{path.relative_to(ROOT)}: public callables with 2+ parameters and no 'Args:' section in "
        f"their docstring (Google style, see tests/test_docstyle.py): {', '.join(problems)}"
    )


def _check(source: str) -> list[str]:
    return undocumented(ast.parse(textwrap.dedent(source)))


def test_checker_flags_missing_args():
    """The checker itself: it flags what the rule forbids and accepts what it allows."""
    assert _check('''
        def f(a, b):
            """Sum."""
    ''') == ["f (line 2)"]
    assert _check('''
        def f(a, b):
            """Sum.

            Args:
                a: left.
                b: right.
            """
        def g(a):
            """One parameter: a summary is enough."""
        def _private(a, b):
            pass
        def h(self, *args, **kwargs):
            """Only variadic parameters."""
    ''') == []
    assert _check('''
        class Model:
            """No constructor arguments documented."""
            def __init__(self, a, b):
                pass
            def method(self, x, y):
                pass
    ''') == ["Model.__init__ (line 4)", "Model.method (line 6)"]
    assert _check('''
        from dataclasses import dataclass
        @dataclass
        class Point:
            """A point."""
            x: float
            y: float
    ''') == ["Point fields (line 4)"]
    assert _check('''
        class Base:
            """A base.

            Args:
                a: first.
                b: second.
            """
            def __init__(self, a, b):
                pass
            def run(self, x, y):
                """Run.

                Args:
                    x: first.
                    y: second.
                """
        class Child(Base):
            """Inherits the constructor."""
            def run(self, x, y):
                return x
        class Other(Base):
            def run(self, x, y):
                """An own docstring must document the arguments."""
    ''') == ["Other.run (line 23)"]
