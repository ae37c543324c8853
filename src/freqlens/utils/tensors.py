"""Tensor and model helpers shared by ``attribution``, ``metrics`` and ``training`` (a leaf module:
it imports torch only, so every layer may use it).

``check_inputs`` validates an image batch, ``check_images`` also its pixel range (the [0, 1] convention,
see :func:`pixel_range` for other input domains), ``check_logits`` a model's output, ``eval_mode`` holds a model in eval mode and restores every
submodule's flag, ``chunks`` streams a range in slices of at most ``batch_size``, ``predict`` /
``resolve_target`` turn ``target=None`` into the predicted classes, ``reduce_channels`` reduces maps.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

import torch
from torch import Tensor, nn

from freqlens.errors import InputError

REDUCTIONS = ("sum", "mean", "abs_sum", "abs_mean", "max_abs")

#: Relative tolerance of the pixel-range check: float images may overshoot [0, 1] by 1e-4 (rounding
#: of a resize, a normalisation undone in float32) without being refused.
PIXEL_TOLERANCE = 1e-4

Bounds = tuple[float, float] | None
_UNSET = object()
_default_bounds: Bounds = (0.0, 1.0)
_bounds_override: ContextVar[object] = ContextVar("freqlens_pixel_range", default=_UNSET)


def check_inputs(inputs: Tensor, name: str = "inputs") -> Tensor:
    """Validate a ``B×C×H×W`` floating batch (B ≥ 1) without NaN/inf (no pixel-range check).

    Args:
        inputs: the batch to check.
        name: how the error message calls ``inputs``.

    Returns:
        ``inputs`` unchanged.

    Raises:
        TypeError: ``inputs`` is not a tensor.
        ValueError: not 4-D, not floating, an empty batch, or NaN / infinite values.
    """
    _check_floating_4d(inputs, name, "a floating tensor with pixels in [0, 1]")
    if inputs.shape[0] == 0:
        raise ValueError(f"{name} is an empty batch")
    if not bool(torch.isfinite(inputs).all()):
        raise ValueError(f"{name} contains NaN or infinite values")
    return inputs


def _check_floating_4d(value: object, name: str, expected: str) -> None:
    """TypeError / ValueError unless ``value`` is a 4-D floating tensor (``expected`` says what it must be)."""
    if not isinstance(value, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if value.dim() != 4:
        raise ValueError(f"{name} must have shape B×C×H×W, got shape {tuple(value.shape)}")
    if not value.is_floating_point():
        raise ValueError(f"{name} must be {expected}, got dtype {value.dtype}")


def _checked_bounds(bounds: Bounds) -> Bounds:
    if bounds is None:
        return None
    try:
        low, high = (float(value) for value in bounds)
    except (TypeError, ValueError):
        raise ValueError(f"pixel range must be None or a (low, high) pair of numbers, got {bounds!r}") from None
    if not low < high:
        raise ValueError(f"pixel range must have low < high, got {bounds!r}")
    return low, high


def current_pixel_range() -> Bounds:
    """The pixel range :func:`check_images` enforces now: ``(0.0, 1.0)`` unless changed by
    :func:`set_pixel_range` or inside a :func:`pixel_range` block; ``None`` = not checked."""
    bounds = _bounds_override.get()
    return _default_bounds if bounds is _UNSET else bounds  # type: ignore[return-value]


def set_pixel_range(bounds: Bounds) -> None:
    """Change the pixel range checked wherever images enter freqlens, for the whole process.

    Args:
        bounds: ``(low, high)``, or ``None`` to turn the range check off (shape, dtype and NaN/inf are
            still checked). The default is ``(0.0, 1.0)``, the freqlens convention: normalisation belongs
            inside the model (:class:`freqlens.models.Normalized`), so that noise, baselines, blur and
            attack budgets all live in pixel units.
    """
    global _default_bounds
    _default_bounds = _checked_bounds(bounds)


@contextlib.contextmanager
def pixel_range(bounds: Bounds) -> Iterator[None]:
    """Check images against ``bounds`` (``None``: no range check) inside the ``with`` block only.

    For users whose models take another input domain (e.g. images in [0, 255] or standardised ones):
    ``with freqlens.pixel_range(None): maps = Saliency(model)(x)``. Attacks and adversarial training
    clamp to [0, 1] and keep checking that range whatever is set here.
    """
    token = _bounds_override.set(_checked_bounds(bounds))
    try:
        yield
    finally:
        _bounds_override.reset(token)


def check_images(inputs: Tensor, name: str = "inputs", bounds: Bounds | object = _UNSET) -> Tensor:
    """:func:`check_inputs` plus the pixel range (the one check of the [0, 1] convention).

    Args:
        inputs: ``B×C×H×W`` floating batch.
        name: how the error message calls ``inputs``.
        bounds: the range to enforce; default :func:`current_pixel_range` (``(0, 1)`` unless changed).

    Returns:
        ``inputs`` unchanged.

    Raises:
        InputError: pixels outside the range by more than :data:`PIXEL_TOLERANCE` of its width.
    """
    check_inputs(inputs, name)
    bounds = current_pixel_range() if bounds is _UNSET else _checked_bounds(bounds)  # type: ignore[arg-type]
    if bounds is None:
        return inputs
    low, high = bounds
    slack = PIXEL_TOLERANCE * (high - low)
    smallest, largest = (float(value) for value in torch.aminmax(inputs.detach()))
    if smallest < low - slack or largest > high + slack:
        hint = " (images in [0, 255]? divide them by 255)" if largest > 1.5 and (low, high) == (0.0, 1.0) else ""
        raise InputError(
            f"{name} must hold pixels in [{low:g}, {high:g}], got values in [{smallest:.4g}, {largest:.4g}]{hint}; "
            "normalisation belongs inside the model (freqlens.models.Normalized); for another input domain "
            "use freqlens.pixel_range(None) or freqlens.set_pixel_range((low, high))"
        )
    return inputs


def check_logits(logits: object, batch: int | None = None) -> Tensor:
    """Validate a model's output: a ``B×K`` tensor of finite logits.

    Args:
        logits: what the model returned.
        batch: the expected number of rows ``B`` (``None``: any).

    Returns:
        ``logits`` unchanged.

    Raises:
        InputError: not a ``B×K`` tensor (or not ``batch`` rows), or NaN / infinite values (e.g. a model
            with poisoned weights).
    """
    if isinstance(logits, (tuple, list, dict)):
        kind = f"{type(logits).__name__} of {len(logits)}" if not isinstance(logits, dict) else "dict"
        raise InputError(f"the model returned a {kind}, not a logits tensor; pick the logits with "
                         "freqlens.models.SelectOutput(model, output) (--output on the command line)")
    if not isinstance(logits, Tensor) or logits.dim() != 2 or (batch is not None and logits.shape[0] != batch):
        shape = tuple(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__
        raise InputError(f"the model must return logits of shape B×num_classes, got {shape}")
    if not bool(torch.isfinite(logits.detach()).all()):
        raise InputError("the model returned NaN or infinite logits (are its weights finite?)")
    return logits


def check_model(model: object) -> nn.Module:
    """Return ``model`` if it is a ``torch.nn.Module``, else raise ``TypeError``."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    return model


