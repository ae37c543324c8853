"""Residual networks (He et al. 2016), CIFAR variant: 3×3 stem, no max pool."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from freqlens.models.base import PooledConvNet, check_stages


class BasicBlock(nn.Module):
    """Two 3×3 conv-BN layers with an identity (or 1×1 conv-BN projection) shortcut.

    Args:
        in_channels: input channels.
        out_channels: output channels (a projection shortcut when they differ from ``in_channels``).
        stride: the stride of the first convolution (and of the projection; ≠ 1 implies a projection).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False), nn.BatchNorm2d(out_channels)
            )

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class ResNet(PooledConvNet):
    """``conv3×3 -> BN -> ReLU``, then one stage of :class:`BasicBlock` per entry of ``widths``
    (stride 1 for the first stage, 2 after), global average pool, ``Linear``.

    ``resnet18`` = widths (64, 128, 256, 512), blocks (2, 2, 2, 2) (11.2 M parameters);
    ``resnet_small`` = widths (32, 64, 128), blocks (1, 1, 2) (about 0.6 M). Takes any ``H, W >= 1``.

    Args:
        in_channels, num_classes, image_size: as :class:`~freqlens.models.base.ZooNet` (``image_size`` is
            only recorded).
        widths: channels per stage (positive ints).
        blocks: blocks per stage, as long as ``widths`` (positive ints).

    Raises:
        ModelError: invalid sizes, or ``widths`` / ``blocks`` of different lengths or holding
            non-positive values.
    """

    arch = "resnet"

    def __init__(
        self, in_channels: int = 3, num_classes: int = 10, image_size: int | tuple[int, int] = 32,
        widths: Sequence[int] = (64, 128, 256, 512), blocks: Sequence[int] = (2, 2, 2, 2),
    ) -> None:
        super().__init__(in_channels, num_classes, image_size)
        widths, blocks = check_stages("resnet", widths=widths, blocks=blocks)
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=False), nn.BatchNorm2d(widths[0]),
            nn.ReLU(inplace=True),
        )
        stages: list[nn.Module] = []
        channels = widths[0]
        for index, (width, count) in enumerate(zip(widths, blocks)):
            stride = 1 if index == 0 else 2
            stage = [BasicBlock(channels, width, stride)] + [BasicBlock(width, width) for _ in range(count - 1)]
            stages.append(nn.Sequential(*stage))
            channels = width
        self.stages = nn.Sequential(*stages)
        self._finish(nn.Linear(channels, num_classes))

    def _trunk(self, x: Tensor) -> Tensor:
        return self.stages(self.stem(x))
