"""Input checks shared by the spectral functions (plain ``TypeError`` / ``ValueError``: this
subpackage imports nothing from the rest of freqlens)."""

from __future__ import annotations

import torch

_LOW_PRECISION = (torch.float16, torch.bfloat16)


def check_tensor(x: object, name: str, *, min_dim: int = 2, allow_complex: bool = False) -> torch.Tensor:
    """Return ``x`` if it is a floating (optionally complex) tensor with at least ``min_dim`` dims."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not (x.is_floating_point() or (allow_complex and x.is_complex())):
        kinds = "floating or complex" if allow_complex else "floating"
        raise TypeError(f"{name} must be a {kinds} tensor, got dtype {x.dtype}")
    if x.ndim < min_dim:
        raise ValueError(f"{name} must have at least {min_dim} dims (..., H, W), got shape {tuple(x.shape)}")
    if x.shape[-1] == 0 or x.shape[-2] == 0:
        raise ValueError(f"{name} has an empty spatial size {tuple(x.shape[-2:])}")
    return x


def check_batch_of_maps(x: object, name: str = "maps") -> torch.Tensor:
    """Maps for per-map measures: ``B×H×W`` or ``B×C×H×W``, floating, finite."""
    x = check_tensor(x, name, min_dim=3)
    if x.ndim not in (3, 4):
        raise ValueError(f"{name} must be B×H×W or B×C×H×W, got shape {tuple(x.shape)}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} contains NaN or infinite values")
    return x


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """Half precision is computed in float32 (FFT / matmul support is patchy), the rest as is."""
    return torch.float32 if dtype in _LOW_PRECISION else dtype
