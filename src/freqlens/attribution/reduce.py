"""Channel reduction of attribution maps: ``B×C×H×W`` → ``B×H×W``."""

from __future__ import annotations

from torch import Tensor

__all__ = ["REDUCTIONS", "reduce_channels"]

REDUCTIONS = ("sum", "mean", "abs_sum", "abs_mean", "max_abs")


def reduce_channels(maps: Tensor, how: str = "sum") -> Tensor:
    """Reduce the channel dim of ``maps`` (``B×C×H×W``; ``B×1×H×W`` for single-channel maps).

    ``sum`` / ``mean``: signed sum / mean over channels; ``abs_sum`` / ``abs_mean``: of the absolute
    values; ``max_abs``: the largest absolute value. Returns ``B×H×W``.
    """
    if not isinstance(maps, Tensor):
        raise TypeError(f"maps must be a torch.Tensor, got {type(maps).__name__}")
    if maps.dim() != 4:
        raise ValueError(f"maps must have shape B×C×H×W, got shape {tuple(maps.shape)}")
    if not maps.is_floating_point():
        raise ValueError(f"maps must be a floating tensor, got dtype {maps.dtype}")
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
