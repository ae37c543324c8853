"""``KEY=VALUE`` arguments of the command line (``--model-args``, ``--method-args``): one parser.

Values are read as Python literals (:func:`ast.literal_eval`: ``3``, ``0.5``, ``True``, ``None``,
``[64, 128]``, ``(8, 8)``, ``'text'``), ``true`` / ``false`` / ``none`` in any case as ``True`` /
``False`` / ``None``, and anything else is kept as a string (``layer=layer4``, ``score=prob``).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Sequence
from typing import Any

from freqlens.errors import FreqlensError

__all__ = ["parse_key_values", "parse_value"]

_IDENTIFIER = re.compile(r"^[A-Za-z_]\w*$")
#: ``key`` or ``scope.key`` (``scope``: a method name such as ``rise``, ``gradcam++`` or ``smooth-grad``)
_SCOPED = re.compile(r"^([A-Za-z_][\w+\-]*\.)?[A-Za-z_]\w*$")
_WORDS = {"true": True, "false": False, "none": None}


def parse_value(text: str) -> Any:
    """``text`` as a Python literal, ``true``/``false``/``none`` (any case) as a bool or ``None``, else the
    stripped string itself."""
    text = text.strip()
    if text.lower() in _WORDS:
        return _WORDS[text.lower()]
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text


def parse_key_values(items: Sequence[str] | None, *, what: str = "argument", scoped: bool = False,
                     error: type[Exception] = FreqlensError) -> dict[str, Any]:
    """``{key: value}`` from ``["key=value", ...]`` with values read by :func:`parse_value`, in order.

    Args:
        items: The ``KEY=VALUE`` strings.
        what: How messages name one item (``"model argument"``).
        scoped: Also accept ``scope.key`` keys (kept whole as the dictionary key).
        error: The exception type raised.

    Returns:
        The parsed ``{key: value}`` dict, in the order of ``items`` (empty for ``None``).

    Raises:
        error: An item without ``=``, a key that is not an identifier (or ``scope.identifier`` when
            ``scoped``), or a key given twice.
    """
    pattern = _SCOPED if scoped else _IDENTIFIER
    form = "KEY=VALUE or METHOD.KEY=VALUE" if scoped else "KEY=VALUE (KEY a Python identifier)"
    parsed: dict[str, Any] = {}
    for item in items or ():
        key, sep, text = str(item).partition("=")
        key = key.strip()
        if not sep or not pattern.match(key):
            raise error(f"{what} {item!r} is not {form}")
        if key in parsed:
            raise error(f"{what} {key!r} is given twice")
        parsed[key] = parse_value(text)
    return parsed
