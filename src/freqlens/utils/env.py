"""Settings read from environment variables: one parser, one message."""

from __future__ import annotations

import os

from freqlens.errors import FreqlensError

__all__ = ["env_positive_int"]


def env_positive_int(name: str, default: int | None = None, error: type[FreqlensError] = FreqlensError,
                     unit: str = "") -> int | None:
    """The positive integer in ``$name``, or ``default`` when it is unset or blank.

    Args:
        name: the environment variable, e.g. ``"FREQLENS_THREADS"``.
        default: returned when the variable is unset or only whitespace.
        error: the :class:`~freqlens.errors.FreqlensError` subclass raised for any other value.
        unit: shown in the message, e.g. ``"bytes"``.

    Raises:
        ``error``: the variable is set but is not an integer >= 1 (``"4.0"``, ``"0"``, ``"-2"``, ``"x"``).
    """
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise error(f"{name} must be a positive integer{f' ({unit})' if unit else ''}, got {text!r}")
    return value