def check_model_and_images(model: object, inputs: Tensor, batch_size: int | None = None) -> tuple[Tensor, int]:
    """The checks every metric starts with.

    Args:
        model: must be a ``torch.nn.Module``.
        inputs: must be a ``B×C×H×W`` batch in the pixel range (:func:`check_images`).
        batch_size: must be ``None`` or a positive int.

    Returns:
        ``(inputs, chunk)``: the inputs unchanged and the most images per pass (``batch_size``, or ``B``).

    Raises:
        TypeError: ``model`` is not a module, or ``inputs`` not a tensor.
        ValueError: a malformed batch or ``batch_size``.
        InputError: pixels outside the range.
    """
    check_model(model)
    check_images(inputs)
    return inputs, check_batch_size(batch_size) or inputs.shape[0]


def result_dtype(inputs: Tensor) -> torch.dtype:
    """The dtype of per-image scores computed from ``inputs``: float64 for float64 inputs, else float32
    (half-precision inputs get float32 arithmetic)."""
    return torch.float64 if inputs.dtype == torch.float64 else torch.float32


def check_positive_int(name: str, value: object) -> int:
    """Return ``value`` if it is a positive ``int`` (not a bool).

    Args:
        name: how the error message calls it.
        value: the value to check.

    Returns:
        ``value`` as an int.

    Raises:
        ValueError: not a positive int (naming ``name``).
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def check_batch_size(batch_size: int | None) -> int | None:
    """Return ``batch_size`` if it is ``None`` or a positive int, else raise ``ValueError``."""
    if batch_size is None:
        return None
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer or None, got {batch_size!r}")
    return batch_size


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
    """Slices ``[start, stop)`` covering ``range(total)`` with at most ``batch_size`` items each.

    Args:
        total: the number of items.
        batch_size: the most items per slice (``None``: one slice of everything).

    Yields:
        ``slice(start, stop)`` in order.

    Raises:
        ValueError: ``batch_size`` ≤ 0.
    """
    step = total if batch_size is None else int(batch_size)
    if step <= 0:
        raise ValueError(f"batch_size must be a positive integer or None, got {batch_size}")
    for start in range(0, total, step):
        yield slice(start, min(start + step, total))


@torch.no_grad()
def predict(model: nn.Module, inputs: Tensor, batch_size: int | None = None) -> Tensor:
    """Logits of ``model`` on ``inputs`` (eval mode, no gradients), computed in chunks.

    Args:
        model: the classifier.
        inputs: ``B×C×H×W`` images.
        batch_size: the most images per forward pass (``None``: all at once).

    Returns:
        ``B×K`` logits.

    Raises:
        InputError: the model does not return finite ``B×K`` logits.
    """
    with eval_mode(model):
        outputs = []
        for part in chunks(inputs.shape[0], batch_size):
            outputs.append(check_logits(model(inputs[part]), part.stop - part.start))
        return torch.cat(outputs)


def resolve_target(
    model: nn.Module, inputs: Tensor, target: Tensor | int | None, batch_size: int | None = None
) -> Tensor:
    """Return the target classes as a ``LongTensor[B]`` on the inputs' device.

    Args:
        model: the classifier (run only when ``target`` is ``None``).
        inputs: ``B×C×H×W`` images.
        target: ``LongTensor[B]``, an ``int`` (broadcast to the batch), or ``None`` = the model's
            predicted class.
        batch_size: the most images per forward pass for the prediction (``None``: all at once).

    Returns:
        ``LongTensor[B]`` on the inputs' device.

    Raises:
        TypeError: a bool target.
        ValueError: a wrong length, a non-integer dtype or a negative index (the upper bound is
            checked where the logits are known).
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
    """Reduce the channel dim of ``maps``.

    Args:
        maps: ``B×C×H×W`` floating maps (``B×1×H×W`` for single-channel maps).
        how: ``sum`` / ``mean``: signed sum / mean over channels; ``abs_sum`` / ``abs_mean``: of the
            absolute values; ``max_abs``: the largest absolute value.

    Returns:
        ``B×H×W``.

    Raises:
        TypeError: ``maps`` is not a tensor.
        ValueError: not 4-D, not floating, or an unknown ``how``.
    """
    _check_floating_4d(maps, "maps", "a floating tensor")
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
