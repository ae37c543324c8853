"""Relative Change in DCT coefficients (RCT) between images and their perturbed versions (seed 003,
eq. 8): ``RCT = mean_i |(DCT(x'_i) − DCT(x_i)) / DCT(x_i)|`` per coefficient."""

from __future__ import annotations

import torch

from ._checks import check_tensor
from .dct import dct2

__all__ = ["rct"]


def rct(x: torch.Tensor, x_adv: torch.Tensor, eps: float = 1e-6, reduction: str = "mean") -> torch.Tensor:
    """RCT map (top-left = DC, bottom-right = highest frequency).

    The statistic runs over every leading index (images and channels). ``rct(x, x)`` is 0.

    Args:
        x: clean images ``[..., H, W]`` (typically ``B×C×H×W``).
        x_adv: perturbed images, the same shape as ``x``.
        eps: guard of the denominator, > 0: ``DCT(x)`` with magnitude below ``eps`` is replaced
            sign-preservingly by ``±eps`` (``+eps`` for exact zeros), so the result is finite; a
            coefficient that is tiny in ``x`` still weighs up to ``|Δ| / eps``.
        reduction: ``"mean"`` (the paper's) or ``"median"``, the per-coefficient median (the ratio is
            heavy-tailed; torch's lower median for an even count).

    Returns:
        ``Tensor[H, W]``.

    Raises:
        ValueError: shapes differ, ``eps <= 0`` or an unknown ``reduction``.
    """
    check_tensor(x, "x", min_dim=2)
    check_tensor(x_adv, "x_adv", min_dim=2)
    if x.shape != x_adv.shape:
        raise ValueError(
            f"x and x_adv must have the same shape, got {tuple(x.shape)} and {tuple(x_adv.shape)}"
        )
    eps = float(eps)
    if not eps > 0:
        raise ValueError(f"eps must be > 0, got {eps}")
    if reduction not in ("mean", "median"):
        raise ValueError(f"unknown reduction {reduction!r}; expected 'mean' or 'median'")
    coefficients = dct2(x)
    change = dct2(x_adv - x)  # = DCT(x') − DCT(x) by linearity, without cancellation
    denominator = torch.where(coefficients < 0, coefficients.clamp(max=-eps), coefficients.clamp(min=eps))
    ratios = (change / denominator).abs().reshape(-1, *x.shape[-2:])
    if reduction == "mean":
        return ratios.mean(dim=0)
    return ratios.median(dim=0).values
