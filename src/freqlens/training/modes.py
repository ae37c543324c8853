"""Training modes: what the optimiser step sees.

A training mode turns the clean batch ``x`` (``B×C×H×W`` float in [0, 1]) with labels ``y`` into the
batch the optimiser step is taken on: ``x`` itself for standard training, ``x`` multiplied by a
noise carrier for noise-modulation training (seed 000), adversarial examples for PGD adversarial
training (Madry et al. 2018). Every mode implements :class:`TrainingMode`::

    mode.name                                    # "standard", "noise-modulation", ...
    mode.transform(model, x, y, generator=None)  # -> x_train, same shape as x
    mode.describe()                              # optional: plain dict stored in checkpoints

Contract with :func:`freqlens.training.train`:

- ``transform`` is called with the model in train mode and gradients enabled. A mode may run the
  model (e.g. an attack), switching it to eval mode with :func:`evaluating`; the loop puts the model
  back into train mode and clears parameter gradients after ``transform`` returns, so a mode need not
  clean up.
- All randomness must come from ``generator`` (a ``torch.Generator`` on the batch's device, seeded by
  the loop from ``(seed, epoch)``); then training is reproducible and resumable bit for bit.
- The result is treated as data (detached); it must have the shape of ``x``.
"""

from __future__ import annotations

import math
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor, nn

from freqlens.utils.tensors import eval_mode


@runtime_checkable
class TrainingMode(Protocol):
    """The protocol of training modes (see the module docstring)."""

    name: str

    def transform(
        self, model: nn.Module, x: Tensor, y: Tensor, generator: torch.Generator | None = None
    ) -> Tensor:
        """``x_train`` (``B×C×H×W``, the batch the optimiser step sees) from the clean batch ``x``.

        Args:
            model: the model being trained (in train mode, gradients enabled).
            x: the clean batch ``B×C×H×W`` float in [0, 1].
            y: the labels ``LongTensor[B]``.
            generator: the loop's generator on the batch's device; all randomness comes from it.

        Returns:
            ``x_train``, the shape of ``x`` (treated as data).
        """
        ...


class Standard:
    """Standard (empirical risk minimisation) training: the optimiser sees the clean batch."""

    name = "standard"

    def transform(
        self, model: nn.Module, x: Tensor, y: Tensor, generator: torch.Generator | None = None
    ) -> Tensor:
        """The clean batch, unchanged.

        Args:
            model: the model being trained (unused).
            x: the clean batch ``B×C×H×W``.
            y: the labels (unused).
            generator: unused.

        Returns:
            ``x``.
        """
        return x

    def describe(self) -> dict[str, Any]:
        return {"name": self.name}

    def __repr__(self) -> str:
        return "Standard()"


def _qualified_name(obj: Any) -> str:
    """``module.QualName`` of a function or class (stable across processes, unlike a repr with an address)."""
    return f"{getattr(obj, '__module__', None) or '?'}.{getattr(obj, '__qualname__', type(obj).__qualname__)}"


def _plain(value: Any) -> Any:
    """``value`` as weights-only-loadable plain Python (numbers, strings, lists, str-keyed dicts).
    Functions and classes become their qualified name, other objects the qualified name of their type
    (no memory addresses: the description must be equal in a resumed process)."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, Tensor) and value.numel() == 1:
        return value.item()
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, type) or callable(value) and hasattr(value, "__qualname__"):
        return _qualified_name(value)
    return _qualified_name(type(value))


def mode_name(mode: Any) -> str:
    """The ``name`` of a mode, or its class name when it has none."""
    name = getattr(mode, "name", None)
    return name if isinstance(name, str) and name else type(mode).__name__


def describe_mode(mode: Any) -> dict[str, Any]:
    """``mode.describe()`` as plain Python (for checkpoints and history), with ``"name"`` always set."""
    describe = getattr(mode, "describe", None)
    description = _plain(describe()) if callable(describe) else {}
    if not isinstance(description, dict):
        description = {"description": description}
    return {"name": mode_name(mode), **{k: v for k, v in description.items() if k != "name"}}


#: Context manager: ``model`` in eval mode inside, each submodule's own train/eval flag restored on
#: exit (for modes that run the model, e.g. an attack, in the middle of a training step).
evaluating = eval_mode


__all__ = ["Standard", "TrainingMode", "describe_mode", "evaluating", "mode_name"]
