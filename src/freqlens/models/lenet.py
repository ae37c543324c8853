"""LeNet-5 (LeCun et al. 1998), with ReLU and max pooling."""

from __future__ import annotations

from torch import Tensor, nn

from freqlens.models.base import ZooNet


class LeNet(ZooNet):
    """``conv5×5(6, pad 2) -> pool -> conv5×5(16) -> pool -> 16×5×5 -> 120 -> 84 -> classes``.

    The first convolution is padded as for 28×28 MNIST digits (the classic 32×32 LeNet input); an
    adaptive average pool brings other sizes (32, 33, ...) to the 5×5 grid of the fully connected part.
    Takes any ``H, W >= 12``.

    Args:
        in_channels, num_classes, image_size: as :class:`~freqlens.models.base.ZooNet` (``image_size`` is
            only recorded).

    Raises:
        ModelError: invalid sizes.
    """

    arch = "lenet"

    def __init__(
        self, in_channels: int = 3, num_classes: int = 10, image_size: int | tuple[int, int] = 32
    ) -> None:
        super().__init__(in_channels, num_classes, image_size)
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, 6, 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.AdaptiveAvgPool2d(5), nn.Flatten(),
            nn.Linear(16 * 5 * 5, 120), nn.ReLU(inplace=True),
            nn.Linear(120, 84), nn.ReLU(inplace=True),
        )
        self.classifier = nn.Linear(84, num_classes)
        self.min_size = 12  # pool(12) = 6 -> conv5 = 2 -> pool = 1

    def _features(self, x: Tensor) -> Tensor:
        return self.body(x)
