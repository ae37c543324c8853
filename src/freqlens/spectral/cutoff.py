"""Per-image FORGrad cutoff from a map's own spectrum (no model call): where the radial power profile
meets a white-noise floor.

Seed 001 (Prop. 3.3) models the gradient noise as Gaussian, i.e. white: flat in Fourier. A map is then
``signal + noise`` with the signal's power concentrated at low frequencies and the noise spread evenly
over every frequency. :func:`noise_floor_sigma` estimates the floor from the outer rings of the map's
power spectrum (the median of their ring means: robust to a few rings with signal) and returns, per map,
the radius where the profile, read outward from the DC, first meets it: the rings inside hold signal
above the noise, the first ring at the floor ends the band (σ = that ring − 1).
Rings are those of the low-pass masks of :mod:`freqlens.spectral.filtering` (box: Chebyshev rings
``max(|di|, |dj|) = r``, so a box low-pass at the returned σ keeps exactly the rings up to it; disk /
gaussian: Euclidean rings ``round(sqrt(di² + dj²)) = r``), σ in cycles per image. Pure: nothing here
knows a model.
"""

from __future__ import annotations

import math

import torch

from ._checks import check_tensor
from .filtering import SHAPES, lowpass
from .fourier import frequency_offsets, power_spectrum

__all__ = ["lowpass_each", "noise_floor_sigma", "ring_profile"]


def _rings(h: int, w: int, shape: str) -> torch.Tensor:
    """Ring index of every centred-spectrum entry, ``LongTensor[h·w]`` (see the module doc)."""
    di = frequency_offsets(h, dtype=torch.float64)[:, None].abs()
    dj = frequency_offsets(w, dtype=torch.float64)[None, :].abs()
    radius = torch.maximum(di, dj) if shape == "box" else torch.round(torch.sqrt(di**2 + dj**2))
    return radius.to(torch.long).flatten()


def ring_profile(maps: torch.Tensor, shape: str = "box") -> tuple[torch.Tensor, torch.Tensor]:
    """Mean power per ring of ``maps`` (power summed over channels).

    Args:
        maps: ``[B, H, W]`` or ``[B, C, H, W]``.
        shape: the low-pass mask whose rings are used (``"box"``: Chebyshev rings, ``"disk"`` /
            ``"gaussian"``: Euclidean rings; see the module doc).

    Returns:
        ``(profile, counts)``: ``Tensor[B, R]`` (float64) and the number of spectrum entries per ring
            ``Tensor[R]``, ``R`` = largest ring index + 1.

    Raises:
        ValueError: ``maps`` is not 3-D or 4-D, or ``shape`` is unknown.
    """
    check_tensor(maps, "maps", min_dim=3)
    if maps.dim() not in (3, 4):
        raise ValueError(f"maps must be B×H×W or B×C×H×W, got {tuple(maps.shape)}")
    if shape not in SHAPES:
        raise ValueError(f"unknown low-pass shape {shape!r}; expected one of {', '.join(SHAPES)}")
    power = power_spectrum(maps.double(), average_channels=False)
    if power.dim() == 4:
        power = power.sum(dim=1)
    h, w = maps.shape[-2:]
    rings = _rings(h, w, shape)
    counts = torch.bincount(rings)
    sums = power.new_zeros(power.shape[0], len(counts)).index_add_(1, rings.to(power.device), power.flatten(1))
    return sums / counts.to(sums).clamp_min(1), counts


def noise_floor_sigma(maps: torch.Tensor, shape: str = "box", z: float = 3.0, floor_from: float = 0.5) -> torch.Tensor:
    """Per map the cutoff σ (cycles per image) where its radial power meets the white-noise floor.

    Args:
        maps: ``[B, H, W]`` or ``[B, C, H, W]`` (the map the low-pass will filter; channels' power summed).
        shape: the low-pass mask whose rings are used (``"box"``, ``"disk"``, ``"gaussian"``).
        z: significance of "above the floor": ring ``r`` holds signal when its mean power exceeds
            ``floor · (1 + z / sqrt(n_r))``, ``n_r`` its number of entries; it meets the floor otherwise (the ring mean of white noise
            has relative standard deviation ``1 / sqrt(n_r)``: power is exponential per entry).
        floor_from: the floor is the median ring mean over rings ``r ≥ floor_from · R_in``, ``R_in =
            min(H, W) // 2`` (complete rings only), floored at ``1e-8`` of the largest ring mean so that
            a noise-free map is not filtered by its rounding error.

    Returns:
        ``Tensor[B]`` (float64, CPU): the last ring before the first one at the floor, at least 1;
            ``R_in`` means the map has signal up to the border of the spectrum (for square maps the box's
            Nyquist bound: no low-pass). Costs one FFT per map, no model call.
    """
    if not (isinstance(z, (int, float)) and math.isfinite(z) and z >= 0):
        raise ValueError(f"z must be a finite number >= 0, got {z!r}")
    if not (isinstance(floor_from, (int, float)) and 0.0 <= floor_from < 1.0):
        raise ValueError(f"floor_from must be in [0, 1), got {floor_from!r}")
    profile, counts = ring_profile(maps, shape)
    profile = profile.cpu()
    inner = min(maps.shape[-2:]) // 2
    if inner < 2:
        return torch.ones(maps.shape[0], dtype=torch.float64)
    start = min(max(1, math.ceil(floor_from * inner)), inner)
    floor = profile[:, start:inner + 1].median(dim=1).values
    floor = torch.maximum(floor, 1e-8 * profile.amax(dim=1))
    threshold = floor[:, None] * (1 + z / counts[: inner + 1].double().sqrt())
    above = profile[:, 1: inner + 1] > threshold[:, 1:]  # rings 1..R_in
    # the first ring (outward from the DC) at the floor ends the signal band: σ = that ring − 1
    met = (~above).to(torch.int64)
    first = torch.where(met.any(dim=1), met.argmax(dim=1), torch.full_like(met[:, 0], inner))
    return first.to(torch.float64).clamp_min(1.0)


def lowpass_each(maps: torch.Tensor, sigmas: torch.Tensor, shape: str = "box") -> torch.Tensor:
    """:func:`lowpass` of each map ``maps[b]`` at its own cutoff ``sigmas[b]``.

    One filter call per distinct σ (at most the number of rings), not per map.

    Args:
        maps: ``[B, ..., H, W]`` (at least 3-D), filtered over the last two dims.
        sigmas: ``Tensor[B]``, one cutoff per map, in cycles per image.
        shape: the low-pass mask (``"box"``, ``"disk"``, ``"gaussian"``).

    Returns:
        Tensor of the shape of ``maps``: each map low-passed at its own σ.

    Raises:
        ValueError: the number of σ differs from the number of maps.
    """
    check_tensor(maps, "maps", min_dim=3)
    sigmas = torch.as_tensor(sigmas, dtype=torch.float64).cpu().reshape(-1)
    if sigmas.numel() != maps.shape[0]:
        raise ValueError(f"one σ per map: got {sigmas.numel()} σ for {maps.shape[0]} maps")
    out = torch.empty_like(maps)
    for sigma in torch.unique(sigmas).tolist():
        chosen = (sigmas == sigma).nonzero().squeeze(1).to(maps.device)
        out[chosen] = lowpass(maps[chosen], sigma, shape)
    return out
