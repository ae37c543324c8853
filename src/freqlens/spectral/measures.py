"""High-frequency measures of attribution maps, one value per map (seed 001, §3.1 and Fig. 3).

All take ``maps`` of shape ``B×H×W`` or ``B×C×H×W`` (floating, finite) and return ``Tensor[B]`` on
the maps' device. With channels: :func:`hf_power_ratio` averages the channel power spectra (as
:func:`~freqlens.spectral.fourier.power_spectrum`), :func:`laplacian_energy` and
:func:`compression_ratio` average the per-channel values. The DESIGN convention is to call them on
channel-reduced maps (``reduce_channels``), i.e. ``B×H×W``.
"""

from __future__ import annotations

import io

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ._checks import check_batch_of_maps, compute_dtype
from .fourier import frequency_radius, power_spectrum

__all__ = ["PNG_COMPRESS_LEVEL", "compression_ratio", "hf_power_ratio", "laplacian_energy"]

PNG_COMPRESS_LEVEL = 6
"""zlib level used by :func:`compression_ratio` (Pillow's default; fixed for reproducibility)."""


def hf_power_ratio(
    maps: torch.Tensor, cutoff: float | None = None, remove_mean: bool = False
) -> torch.Tensor:
    """Share of spectral power at Euclidean frequency radius ``> cutoff`` (cycles per image).

    Args:
        maps: ``B×H×W`` or ``B×C×H×W`` (channel power spectra averaged).
        cutoff: radius in cycles per image; ``None`` = ``min(H, W) / 4`` (half the Nyquist radius of
            the shorter side).
        remove_mean: subtract each map's mean first; otherwise the total includes the DC term.

    Returns:
        ``Tensor[B]`` in ``[0, 1]``; a constant map gives 0, a checkerboard 1, a map with zero power
            (all zeros) 0.

    Raises:
        ValueError: ``cutoff`` is negative or NaN.
    """
    maps = check_batch_of_maps(maps)
    h, w = maps.shape[-2:]
    if cutoff is None:
        cutoff = min(h, w) / 4
    cutoff = float(cutoff)
    if not cutoff >= 0:  # also catches NaN
        raise ValueError(f"cutoff must be >= 0, got {cutoff}")
    if remove_mean:
        maps = maps - maps.mean(dim=(-2, -1), keepdim=True)
    power = power_spectrum(maps, average_channels=True)  # B×H×W
    high = frequency_radius(h, w, device=maps.device, dtype=power.dtype) > cutoff
    total = power.sum(dim=(-2, -1))
    high_power = (power * high).sum(dim=(-2, -1))
    ratio = high_power / torch.where(total > 0, total, torch.ones_like(total))
    return ratio.to(maps.dtype)


def _per_channel_mean(values: torch.Tensor, maps: torch.Tensor) -> torch.Tensor:
    return values.mean(dim=1) if maps.ndim == 4 else values


def laplacian_energy(maps: torch.Tensor) -> torch.Tensor:
    """Variance of the 5-point discrete Laplacian of each map standardised to zero mean and unit
    variance (population statistics) → ``[B]``; invariant to ``a·m + b`` (``a ≠ 0``).

    Borders use replicate padding (the outside pixel repeats the edge pixel). A constant map (std ≤
    float eps × max |m|) gives 0. Scale: white noise ≈ 20, a checkerboard 64 (interior).
    """
    maps = check_batch_of_maps(maps)
    work = maps.to(compute_dtype(maps.dtype))
    h, w = work.shape[-2:]
    flat = work.reshape(-1, 1, h, w)
    mean = flat.mean(dim=(-2, -1), keepdim=True)
    std = flat.std(dim=(-2, -1), keepdim=True, unbiased=False)
    scale = flat.abs().amax(dim=(-2, -1), keepdim=True)
    constant = std <= torch.finfo(work.dtype).eps * scale
    z = (flat - mean) / torch.where(constant, torch.ones_like(std), std)
    padded = F.pad(z, (1, 1, 1, 1), mode="replicate")
    lap = (padded[..., :-2, 1:-1] + padded[..., 2:, 1:-1] + padded[..., 1:-1, :-2] + padded[..., 1:-1, 2:]
           - 4 * z)
    energy = lap.var(dim=(-2, -1), unbiased=False)
    energy = torch.where(constant.reshape(energy.shape), torch.zeros_like(energy), energy)
    return _per_channel_mean(energy.reshape(maps.shape[:-2]), maps).to(maps.dtype)


def quantize_uint8(maps: torch.Tensor) -> torch.Tensor:
    """Min–max quantisation of each map (last two dims) to ``uint8`` ``round(255 (m − min)/(max − min))``;
    a constant map becomes all zeros."""
    low = maps.amin(dim=(-2, -1), keepdim=True)
    span = maps.amax(dim=(-2, -1), keepdim=True) - low
    scaled = (maps - low) / torch.where(span > 0, span, torch.ones_like(span))
    return torch.round(scaled * 255).clamp(0, 255).to(torch.uint8)


def _png_size(image: np.ndarray) -> int:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG", optimize=False,
                                 compress_level=PNG_COMPRESS_LEVEL)
    return buffer.tell()


def compression_ratio(maps: torch.Tensor) -> torch.Tensor:
    """Lossless PNG size of the 8-bit min–max-quantised map divided by the raw size ``H·W`` → ``[B]``
    (seed 001's "Kolmogorov" proxy for high-frequency content; lower = smoother).

    Pillow, greyscale, ``compress_level=PNG_COMPRESS_LEVEL`` (6), ``optimize=False``: deterministic
    for a given zlib. The size includes PNG's fixed overhead (~70 bytes of signature and chunks), so
    incompressible small maps give slightly more than 1. Quantisation runs batched on the maps'
    device; the PNG encoding is a CPU loop over maps.
    """
    maps = check_batch_of_maps(maps)
    h, w = maps.shape[-2:]
    quantized = quantize_uint8(maps.detach().to(compute_dtype(maps.dtype))).cpu().numpy()
    images = quantized.reshape(-1, h, w)
    sizes = torch.tensor([_png_size(np.ascontiguousarray(img)) for img in images], dtype=torch.float64)
    ratios = (sizes / (h * w)).reshape(maps.shape[:-2])
    return _per_channel_mean(ratios, maps).to(device=maps.device, dtype=maps.dtype)
