"""Test helper shared by the model-transformation tests (pooling swap, anti-aliasing)."""

from __future__ import annotations

import torch
from torch import nn


def output_shapes(model: nn.Module, names: list[str], x: torch.Tensor) -> dict[str, tuple]:
    """Output shape of each named module of ``model`` at its first call on ``x`` (tensor outputs only)."""
    modules = dict(model.named_modules())
    shapes: dict[str, tuple] = {}

    def recorder(name: str):
        def hook(_module, _inputs, output) -> None:
            if isinstance(output, torch.Tensor):
                shapes.setdefault(name, tuple(output.shape))

        return hook

    handles = [modules[n].register_forward_hook(recorder(n)) for n in names]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    return shapes
