"""The explainer protocol shared by every attribution method.

An explainer is built around a model (``Explainer(model, ...)``) or around another explainer (noise
tunnel, FORGrad) and maps ``inputs`` (``B×C×H×W`` float, pixels in [0, 1]) and ``target``
(``LongTensor[B]`` or ``None`` = predicted class) to attribution maps (``B×C×H×W`` for per-channel
gradient methods, ``B×1×H×W`` otherwise). ``explainer(inputs, target)`` is ``explainer.attribute(...)``.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Iterator

import torch
from torch import Tensor, nn


class Explainer(ABC):
    """Base class: subclasses implement :meth:`attribute`."""

    #: ``True`` when maps are per input channel (``B×C×H×W``), ``False`` for ``B×1×H×W`` maps.
    per_channel: bool = True
    #: ``"gradient"`` or ``"black-box"`` (used by the frequency analyses to mark families).
    family: str = "gradient"

    def __init__(self, model: nn.Module) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"{type(self).__name__} expects a torch.nn.Module, got {type(model).__name__}")
        self.model = model

    @abstractmethod
    def attribute(self, inputs: Tensor, target: Tensor | int | None = None) -> Tensor:
        """Return attribution maps for ``inputs`` (``B×C×H×W``) and ``target``."""

    def __call__(self, inputs: Tensor, target: Tensor | int | None = None) -> Tensor:
        return self.attribute(inputs, target)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def check_inputs(inputs: Tensor, name: str = "inputs") -> Tensor:
    """Validate a ``B×C×H×W`` floating batch without NaN/inf; returns it unchanged."""
    if not isinstance(inputs, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(inputs).__name__}")
    if inputs.dim() != 4:
        raise ValueError(f"{name} must have shape B×C×H×W, got shape {tuple(inputs.shape)}")
    if not inputs.is_floating_point():
        raise ValueError(f"{name} must be a floating tensor with pixels in [0, 1], got dtype {inputs.dtype}")
    if inputs.shape[0] == 0:
        raise ValueError(f"{name} is an empty batch")
    if not torch.isfinite(inputs).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return inputs


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put ``model`` in eval mode for the duration of the block, then restore every module's flag."""
    flags = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, flag in flags:
            module.training = flag


def chunks(total: int, batch_size: int | None) -> Iterator[slice]:
    """Slices ``[start, stop)`` covering ``range(total)`` with at most ``batch_size`` items each."""
    step = total if batch_size is None else int(batch_size)
    if step <= 0:
        raise ValueError(f"batch_size must be a positive integer or None, got {batch_size}")
    for start in range(0, total, step):
        yield slice(start, min(start + step, total))


@torch.no_grad()
def predict(model: nn.Module, inputs: Tensor, batch_size: int | None = None) -> Tensor:
    """Logits of ``model`` on ``inputs`` (eval mode), computed in chunks of ``batch_size``."""
    with eval_mode(model):
        return torch.cat([model(inputs[part]) for part in chunks(inputs.shape[0], batch_size)])


def resolve_target(
    model: nn.Module, inputs: Tensor, target: Tensor | int | None, batch_size: int | None = None
) -> Tensor:
    """Return the target classes as a ``LongTensor[B]`` on the inputs' device.

    ``None`` means the model's predicted class; an ``int`` is broadcast to the batch. Raises
    ``ValueError`` for a wrong length or a class index outside ``[0, num_classes)``.
    """
    batch = inputs.shape[0]
    if target is None:
        return predict(model, inputs, batch_size).argmax(dim=1)
    if isinstance(target, int):
        target = torch.full((batch,), target, dtype=torch.long, device=inputs.device)
    if not isinstance(target, Tensor):
        target = torch.as_tensor(target)
    if target.dim() == 0:
        target = target.expand(batch)
    if target.dim() != 1 or target.shape[0] != batch:
        raise ValueError(f"target must be a LongTensor of shape [{batch}], got shape {tuple(target.shape)}")
    if target.is_floating_point() or target.dtype == torch.bool:
        raise ValueError(f"target must hold integer class indices, got dtype {target.dtype}")
    target = target.to(device=inputs.device, dtype=torch.long)
    if (target < 0).any():
        raise ValueError(f"target holds a negative class index: {target.min().item()}")
    return target


def check_target_range(target: Tensor, num_classes: int) -> None:
    """Raise ``ValueError`` when a class index is not below ``num_classes``."""
    if target.numel() and int(target.max()) >= num_classes:
        raise ValueError(f"target class {int(target.max())} is out of range for a model with {num_classes} outputs")
