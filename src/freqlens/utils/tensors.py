"""Tensor and model helpers shared by ``attribution``, ``metrics`` and ``training`` (a leaf module:
it imports torch only, so every layer may use it).

``check_inputs`` validates an image batch, ``eval_mode`` holds a model in eval mode and restores every
submodule's flag, ``chunks`` streams a range in slices of at most ``batch_size``, ``predict`` /
``resolve_target`` turn ``target=None`` into the predicted classes, ``reduce_channels`` reduces maps.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import Tensor, nn

REDUCTIONS = ("sum", "mean", "abs_sum", "abs_mean", "max_abs")


def check_inputs(inputs: Tensor, name: str = "inputs") -> Tensor:
    """Validate a ``B×C×H×W`` floating batch (B ≥ 1) without NaN/inf; returns it unchanged."""
    if not isinstance(inputs, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(inputs).__name__}")
    if inputs.dim() != 4:
        raise ValueError(f"{name} must have shape B×C×H×W, got shape {tuple(inputs.shape)}")
    if not inputs.is_floating_point():
        raise ValueError(f"{name} must be a floating tensor with pixels in [0, 1], got dtype {inputs.dtype}")
    if inputs.shape[0] == 0:
        raise ValueError(f"{name} is an empty batch")
    if not bool(torch.isfinite(inputs).all()):
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
        outputs = []
        for part in chunks(inputs.shape[0], batch_size):
            logits = model(inputs[part])
            if not isinstance(logits, Tensor) or logits.dim() != 2 or logits.shape[0] != part.stop - part.start:
                shape = tuple(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__
                raise ValueError(f"the model must return logits of shape [batch, classes], got {shape}")
            outputs.append(logits)
        return torch.cat(outputs)


def resolve_target(
    model: nn.Module, inputs: Tensor, target: Tensor | int | None, batch_size: int | None = None
) -> Tensor:
    """Return the target classes as a ``LongTensor[B]`` on the inputs' device.

    ``None`` means the model's predicted class; an ``int`` is broadcast to the batch. Raises
    ``TypeError`` for a bool and ``ValueError`` for a wrong length, a non-integer dtype or a negative
    index (the upper bound is checked where the logits are known).
    """
    batch = inputs.shape[0]
    if target is None:
        return predict(model, inputs, batch_size).argmax(dim=1)
    if isinstance(target, bool):
        raise TypeError("target must hold integer class indices, got a bool")
    if isinstance(target, int):
        target = torch.full((batch,), target, dtype=torch.long, device=inputs.device)
    if not isinstance(target, Tensor):
        target = torch.as_tensor(target)
    if target.dim() == 0:
        target = target.expand(batch)
    if target.dim() != 1 or target.shape[0] != batch:
        raise ValueError(f"target must be a LongTensor of shape [{batch}], got shape {tuple(target.shape)}")
    if target.is_floating_point() or target.is_complex() or target.dtype == torch.bool:
        raise ValueError(f"target must hold integer class indices, got dtype {target.dtype}")
    target = target.to(device=inputs.device, dtype=torch.long)
    if bool((target < 0).any()):
        raise ValueError(f"target holds a negative class index: {int(target.min())}")
    return target


def reduce_channels(maps: Tensor, how: str = "sum") -> Tensor:
    """Reduce the channel dim of ``maps`` (``B×C×H×W``; ``B×1×H×W`` for single-channel maps).

    ``sum`` / ``mean``: signed sum / mean over channels; ``abs_sum`` / ``abs_mean``: of the absolute
    values; ``max_abs``: the largest absolute value. Returns ``B×H×W``.
    """
    if not isinstance(maps, Tensor):
        raise TypeError(f"maps must be a torch.Tensor, got {type(maps).__name__}")
    if maps.dim() != 4:
        raise ValueError(f"maps must have shape B×C×H×W, got shape {tuple(maps.shape)}")
    if not maps.is_floating_point():
        raise ValueError(f"maps must be a floating tensor, got dtype {maps.dtype}")
    if how == "sum":
        return maps.sum(dim=1)
    if how == "mean":
        return maps.mean(dim=1)
    if how == "abs_sum":
        return maps.abs().sum(dim=1)
    if how == "abs_mean":
        return maps.abs().mean(dim=1)
    if how == "max_abs":
        return maps.abs().amax(dim=1)
    raise ValueError(f"unknown channel reduction {how!r}; expected one of {', '.join(REDUCTIONS)}")
