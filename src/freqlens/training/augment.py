"""Batch data augmentation: random horizontal flip and random crop with zero padding.

The standard CIFAR recipe (He et al. 2016): each image is mirrored with probability 1/2 and shifted
by a random offset in ``[-pad, pad]²`` (zero padding, then a crop of the original size). Vectorised
over the batch: one gather, no per-image Python loop.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from freqlens.errors import TrainingError

#: Accepted values of ``augment`` (``True`` means ``"flip+crop"``; ``False``/``None``/``"none"`` nothing).
AUGMENTATIONS = ("flip", "crop", "flip+crop")


class TrainingConfigError(TrainingError, ValueError):
    """An invalid training setting (unknown optimizer or augmentation, non-positive epochs, ...)."""


def parse_augment(augment: bool | str | None) -> str | None:
    """Canonical augmentation name (``"flip"``, ``"crop"``, ``"flip+crop"``) or ``None``."""
    if augment is None or augment is False:
        return None
    if augment is True:
        return "flip+crop"
    if isinstance(augment, str):
        parts = {part.strip().lower() for part in augment.replace(",", "+").split("+") if part.strip()}
        if parts <= {"none"}:
            return None
        if parts <= {"flip", "crop"}:
            return "+".join(kind for kind in ("flip", "crop") if kind in parts)
    raise TrainingConfigError(
        f"augment must be False, True, or one of {', '.join(AUGMENTATIONS)}; got {augment!r}"
    )


def augment_batch(x: Tensor, kind: bool | str | None = "flip+crop", generator: torch.Generator | None = None,
                  padding: int = 4) -> Tensor:
    """Randomly flip and/or crop the ``B×C×H×W`` batch ``x`` (a new tensor; ``x`` is not modified).

    ``kind``: ``"flip"``, ``"crop"``, ``"flip+crop"`` (or ``True``); ``None``/``False`` returns ``x``.
    Flip: left-right mirror with probability 1/2 per image. Crop: shift by ``(dy, dx)`` uniform in
    ``[-padding, padding]²`` with zeros coming in. The random numbers are drawn on the CPU from
    ``generator`` (the same draws whatever the device of ``x``).

    Args:
        x: the batch ``B×C×H×W``.
        kind: ``"flip"``, ``"crop"``, ``"flip+crop"`` (or ``True``); ``None``/``False`` returns ``x``.
        generator: a CPU generator (``None``: torch's global RNG).
        padding: the largest crop shift in pixels (0: no crop).

    Returns:
        The augmented batch, same shape (``x`` itself when ``kind`` is off).

    Raises:
        TrainingConfigError: an unknown ``kind``, or ``x`` is not 4-D.
    """
    kind = parse_augment(kind)
    if kind is None:
        return x
    if x.dim() != 4:
        raise TrainingConfigError(f"augment_batch expects a B×C×H×W batch, got shape {tuple(x.shape)}")
    batch, _, height, width = x.shape
    if "flip" in kind:
        flip = torch.rand(batch, generator=generator) < 0.5
        x = torch.where(flip.to(x.device).view(batch, 1, 1, 1), x.flip(-1), x)
    if "crop" in kind and padding > 0:
        offsets = torch.randint(0, 2 * padding + 1, (2, batch), generator=generator).to(x.device)
        padded = F.pad(x, (padding, padding, padding, padding))
        rows = offsets[0].view(batch, 1, 1) + torch.arange(height, device=x.device).view(1, height, 1)
        cols = offsets[1].view(batch, 1, 1) + torch.arange(width, device=x.device).view(1, 1, width)
        images = torch.arange(batch, device=x.device).view(batch, 1, 1)
        # advanced indices around a slice: the result is B×H×W×C
        x = padded.permute(0, 2, 3, 1)[images, rows, cols].permute(0, 3, 1, 2).contiguous()
    return x


__all__ = ["AUGMENTATIONS", "TrainingConfigError", "augment_batch", "parse_augment"]
