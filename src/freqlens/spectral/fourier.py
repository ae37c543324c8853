"""Fourier footprint of maps: centred power spectrum and its radial (azimuthal-mean) profile.

Seed 001 (FORGrad, §3.1): the spectrum is shown with the low frequencies at the centre. Layout used
everywhere in freqlens: after ``fftshift`` the DC term sits at index ``(H // 2, W // 2)`` for odd and
even sizes, and index ``k`` of a centred axis of length ``N`` is the frequency offset ``k - N // 2``
(cycles per image): ``-N/2 .. N/2 - 1`` for even ``N`` (the Nyquist bin is ``-N/2``), ``-(N-1)/2 ..
(N-1)/2`` for odd ``N``.
"""

from __future__ import annotations

import math

import torch

from ._checks import check_tensor, compute_dtype

__all__ = ["frequency_offsets", "frequency_radius", "num_radial_bins", "power_spectrum", "radial_profile"]


def frequency_offsets(n: int, device: torch.device | str | None = None,
                      dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Signed frequency offsets ``k - n // 2`` of a centred (``fftshift``-ed) axis of length ``n``.

    Args:
        n: axis length (≥ 1).
        device: device of the result (``None``: the default device).
        dtype: dtype of the result.

    Returns:
        ``Tensor[n]`` of offsets in cycles per image.

    Raises:
        ValueError: ``n < 1``.
    """
    if n < 1:
        raise ValueError(f"size must be >= 1, got {n}")
    return torch.arange(n, device=device, dtype=dtype) - (n // 2)


def frequency_radius(h: int, w: int, device: torch.device | str | None = None,
                     dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Euclidean distance ``sqrt(di² + dj²)`` of every centred-spectrum entry from the DC.

    Args:
        h: spectrum height.
        w: spectrum width.
        device: device of the result (``None``: the default device).
        dtype: dtype of the result (computed in float64).

    Returns:
        ``Tensor[h, w]``, in cycles per image, 0 at the DC ``(h // 2, w // 2)``.
    """
    di = frequency_offsets(h, device, torch.float64)
    dj = frequency_offsets(w, device, torch.float64)
    r = torch.sqrt(di[:, None] ** 2 + dj[None, :] ** 2)
    return r.to(dtype)


def num_radial_bins(h: int, w: int) -> int:
    """Number ``R`` of integer radii present in an ``h×w`` centred spectrum.

    Args:
        h: spectrum height.
        w: spectrum width.

    Returns:
        ``round(sqrt((h//2)² + (w//2)²)) + 1`` (every bin ``0..R-1`` holds at least one entry).
    """
    return round(math.sqrt((h // 2) ** 2 + (w // 2) ** 2)) + 1


def power_spectrum(maps: torch.Tensor, average_channels: bool = True) -> torch.Tensor:
    """Centred power spectrum ``|fftshift(fft2(m))|²`` over the last two dims.

    Unnormalised DFT, as ``numpy.fft.fft2``; DC at ``(H // 2, W // 2)``.

    Args:
        maps: any real or complex tensor ``[..., H, W]``.
        average_channels: when true (default), a 4-D input ``B×C×H×W`` gives ``B×H×W``, the power
            averaged over channels; other ranks keep their shape.

    Returns:
        Real tensor (float32 for half-precision inputs), on the input's device, differentiable.
    """
    check_tensor(maps, "maps", min_dim=2, allow_complex=True)
    if not maps.is_complex():
        maps = maps.to(compute_dtype(maps.dtype))
    spectrum = torch.fft.fftshift(torch.fft.fft2(maps), dim=(-2, -1))
    power = spectrum.real.square() + spectrum.imag.square()
    if average_channels and maps.ndim == 4:
        power = power.mean(dim=1)
    return power


def radial_profile(spectrum: torch.Tensor) -> torch.Tensor:
    """Azimuthal mean of a centred spectrum ``[..., H, W]`` over integer radii → ``[..., R]``.

    Entry ``(i, j)`` goes to bin ``round(sqrt((i - H//2)² + (j - W//2)²))`` (nearest integer radius;
    an exact half never occurs), ``R = num_radial_bins(H, W) = round(sqrt((H//2)² + (W//2)²)) + 1``.
    Bin ``r`` is the mean of its entries; bins beyond ``min(H, W) // 2`` only hold the corners, so they
    average fewer entries. Vectorised (``index_add``), differentiable.
    """
    check_tensor(spectrum, "spectrum", min_dim=2)
    h, w = spectrum.shape[-2:]
    n_bins = num_radial_bins(h, w)
    radius_bin = torch.round(frequency_radius(h, w)).to(torch.long).flatten()
    counts = torch.bincount(radius_bin, minlength=n_bins).clamp_min(1)
    radius_bin = radius_bin.to(spectrum.device)
    values = spectrum.flatten(-2)
    sums = values.new_zeros(*values.shape[:-1], n_bins).index_add_(-1, radius_bin, values)
    return sums / counts.to(device=spectrum.device, dtype=spectrum.dtype)
