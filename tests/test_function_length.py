"""Functions short enough to read at once: no function of ``src/freqlens`` has more than 80 lines of code.

A function's length is the span of its ``def`` (decorators excluded) to its last line, **minus its
docstring**: Google-style ``Args:`` sections document, they are not logic to hold in one's head. Nested
functions count inside their parent as well as on their own.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import freqlens

PACKAGE = Path(freqlens.__file__).resolve().parent
LIMIT = 80

#: Functions allowed to be longer, with the reason (empty: none is).
EXCEPTIONS: dict[str, str] = {}


def code_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Lines of ``node`` from its ``def`` to its end, without the docstring."""
    total = node.end_lineno - node.lineno + 1
    first = node.body[0]
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
        total -= first.end_lineno - first.lineno + 1
    return total


def long_functions(source: str, limit: int = LIMIT) -> list[tuple[str, int, int]]:
    """``(name, line, code lines)`` of every function in ``source`` longer than ``limit`` code lines."""
    return [(node.name, node.lineno, code_lines(node)) for node in ast.walk(ast.parse(source))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and code_lines(node) > limit]


MODULES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=[p.relative_to(PACKAGE).as_posix() for p in MODULES])
def test_no_function_is_longer_than_80_lines_of_code(path):
    module = path.relative_to(PACKAGE).as_posix()
    found = [f"{module}:{line} {name}: {lines} lines" for name, line, lines in long_functions(path.read_text("utf-8"))
             if f"{module}:{name}" not in EXCEPTIONS]
    assert not found, "functions over 80 lines of code (split them along their steps):\n" + "\n".join(found)


def test_the_length_check_counts_code_not_docstrings():
    body = "\n".join(f"    x{i} = {i}" for i in range(81))
    long_code = f"def f():\n    '''Doc.'''\n{body}\n"
    documented = "def g():\n    '''" + "\n".join("doc" for _ in range(100)) + "'''\n    return 1\n"
    assert long_functions(long_code) == [("f", 1, 82)]
    assert long_functions(documented) == []
