"""Orthonormal 2-D DCT-II and its frequency bands (seed 003: DCT analysis, Occluded Frequency).

``dct2(x) = C_H · x · C_Wᵀ`` over the last two dims, ``C_N[k, n] = α_k cos(π (2n + 1) k / (2N))``,
``α_0 = sqrt(1/N)``, ``α_k = sqrt(2/N)``: equal to ``scipy.fft.dctn(x, type=2, norm="ortho",
axes=(-2, -1))``. ``C_N`` is orthogonal, so ``idct2(X) = C_Hᵀ · X · C_W`` is the exact inverse and the
transform preserves energy (Parseval). The matrices are built in float64 and cached per
(size, dtype, device); two matrix products are fast for the ≤ 256 px images freqlens works with.

Band of coefficient ``(i, j)`` is ``i + j`` (anti-diagonals; 0 = DC, ``H + W − 1`` bands).
"""

from __future__ import annotations

import functools
import math
import operator
from collections.abc import Iterable

import torch

from ._checks import check_tensor, compute_dtype

__all__ = ["band_mask", "dct2", "dct_bands", "dct_matrix", "idct2"]


@functools.lru_cache(maxsize=64)
def _cached_dct_matrix(n: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    k = torch.arange(n, dtype=torch.float64)[:, None]
    i = torch.arange(n, dtype=torch.float64)[None, :]
    matrix = torch.cos(math.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2.0 / n)
    matrix[0] = math.sqrt(1.0 / n)
    return matrix.to(device=device, dtype=dtype)


def dct_matrix(n: int, dtype: torch.dtype = torch.float64,
               device: torch.device | str | None = None) -> torch.Tensor:
    """Orthonormal DCT-II matrix (rows = frequencies); ``dct_matrix(n) @ v`` is the 1-D DCT.

    Args:
        n: size of the transform (≥ 1).
        dtype: dtype of the result.
        device: device of the result (``None``: CPU).

    Returns:
        ``Tensor[n, n]``, a fresh copy (safe to modify).

    Raises:
        ValueError: ``n < 1``.
    """
    if n < 1:
        raise ValueError(f"size must be >= 1, got {n}")
    return _cached_dct_matrix(int(n), dtype, torch.device(device or "cpu")).clone()


def _matrices(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.dtype]:
    work = compute_dtype(x.dtype)
    c_h = _cached_dct_matrix(x.shape[-2], work, x.device)
    c_w = _cached_dct_matrix(x.shape[-1], work, x.device)
    return c_h, c_w, work


def dct2(x: torch.Tensor) -> torch.Tensor:
    """Orthonormal 2-D DCT-II over the last two dims of ``x`` (``[..., H, W]``, real floating);
    same shape, dtype and device, differentiable."""
    check_tensor(x, "x", min_dim=2)
    c_h, c_w, work = _matrices(x)
    return (c_h @ x.to(work) @ c_w.T).to(x.dtype)


def idct2(coefficients: torch.Tensor) -> torch.Tensor:
    """Exact inverse of :func:`dct2` (orthonormal DCT-III) over the last two dims."""
    check_tensor(coefficients, "coefficients", min_dim=2)
    c_h, c_w, work = _matrices(coefficients)
    return (c_h.T @ coefficients.to(work) @ c_w).to(coefficients.dtype)


def _band_index(value: object) -> int:
    if isinstance(value, bool):
        raise TypeError(f"bands must be integers, got {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"bands must be integers, got {value!r}") from None


def dct_bands(h: int, w: int, device: torch.device | str | None = None) -> torch.Tensor:
    """Band ``i + j`` of each DCT coefficient of an ``h×w`` image.

    Args:
        h: height (≥ 1).
        w: width (≥ 1).
        device: device of the result (``None``: the default device).

    Returns:
        ``LongTensor[h, w]`` with values ``0 .. h + w − 2``.

    Raises:
        ValueError: a size is < 1.
    """
    if h < 1 or w < 1:
        raise ValueError(f"sizes must be >= 1, got {h}×{w}")
    return torch.arange(h, device=device)[:, None] + torch.arange(w, device=device)[None, :]


def band_mask(h: int, w: int, bands: int | Iterable[int] | torch.Tensor,
              device: torch.device | str | None = None) -> torch.Tensor:
    """Mask of the DCT coefficients whose band ``i + j`` is in ``bands``.

    Args:
        h: height of the coefficient grid.
        w: width of the coefficient grid.
        bands: an int, a ``range``, any iterable of ints or an integer tensor. Bands must be ≥ 0;
            bands beyond ``h + w − 2`` select nothing (so ``range(cutoff)`` works for any cutoff).
        device: device of the mask (``None``: that of a tensor ``bands``, else the default device).

    Returns:
        Boolean ``Tensor[h, w]``.

    Raises:
        TypeError: a band is not an integer (floats and bools included).
        ValueError: a band is negative.
    """
    if isinstance(bands, torch.Tensor):
        if bands.is_floating_point() or bands.is_complex() or bands.dtype == torch.bool:
            raise TypeError(f"bands must be integers, got dtype {bands.dtype}")
        device = bands.device if device is None else device
        wanted = bands.reshape(-1).to(device=device, dtype=torch.long)
    else:
        items = list(bands) if isinstance(bands, Iterable) else [bands]
        wanted = torch.tensor([_band_index(b) for b in items], dtype=torch.long, device=device)
    if wanted.numel() and int(wanted.min()) < 0:
        raise ValueError(f"bands must be >= 0, got {int(wanted.min())}")
    return torch.isin(dct_bands(h, w, device=device), wanted)
