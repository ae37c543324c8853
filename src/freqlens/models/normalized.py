"""Per-channel input normalisation as a layer, so that models take [0, 1] pixels (as RobustBench)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from freqlens.errors import ModelError


def _as_vector(values: Sequence[float] | Tensor, what: str) -> Tensor:
    if isinstance(values, Tensor) and values.dim() <= 1:
        values = values.detach().cpu().reshape(-1).tolist()
    if isinstance(values, (int, float)) and not isinstance(values, bool):
        values = [values]
    if isinstance(values, (Tensor, str, bytes)) or not isinstance(values, Sequence):
        raise ModelError(f"Normalized: {what} must be a list of floats (one per channel), got {values!r}")
    out = []
    for value in values:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ModelError(f"Normalized: {what} must hold finite numbers, got {list(values)!r}")
        out.append(float(value))
    if not out:
        raise ModelError(f"Normalized: {what} is empty")
    return torch.tensor(out, dtype=torch.float32)


class Normalized(nn.Module):
    """``model((x - mean[c]) / std[c])``: the wrapped ``model`` sees normalised inputs, callers pass
    ``B×C×H×W`` pixels in [0, 1]. ``mean`` and ``std`` are buffers (saved in the state dict, moved by
    ``.to``). The wrapped network is :attr:`model`.

    Args:
        model: the network to wrap.
        mean: one value per channel (list, number or 0/1-d tensor of finite values).
        std: one value per channel, ``std > 0``.

    Raises:
        TypeError: ``model`` is not an ``nn.Module``.
        ModelError: ``mean`` / ``std`` empty, non-finite, of different lengths, not positive (``std``),
            or not one per input channel of ``model``.
    """

    def __init__(self, model: nn.Module, mean: Sequence[float] | Tensor, std: Sequence[float] | Tensor) -> None:
        super().__init__()
        if not isinstance(model, nn.Module):
            raise TypeError(f"Normalized wraps a torch.nn.Module, got {type(model).__name__}")
        mean_t, std_t = _as_vector(mean, "mean"), _as_vector(std, "std")
        if mean_t.numel() != std_t.numel():
            raise ModelError(
                f"Normalized: mean has {mean_t.numel()} value(s) but std has {std_t.numel()}; give one per channel"
            )
        if (std_t <= 0).any():
            raise ModelError(f"Normalized: std must be positive, got {std_t.tolist()}")
        expected = getattr(model, "in_channels", None)
        if isinstance(expected, int) and expected != mean_t.numel():
            raise ModelError(
                f"Normalized: mean/std have {mean_t.numel()} value(s) but the model takes {expected} channel(s)"
            )
        self.model = model
        self.register_buffer("mean", mean_t)
        self.register_buffer("std", std_t)

    @property
    def in_channels(self) -> int:
        return int(self.mean.numel())

    def normalize(self, x: Tensor) -> Tensor:
        """``(x - mean) / std`` per channel of a ``B×C×H×W`` batch."""
        if not isinstance(x, Tensor) or x.dim() != 4:
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ModelError(f"Normalized expects a B×{self.in_channels}×H×W batch, got {shape}")
        if x.shape[1] != self.mean.numel():
            name = getattr(self.model, "arch", type(self.model).__name__)
            raise ModelError(
                f"Normalized {name}: mean/std have {self.mean.numel()} channel(s) but the input has {x.shape[1]} "
                f"(input shape {tuple(x.shape)})"
            )
        return (x - self.mean.view(1, -1, 1, 1)) / self.std.view(1, -1, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.model(self.normalize(x))

    def extra_repr(self) -> str:
        def fmt(values: Tensor) -> str:
            return "[" + ", ".join(f"{v:.4g}" for v in values.tolist()) + "]"

        return f"mean={fmt(self.mean)}, std={fmt(self.std)}"
