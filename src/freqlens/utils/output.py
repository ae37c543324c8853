"""Pick the logits out of a model that returns a tuple, a dict or another structure.

:class:`SelectOutput` wraps such a model into one that returns the logits tensor, so every explainer,
metric and attack (which only see logits) works unchanged. A leaf module (torch and
:mod:`freqlens.errors` only) so that every layer may use it; the public name is
``freqlens.models.SelectOutput``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from torch import Tensor, nn

from freqlens.errors import ModelError

#: An output selector: a position (tuple/list outputs), a key (dict outputs, or an attribute name), or a
#: callable that maps the model's output to the logits.
OutputSelector = int | str | Callable[[Any], Tensor]


def _kind(value: object) -> str:
    """``'tuple of 2'``, ``'dict'``, ``'Tensor'``: how a model output is named in messages."""
    if isinstance(value, (tuple, list)):
        return f"{type(value).__name__} of {len(value)}"
    return type(value).__name__


def check_selector(output: object) -> OutputSelector:
    """``output`` when it is a valid selector (an int, a str or a callable); :class:`ModelError` otherwise."""
    if isinstance(output, bool) or not (isinstance(output, (int, str)) or callable(output)):
        raise ModelError(f"output must be an index (int), a key (str) or a callable, got {output!r}")
    return output  # type: ignore[return-value]


def select_output(value: Any, output: OutputSelector) -> Tensor:
    """The logits tensor selected by ``output`` from a model's output ``value``.

    Args:
        value: What the model returned.
        output: An index into a tuple/list, a key of a dict (or an attribute, e.g. of a dataclass), or a
            callable ``logits = output(value)``.

    Returns:
        The selected tensor.

    Raises:
        ModelError: The selection does not apply (out-of-range index, missing key, not a tensor), e.g.
            ``the model returned a tuple of 2; output 3 is out of range``.
    """
    if callable(output) and not isinstance(output, (int, str)):
        selected = output(value)
        where = f"the output selector {getattr(output, '__name__', type(output).__name__)}"
    elif isinstance(output, int):
        if not isinstance(value, (tuple, list)):
            raise ModelError(f"the model returned a {_kind(value)}, not a tuple or list; output {output} selects "
                             "by position (use a key for a dict)")
        if not -len(value) <= output < len(value):
            raise ModelError(f"the model returned a {_kind(value)}; output {output} is out of range")
        selected, where = value[output], f"item {output} of the model's {_kind(value)}"
    elif isinstance(value, Mapping):
        if output not in value:
            keys = ", ".join(repr(key) for key in list(value)[:20])
            raise ModelError(f"the model returned a {type(value).__name__} without key {output!r} (keys: {keys})")
        selected, where = value[output], f"key {output!r} of the model's {type(value).__name__}"
    elif not isinstance(value, (Tensor, tuple, list)) and hasattr(value, output):
        selected, where = getattr(value, output), f"attribute {output!r} of the model's {type(value).__name__}"
    else:
        raise ModelError(f"the model returned a {_kind(value)}, not a dict; output {output!r} selects by key "
                         "(use an index for a tuple)")
    if not isinstance(selected, Tensor):
        raise ModelError(f"{where} is a {_kind(selected)}, not a tensor of logits")
    return selected


class SelectOutput(nn.Module):
    """``select_output(model(x), output)``: a model that returns only the logits of ``model``.

    ``SelectOutput(net, 0)`` for a net returning ``(logits, features)``, ``SelectOutput(net, "logits")``
    for one returning ``{"logits": ...}``, ``SelectOutput(net, lambda out: out.logits)`` for anything
    else. The wrapped network stays a submodule (:attr:`model`), so layer searches (GradCAM's last
    ``nn.Conv2d``) and hooks still find its layers (their names start with ``model.``).

    Args:
        model: The network.
        output: The selector (see :func:`select_output`).

    Raises:
        TypeError: ``model`` is not an ``nn.Module``.
        ModelError: ``output`` is not an int, a str or a callable.
    """

    def __init__(self, model: nn.Module, output: OutputSelector) -> None:
        super().__init__()
        if not isinstance(model, nn.Module):
            raise TypeError(f"SelectOutput wraps a torch.nn.Module, got {type(model).__name__}")
        self.model = model
        self.output = check_selector(output)

    @property
    def in_channels(self) -> int | None:
        """The wrapped model's ``in_channels`` when it declares one."""
        value = getattr(self.model, "in_channels", None)
        return value if isinstance(value, int) else None

    def forward(self, x: Tensor) -> Tensor:
        return select_output(self.model(x), self.output)

    def extra_repr(self) -> str:
        output = self.output if isinstance(self.output, (int, str)) else getattr(self.output, "__name__", "callable")
        return f"output={output!r}"


def parse_output(text: str) -> int | str:
    """A command-line ``--output``: an integer index (``0``, ``-1``) or a key (anything else)."""
    text = text.strip()
    try:
        return int(text)
    except ValueError:
        return text


__all__ = ["OutputSelector", "SelectOutput", "check_selector", "parse_output", "select_output"]
