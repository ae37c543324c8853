"""Parameter lists written once: a callable that forwards ``**options`` to another one shows that one's
parameters as its own.

A variant (``SobolAttribution`` of ``CellMaskExplainer``, ``VarGrad`` of ``NoiseTunnel``,
``LowFrequencyPGD`` of ``PGD``, ``FORGrad`` of :func:`~freqlens.attribution.forgrad_filter`) declares only
the parameters it adds or whose default it changes, and passes the rest on with ``**options``.
:func:`forwards_options` then gives it the complete signature, so that :func:`inspect.signature`,
``help()``, the generated ``repr`` of explainers and the method registry (which reads settings from
constructor signatures) all see one list, whose names, defaults and annotations are written in one place.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

__all__ = ["bound_arguments", "forwards_options"]

_Function = TypeVar("_Function", bound=Callable[..., Any])
_NAMED = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


def forwards_options(target: Callable[..., Any], *, skip: Iterable[str] = ()) -> Callable[[_Function], _Function]:
    """Decorator: the decorated callable's ``**options`` are the remaining named parameters of ``target``.

    The decorated callable's ``__signature__`` becomes: its own parameters up to its ``**options``
    (positional ones first, its keyword-only ones last), with ``target``'s other named parameters in
    between as keyword-only ones (``**options`` can only receive keywords), with their defaults and
    annotations; ``target``'s own ``**kwargs``, if any, closes the list. A decorated callable that also
    takes ``*args`` (e.g. ``def vii(*args, **options): return vii_per_image(*args, **options).mean()``)
    shows in its place ``target``'s positional parameters without a default, positional as in ``target``.
    Calls are not changed: the decorated callable still receives ``*args`` / ``**options`` and passes them
    to ``target`` itself.

    Args:
        target: the callable the options are forwarded to (for a constructor: the base class's
            ``__init__``). Its signature is read through :func:`inspect.signature`, so a target that is
            itself decorated contributes its complete list.
        skip: names of ``target``'s parameters the decorated callable supplies itself (e.g. ``"maps"``
            when a class wraps a function of the maps); it passes them by keyword, so that a caller who
            gives one too gets the ``TypeError`` of a repeated keyword.

    Returns:
        The decorator; it returns the same callable, with ``__signature__`` set.

    Raises:
        TypeError: the decorated callable has no ``**options`` parameter.
    """
    skipped = set(skip) | {"self"}

    def decorate(function: _Function) -> _Function:
        own_signature = inspect.signature(function)
        own = list(own_signature.parameters.values())
        if not own or own[-1].kind is not inspect.Parameter.VAR_KEYWORD:
            raise TypeError(f"{function.__qualname__} has no **options to forward to {target.__qualname__}")
        variadic = any(parameter.kind is inspect.Parameter.VAR_POSITIONAL for parameter in own)
        own = [parameter for parameter in own[:-1] if parameter.kind is not inspect.Parameter.VAR_POSITIONAL]
        names = {parameter.name for parameter in own} | skipped
        forwarded = list(inspect.signature(target).parameters.values())
        positional = [parameter for parameter in forwarded if variadic and parameter.name not in names
                      and parameter.kind in _POSITIONAL and parameter.default is inspect.Parameter.empty]
        names |= {parameter.name for parameter in positional}
        inherited = [parameter.replace(kind=inspect.Parameter.KEYWORD_ONLY) for parameter in forwarded
                     if parameter.name not in names and parameter.kind in _NAMED]
        keyword_only = [parameter for parameter in own if parameter.kind is inspect.Parameter.KEYWORD_ONLY]
        leading = [parameter for parameter in own if parameter.kind is not inspect.Parameter.KEYWORD_ONLY]
        leading += positional
        closing = [parameter for parameter in forwarded if parameter.kind is inspect.Parameter.VAR_KEYWORD]
        function.__signature__ = own_signature.replace(  # type: ignore[attr-defined]
            parameters=[*leading, *inherited, *keyword_only, *closing])
        return function

    return decorate


def bound_arguments(target: Callable[..., Any], *args: Any, **kwargs: Any) -> dict[str, Any]:
    """The arguments ``target(*args, **kwargs)`` would receive, by name, with ``target``'s defaults for the
    ones not given: how a variant reads the value of a setting it forwards (e.g. to store it).

    Args:
        target: the callable.
        *args: positional arguments for ``target``.
        **kwargs: keyword arguments for ``target``.

    Returns:
        Parameter name -> value, in ``target``'s order.

    Raises:
        TypeError: an argument ``target`` does not take, or a required one missing.
    """
    bound = inspect.signature(target).bind(*args, **kwargs)
    bound.apply_defaults()
    return dict(bound.arguments)
