"""Multi-layer perceptron (the "three layer MLP" of seed 000)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from freqlens.errors import ModelError
from freqlens.models.base import ZooNet


class MLP(ZooNet):
    """``Flatten -> [Linear -> ReLU] * len(hidden) -> Linear``; three linear layers by default.

    Takes exactly ``in_channels×H×W`` inputs with ``(H, W) = image_size``.

    Args:
        in_channels: input channels ``C``.
        num_classes: output logits ``K``.
        image_size: the input size, an int or ``(H, W)`` (fixed: the first layer has
            ``C·H·W`` inputs).
        hidden: the widths of the hidden layers (a non-empty list of positive ints).

    Raises:
        ModelError: invalid sizes or ``hidden``.
    """

    arch = "mlp"
    fixed_size = True

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 10,
        image_size: int | tuple[int, int] = 32,
        hidden: Sequence[int] = (512, 256),
    ) -> None:
        super().__init__(in_channels, num_classes, image_size)
        hidden = list(hidden)
        if not hidden or any(isinstance(h, bool) or not isinstance(h, int) or h < 1 for h in hidden):
            raise ModelError(f"mlp: hidden must be a non-empty list of positive ints, got {hidden!r}")
        height, width = self.image_size
        layers: list[nn.Module] = [nn.Flatten()]
        fan_in = in_channels * height * width
        for fan_out in hidden:
            layers += [nn.Linear(fan_in, fan_out), nn.ReLU(inplace=True)]
            fan_in = fan_out
        self.body = nn.Sequential(*layers)
        self.classifier = nn.Linear(fan_in, num_classes)

    def _features(self, x: Tensor) -> Tensor:
        return self.body(x)
