"""The layering of the package: which top-level parts of ``freqlens`` may import which.

Every ``.py`` file of ``src/freqlens`` is read with :mod:`ast`; its imports of ``freqlens.<top>``
(absolute and relative, at module level or inside functions, and ``importlib.import_module`` calls with
a constant name) are checked against :data:`ALLOWED`. A part may always import itself, and any part may
import the package root (``from freqlens import __version__``: :mod:`freqlens` itself imports only
``utils``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import freqlens

PACKAGE = Path(freqlens.__file__).resolve().parent
"""The ``src/freqlens`` folder."""

_BASE = {"errors", "utils"}
_EVERYTHING = None
"""Marks a part that may import any other."""

ALLOWED: dict[str, set[str] | None] = {
    "errors": set(),
    "utils": {"errors"},
    "spectral": _BASE,
    "data": _BASE,
    "models": _BASE,
    "attribution": _BASE | {"spectral"},
    "metrics": _BASE | {"spectral"},
    "attacks": _BASE | {"spectral"},
    # distributed: torchrun helpers (rank, world size, all-reduce, barrier) below the training loop
    "distributed": _BASE,
    "training": _BASE | {"spectral", "attacks", "data", "metrics", "models", "distributed"},
    "analysis": _BASE | {"spectral", "attribution", "metrics", "attacks", "models", "data"},
    "report": _BASE | {"spectral"},
    "interop": _BASE | {"attribution", "metrics"},
    "zoo": _BASE | {"models"},
    "studies": {"errors", "utils", "spectral", "data", "models", "attribution", "metrics", "attacks", "training",
                "distributed", "analysis", "report", "interop", "zoo"},
    "commands": {"errors", "utils", "spectral", "data", "models", "attribution", "metrics", "attacks", "training",
                 "distributed", "analysis", "report", "interop", "zoo", "studies"},
    "cli": _EVERYTHING,
    "__init__": _EVERYTHING,
    "__main__": _EVERYTHING,
}
"""Top-level part -> the parts it may import besides itself (``None``: any)."""

ROOT = "__init__"
"""The part name of the package root (:mod:`freqlens` itself)."""

def _module_name(path: Path) -> list[str]:
    """The dotted name of the module at ``path`` as parts (``["freqlens", "spectral", "dct"]``)."""
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ["freqlens", *parts]


def _top(path: Path) -> str:
    """The top-level part of the file at ``path`` (``spectral``, ``cli``, ``__init__``...)."""
    first = path.relative_to(PACKAGE).parts[0]
    return first.removesuffix(".py")


def _target_top(dotted: list[str], names: list[str]) -> list[str]:
    """The parts named by an import of module ``dotted`` (``names``: what a ``from`` import takes of it)."""
    if not dotted or dotted[0] != "freqlens":
        return []
    if len(dotted) > 1:
        return [dotted[1]]
    # ``from freqlens import X``: X is a part (``distributed``) or a name of the package root (``__version__``)
    tops = []
    for name in names:
        is_part = (PACKAGE / name).is_dir() or (PACKAGE / f"{name}.py").is_file()
        tops.append(name if is_part else ROOT)
    return tops or [ROOT]


def _imports(path: Path) -> list[tuple[int, str, str]]:
    """``(line, part, import text)`` of every import of a part of ``freqlens`` in the file at ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module[:-1]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                found += [(node.lineno, top, f"import {alias.name}") for top in _target_top(alias.name.split("."), [])]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                dotted = base + (node.module.split(".") if node.module else [])
            else:
                dotted = node.module.split(".") if node.module else []
            names = [alias.name for alias in node.names]
            text = f"from {'.' * node.level}{node.module or ''} import {', '.join(names)}"
            found += [(node.lineno, top, text) for top in _target_top(dotted, names)]
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr == "import_module" and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)):
            name = node.args[0].value
            found += [(node.lineno, top, f"import_module({name!r})") for top in _target_top(name.split("."), [])]
    return found


def _violations() -> list[tuple[str, str, str]]:
    """``(file, imported part, "file:line: message")`` of every import against :data:`ALLOWED`."""
    violations = []
    for path in sorted(PACKAGE.rglob("*.py")):
        top = _top(path)
        assert top in ALLOWED, f"{path}: part {top!r} has no rule in ALLOWED"
        allowed = ALLOWED[top]
        if allowed is _EVERYTHING:
            continue
        for line, target, text in _imports(path):
            if target not in (top, ROOT) and target not in allowed:
                file = path.relative_to(PACKAGE.parent).as_posix()
                violations.append((file, target, f"{file}:{line}: {top} imports {target} ({text})"))
    return violations


def test_every_part_imports_only_the_parts_below_it():
    violations = [message for _, _, message in _violations()]
    assert not violations, "layering violations:\n" + "\n".join(violations)


def test_the_checker_sees_relative_and_nested_imports():
    """Relative imports resolve to their part; imports inside functions count."""
    imports = _imports(PACKAGE / "attribution" / "__init__.py")
    assert any(top == "attribution" and text.startswith("from .") for _, top, text in imports)
    nested = [top for _, top, _ in _imports(PACKAGE / "commands" / "evaluate.py")]
    assert "analysis" in nested  # imported inside functions only


def _private_imports(text: str) -> list[tuple[int, str]]:
    """``(line, "from X import _name")`` for every private name a module's source ``text`` imports from
    another freqlens module (relative imports, or absolute ones of ``freqlens``)."""
    found = []
    for node in ast.walk(ast.parse(text)):
        if not isinstance(node, ast.ImportFrom) or (node.level == 0 and not (node.module or "").startswith("freqlens")):
            continue
        found += [(node.lineno, f"from {'.' * node.level}{node.module or ''} import {alias.name}")
                  for alias in node.names if alias.name.startswith("_") and not alias.name.startswith("__")]
    return found


def test_no_private_helper_is_imported_across_modules():
    """A helper two modules share is public (one definition, named and documented), not ``_private``."""
    found = [f"{path.relative_to(PACKAGE.parent).as_posix()}:{line}: {text}"
             for path in sorted(PACKAGE.rglob("*.py")) for line, text in _private_imports(path.read_text("utf-8"))]
    assert not found, "private names imported across modules:\n" + "\n".join(found)


def test_the_private_import_checker_sees_one():
    """The checker is not blind: a relative import of ``_helper`` is reported, a public or foreign one is not."""
    text = "from .filtering import _helper\nfrom freqlens.utils.tensors import check_images\nfrom os import _exit\n"
    assert _private_imports(text) == [(1, "from .filtering import _helper")]
