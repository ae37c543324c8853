"""Six-layer fully convolutional network (the "FCNN" of seed 000): no linear layer at all."""

from __future__ import annotations

from torch import Tensor, nn

from freqlens.errors import ModelError
from freqlens.models.base import PooledConvNet


class FCNN(PooledConvNet):
    """Five 3×3 convolutions (widths w, w, 2w, 2w, 4w; two 2×2 max pools) and a 1×1 convolution to
    ``num_classes`` channels, followed by global average pooling.

    The last convolution is 1×1, so it commutes with the global average: the logits are
    ``classifier`` applied to the pooled ``B×4w`` map, which :meth:`forward_features` returns.
    Pools use ``ceil_mode`` so odd sizes lose no border pixel; any ``H, W >= 1`` works.

    Args:
        in_channels, num_classes, image_size: as :class:`~freqlens.models.base.ZooNet` (``image_size`` is
            only recorded).
        width: the base width ``w`` (a positive int).

    Raises:
        ModelError: invalid sizes or ``width``.
    """

    arch = "fcnn"

    def __init__(
        self, in_channels: int = 3, num_classes: int = 10, image_size: int | tuple[int, int] = 32,
        width: int = 32,
    ) -> None:
        super().__init__(in_channels, num_classes, image_size)
        if isinstance(width, bool) or not isinstance(width, int) or width < 1:
            raise ModelError(f"fcnn: width must be a positive int, got {width!r}")
        w = width

        def conv(cin: int, cout: int) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(inplace=True)]

        self.body = nn.Sequential(
            *conv(in_channels, w), *conv(w, w), nn.MaxPool2d(2, ceil_mode=True),
            *conv(w, 2 * w), *conv(2 * w, 2 * w), nn.MaxPool2d(2, ceil_mode=True),
            *conv(2 * w, 4 * w),
        )
        self._finish(nn.Conv2d(4 * w, num_classes, 1))

    def _trunk(self, x: Tensor) -> Tensor:
        return self.body(x)

    def _logits(self, x: Tensor) -> Tensor:
        # Convolution first, then the global average (the class activation maps are spatial).
        return self.pool(self.classifier(self.body(x))).flatten(1)
