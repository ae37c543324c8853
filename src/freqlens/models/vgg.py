"""VGG-11 / VGG-16 (Simonyan & Zisserman 2015), CIFAR style: BatchNorm, one linear classifier."""

from __future__ import annotations

from torch import Tensor, nn

from freqlens.errors import ModelError
from freqlens.models.base import PooledConvNet

#: Widths in units of ``width`` (64 in the paper); "M" is a 2×2 max pool.
CONFIGS: dict[int, list[int | str]] = {
    11: [1, "M", 2, "M", 4, 4, "M", 8, 8, "M", 8, 8, "M"],
    13: [1, 1, "M", 2, 2, "M", 4, 4, "M", 8, 8, "M", 8, 8, "M"],
    16: [1, 1, "M", 2, 2, "M", 4, 4, 4, "M", 8, 8, 8, "M", 8, 8, 8, "M"],
    19: [1, 1, "M", 2, 2, "M", 4, 4, 4, 4, "M", 8, 8, 8, 8, "M", 8, 8, 8, 8, "M"],
}


class VGG(PooledConvNet):
    """3×3 conv + BN + ReLU stacks and five 2×2 max pools (``ceil_mode``, so 28 px gives
    28-14-7-4-2-1 and 33 px loses no border), global average pool, ``Linear(8·width, classes)``.
    Takes any ``H, W >= 1``.

    Args:
        in_channels, num_classes, image_size: as :class:`~freqlens.models.base.ZooNet` (``image_size`` is
            only recorded).
        depth: the number of weight layers, a key of :data:`CONFIGS` (11, 13, 16 or 19).
        width: the first stage's width (64 in the paper; a positive int).

    Raises:
        ModelError: invalid sizes, an unknown ``depth`` or a bad ``width``.
    """

    arch = "vgg"

    def __init__(
        self, in_channels: int = 3, num_classes: int = 10, image_size: int | tuple[int, int] = 32,
        depth: int = 11, width: int = 64,
    ) -> None:
        self.arch = f"vgg{depth}"
        super().__init__(in_channels, num_classes, image_size)
        if depth not in CONFIGS:
            raise ModelError(f"vgg: depth must be one of {sorted(CONFIGS)}, got {depth!r}")
        if isinstance(width, bool) or not isinstance(width, int) or width < 1:
            raise ModelError(f"vgg{depth}: width must be a positive int, got {width!r}")
        layers: list[nn.Module] = []
        channels = in_channels
        for item in CONFIGS[depth]:
            if item == "M":
                layers.append(nn.MaxPool2d(2, ceil_mode=True))
            else:
                out = int(item) * width
                layers += [nn.Conv2d(channels, out, 3, padding=1, bias=False), nn.BatchNorm2d(out),
                           nn.ReLU(inplace=True)]
                channels = out
        self.body = nn.Sequential(*layers)
        self._finish(nn.Linear(channels, num_classes))

    def _trunk(self, x: Tensor) -> Tensor:
        return self.body(x)
