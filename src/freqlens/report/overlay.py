"""An attribution map drawn over its image, as an array (for notebooks) or into a matplotlib axis."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from freqlens.report.figures import MAGNITUDE_CMAP, SIGNED_CMAP, clip_limit
from freqlens.utils.tensors import REDUCTIONS, check_images, reduce_channels


def _as_tensor(value: Any, name: str) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        tensor = value.detach().cpu()
    else:
        try:
            tensor = torch.as_tensor(np.asarray(value))
        except (TypeError, ValueError, RuntimeError) as error:
            raise TypeError(f"{name} must be a tensor or an array, got {type(value).__name__}") from error
    if tensor.is_complex() or tensor.dtype == torch.bool:
        raise TypeError(f"{name} must hold real numbers, got dtype {tensor.dtype}")
    return tensor.to(torch.float64)


def _image_chw(image: Any) -> torch.Tensor:
    """The image as ``3×H×W`` float64 (gray replicated); accepts ``H×W``, ``C×H×W``, ``H×W×C`` (C = 1 or 3;
    ``C×H×W`` first when both read) and a batch of one."""
    tensor = _as_tensor(image, "image")
    shape = tuple(tensor.shape)
    if tensor.dim() == 4 and tensor.shape[0] == 1:
        tensor = tensor[0]
    if tensor.dim() == 2:
        tensor = tensor[None]
    elif tensor.dim() == 3 and tensor.shape[0] not in (1, 3) and tensor.shape[-1] in (1, 3):
        tensor = tensor.permute(2, 0, 1)
    if tensor.dim() != 3 or tensor.shape[0] not in (1, 3):
        raise ValueError(f"image must be H×W, C×H×W or H×W×C with C = 1 or 3, got shape {shape}")
    check_images(tensor[None], "image")
    tensor = tensor.clamp(0, 1)
    return tensor.expand(3, -1, -1) if tensor.shape[0] == 1 else tensor


def _map_hw(attribution: Any, reduce: str) -> torch.Tensor:
    """The map as ``H×W`` float64: ``H×W`` as is, ``C×H×W`` (or a batch of one) reduced over channels with
    :func:`freqlens.attribution.reduce_channels`."""
    tensor = _as_tensor(attribution, "attribution")
    shape = tuple(tensor.shape)
    if tensor.dim() == 4 and tensor.shape[0] == 1:
        tensor = tensor[0]
    if tensor.dim() == 3:
        tensor = reduce_channels(tensor[None], reduce)[0]
    if tensor.dim() != 2:
        raise ValueError(f"attribution must be H×W or C×H×W, got shape {shape}")
    return torch.nan_to_num(tensor, nan=0.0, posinf=0.0, neginf=0.0)


def overlay(
    image: Any,
    attribution: Any,
    *,
    alpha: float = 0.5,
    cmap: str | None = None,
    clip_percentile: float | None = 99.0,
    signed: bool = False,
    reduce: str = "sum",
    ax: Any = None,
) -> np.ndarray:
    """Blend a colour-mapped attribution map over its image.

    Args:
        image: the image, ``C×H×W`` or ``H×W×C`` (C = 1 or 3) or ``H×W``, a tensor or an array with pixels
            in [0, 1] (the freqlens pixel check).
        attribution: its map, ``H×W`` or ``C×H×W`` (per-channel maps are reduced with
            :func:`freqlens.attribution.reduce_channels`, ``reduce``, as the rest of freqlens does).
        alpha: weight of the colour-mapped map, in [0, 1]: 0 returns the image, 1 the map alone.
        cmap: a matplotlib colour map name; default that of the report's figures
            (:data:`~freqlens.report.figures.SIGNED_CMAP` when ``signed``, else
            :data:`~freqlens.report.figures.MAGNITUDE_CMAP`).
        clip_percentile: the colour scale ends at this percentile of |map| (:func:`clip_limit`), so the
            top ``100 − p`` % of pixels saturate; ``None``: the largest |value|. A constant zero map is drawn
            as zero (no division by zero).
        signed: draw the signed map with limits ``±limit`` (a diverging map, zero in its middle); else draw
            |map| from 0 to ``limit``.
        reduce: the channel reduction (``"sum"``, ``"mean"``, ``"abs_sum"``, ``"abs_mean"``, ``"max_abs"``).
        ax: a matplotlib axis to draw the result into (ticks hidden); optional.

    Returns:
        ``H×W×3`` float64 array in [0, 1].
    """
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 <= alpha <= 1:
        raise ValueError(f"alpha must be a number in [0, 1], got {alpha!r}")
    if clip_percentile is not None and (isinstance(clip_percentile, bool) or not 0 < clip_percentile <= 100):
        raise ValueError(f"clip_percentile must lie in (0, 100] or be None, got {clip_percentile!r}")
    if reduce not in REDUCTIONS:
        raise ValueError(f"unknown channel reduction {reduce!r}; expected one of {', '.join(REDUCTIONS)}")
    picture = _image_chw(image)
    values = _map_hw(attribution, reduce)
    if tuple(values.shape) != tuple(picture.shape[-2:]):
        raise ValueError(f"attribution has size {tuple(values.shape)} but the image {tuple(picture.shape[-2:])}")
    import matplotlib

    limit = clip_limit(values, clip_percentile)
    if signed:
        scaled = ((values / limit).clamp(-1, 1) + 1) / 2  # 0.5 = zero
    else:
        scaled = (values.abs() / limit).clamp(0, 1)
    colours = matplotlib.colormaps[cmap or (SIGNED_CMAP if signed else MAGNITUDE_CMAP)](scaled.numpy())[..., :3]
    blended = (1 - alpha) * picture.permute(1, 2, 0).numpy() + alpha * colours
    result = np.clip(blended, 0.0, 1.0)
    if ax is not None:
        ax.imshow(result, vmin=0, vmax=1)
        ax.set_xticks([])
        ax.set_yticks([])
    return result
