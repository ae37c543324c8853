"""FORGrad low-pass filtering of maps (seed 001, §4: ``φ_σ = F⁻¹(F(φ) ⊙ K^σ)``).

Masks live on the *centred* spectrum (DC at ``(H // 2, W // 2)``, offsets ``k - N // 2``, see
:mod:`freqlens.spectral.fourier`); σ is in cycles per image:

* ``"box"``: the paper's ``K^σ(i, j) = 1[|i − H/2| ≤ σ] · 1[|j − W/2| ≤ σ]`` with ``i − H/2``, ``j − W/2``
  the frequency offsets from the centre;
* ``"disk"``: ``1[sqrt(di² + dj²) ≤ σ]``;
* ``"gaussian"``: ``exp(−r² / (2σ²))`` (``σ = 0`` keeps the DC only, ``σ = inf`` is the identity).

Even sizes: the Nyquist bin (offset ``−N/2``) has no ``+N/2`` twin; it is its own conjugate, and the
masks depend on ``|offset|`` only, so it is kept exactly when ``σ ≥ N/2`` (box, along that axis),
which keeps every mask Hermitian-symmetric: a real map gives a real result (the ``.real`` taken at
the end drops only rounding noise).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import torch

from ._checks import check_tensor, compute_dtype
from .fourier import frequency_offsets

__all__ = ["SHAPES", "lowpass", "lowpass_mask", "nyquist_sigma"]

SHAPES = ("box", "disk", "gaussian")


def _check_shape(shape: str) -> str:
    if shape not in SHAPES:
        raise ValueError(f"unknown low-pass shape {shape!r}; expected one of {', '.join(SHAPES)}")
    return shape


def _check_sigma(sigma: float) -> float:
    sigma = float(sigma)
    if math.isnan(sigma) or sigma < 0:
        raise ValueError(f"sigma must be >= 0 (cycles per image) or inf, got {sigma}")
    return sigma


def _sigma_list(sigma: float | Sequence[float] | torch.Tensor) -> tuple[list[float], bool]:
    """Return (sigmas, is_sweep). Scalars and 0-d tensors are single σ; 1-D tensors / lists a sweep."""
    if isinstance(sigma, torch.Tensor):
        if sigma.ndim > 1:
            raise ValueError(f"sigma must be a scalar or 1-D, got shape {tuple(sigma.shape)}")
        values, sweep = sigma.detach().cpu().reshape(-1).tolist(), sigma.ndim == 1
    elif isinstance(sigma, (int, float)):
        values, sweep = [sigma], False
    elif isinstance(sigma, Iterable) and not isinstance(sigma, (str, bytes)):
        values, sweep = list(sigma), True
    else:
        raise TypeError(
            f"sigma must be a number, a 1-D tensor or a sequence of numbers, got {type(sigma).__name__}"
        )
    if sweep and not values:
        raise ValueError("sigma sweep is empty")
    return [_check_sigma(s) for s in values], sweep


def nyquist_sigma(h: int, w: int, shape: str = "box") -> float:
    """Smallest σ at which the ``shape`` mask on an ``h×w`` spectrum is all ones (the identity).

    Args:
        h: spectrum height (≥ 1).
        w: spectrum width (≥ 1).
        shape: the mask, ``"box"``, ``"disk"`` or ``"gaussian"``.

    Returns:
        σ in cycles per image. box: ``max(h // 2, w // 2)`` (the largest ``|offset|`` present, ``N/2``
            for even and ``(N−1)/2`` for odd ``N``); disk: ``sqrt((h // 2)² + (w // 2)²)`` (the farthest
            corner); gaussian: ``inf`` (no finite σ is exactly the identity).

    Raises:
        ValueError: unknown ``shape`` or a size < 1.
    """
    _check_shape(shape)
    if h < 1 or w < 1:
        raise ValueError(f"sizes must be >= 1, got {h}×{w}")
    if shape == "box":
        return float(max(h // 2, w // 2))
    if shape == "disk":
        return math.sqrt((h // 2) ** 2 + (w // 2) ** 2)
    return math.inf


def lowpass_mask(
    h: int, w: int, sigma: float, shape: str = "box",
    device: torch.device | str | None = None, dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Low-pass mask on the centred spectrum (DC at ``(h // 2, w // 2)``); see module doc.

    Built in float64 on the CPU (exact integer offsets, a fixed result on any device), then moved.

    Args:
        h: spectrum height.
        w: spectrum width.
        sigma: cutoff in cycles per image, ≥ 0 (``inf`` allowed).
        shape: ``"box"`` (default, the paper's), ``"disk"`` or ``"gaussian"``.
        device: device of the mask (``None``: CPU).
        dtype: dtype of the mask.

    Returns:
        ``Tensor[h, w]`` with values in ``[0, 1]``.

    Raises:
        ValueError: σ < 0, NaN, or an unknown ``shape``.
    """
    _check_shape(shape)
    sigma = _check_sigma(sigma)
    di = frequency_offsets(h)[:, None]
    dj = frequency_offsets(w)[None, :]
    if shape == "box":
        mask = ((di.abs() <= sigma) & (dj.abs() <= sigma)).to(torch.float64)
    elif shape == "disk":
        mask = (torch.sqrt(di**2 + dj**2) <= sigma).to(torch.float64)
    elif sigma == 0:
        mask = ((di == 0) & (dj == 0)).to(torch.float64)
    elif math.isinf(sigma):
        mask = torch.ones(h, w, dtype=torch.float64)
    else:
        mask = torch.exp(-0.5 * (torch.sqrt(di**2 + dj**2) / sigma) ** 2)  # no 0/0 at DC for tiny σ
    return mask.to(device=device, dtype=dtype)


def lowpass(maps: torch.Tensor, sigma: float | Sequence[float] | torch.Tensor,
            shape: str = "box") -> torch.Tensor:
    """FORGrad filter ``F⁻¹(F(m) ⊙ K^σ)`` over the last two dims of ``maps`` (``[..., H, W]``).

    Applied to the signed values, independently per leading index (image, channel). A real input
    gives a real output (``.real`` of the inverse FFT), a complex input a complex output; dtype,
    device and autograd follow the input. σ ≥ :func:`nyquist_sigma` returns an exact copy
    (``torch.equal`` to the input) without any FFT.

    Args:
        maps: real or complex ``[..., H, W]`` tensor.
        sigma: cutoff in cycles per image: a number ≥ 0 (``inf`` allowed), or a 1-D tensor /
            sequence of S values for a sweep (one FFT for the whole sweep).
        shape: the mask, ``"box"`` (default), ``"disk"`` or ``"gaussian"`` (see the module doc).

    Returns:
        For a single σ, a tensor of the same shape as ``maps``; for a sweep, ``[S, *maps.shape]``.

    Raises:
        ValueError: σ < 0, NaN, or an unknown ``shape``.
        TypeError: ``sigma`` is neither a number, a 1-D tensor nor a sequence of numbers.
    """
    check_tensor(maps, "maps", min_dim=2, allow_complex=True)
    _check_shape(shape)
    sigmas, sweep = _sigma_list(sigma)
    h, w = maps.shape[-2:]
    bound = nyquist_sigma(h, w, shape)
    identity = [s >= bound for s in sigmas]

    if all(identity):
        out = [maps.clone() for _ in sigmas]
        return torch.stack(out) if sweep else out[0]

    work = maps if maps.is_complex() else maps.to(compute_dtype(maps.dtype))
    real_dtype = work.real.dtype if work.is_complex() else work.dtype
    masks = torch.stack([lowpass_mask(h, w, s, shape, device=maps.device, dtype=real_dtype) for s in sigmas])
    # Masks are defined on the centred spectrum; move them to the unshifted FFT layout once.
    masks = torch.fft.ifftshift(masks, dim=(-2, -1))
    masks = masks.reshape(len(sigmas), *([1] * (maps.ndim - 2)), h, w)

    filtered = torch.fft.ifft2(torch.fft.fft2(work).unsqueeze(0) * masks)
    if not maps.is_complex():
        filtered = filtered.real
    filtered = filtered.to(maps.dtype)
    if any(identity):
        keep = torch.tensor(identity, device=maps.device).reshape(-1, *([1] * maps.ndim))
        filtered = torch.where(keep, maps.unsqueeze(0), filtered)
    return filtered if sweep else filtered[0]
