"""A small ConvNeXt (Liu et al. 2022) adapted to 28/32-pixel images."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from freqlens.errors import ModelError
from freqlens.models.base import LayerNorm2d, ZooNet, check_stages


class ConvNeXtBlock(nn.Module):
    """``x + γ · PW2(GELU(PW1(LN(DW7×7(x)))))`` with a per-channel layer scale ``γ``.

    Args:
        dim: channels ``C`` (in and out; the pointwise MLP is ``C -> 4C -> C``).
        layer_scale: the initial value of every entry of ``γ``.
    """

    def __init__(self, dim: int, layer_scale: float) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(torch.full((dim,), float(layer_scale)))

    def forward(self, x: Tensor) -> Tensor:
        y = self.dwconv(x).permute(0, 2, 3, 1)  # B×H×W×C
        y = self.pwconv2(self.act(self.pwconv1(self.norm(y)))) * self.gamma
        return x + y.permute(0, 3, 1, 2)


class ConvNeXtTiny(ZooNet):
    """Patchify stem (``stem_patch``×``stem_patch`` conv, stride ``stem_patch``, + LayerNorm), stages
    of :class:`ConvNeXtBlock` separated by ``LN + 2×2 stride-2 conv`` downsampling, global average
    pool, LayerNorm, ``Linear``. Default dims (32, 64, 128), depths (2, 2, 2): 32 px -> 16, 8, 4.
    Takes any ``H, W >= stem_patch · 2**(stages - 1)`` (8 by default).

    Args:
        in_channels, num_classes, image_size: as :class:`~freqlens.models.base.ZooNet` (``image_size`` is
            only recorded).
        dims: channels per stage (positive ints).
        depths: blocks per stage, as long as ``dims`` (positive ints).
        stem_patch: the stem's patch size and stride (a positive int).
        layer_scale: the initial layer scale ``γ`` of every block (> 0).

    Raises:
        ModelError: invalid sizes, ``dims`` / ``depths`` of different lengths or holding non-positive
            values, a bad ``stem_patch`` or a non-positive ``layer_scale``.
    """

    arch = "convnext_tiny"

    def __init__(
        self, in_channels: int = 3, num_classes: int = 10, image_size: int | tuple[int, int] = 32,
        dims: Sequence[int] = (32, 64, 128), depths: Sequence[int] = (2, 2, 2), stem_patch: int = 2,
        layer_scale: float = 1e-6,
    ) -> None:
        super().__init__(in_channels, num_classes, image_size)
        dims, depths = check_stages("convnext_tiny", dims=dims, depths=depths)
        if isinstance(stem_patch, bool) or not isinstance(stem_patch, int) or stem_patch < 1:
            raise ModelError(f"convnext_tiny: stem_patch must be a positive int, got {stem_patch!r}")
        if not isinstance(layer_scale, (int, float)) or layer_scale <= 0:
            raise ModelError(f"convnext_tiny: layer_scale must be positive, got {layer_scale!r}")
        self.stem = nn.Sequential(nn.Conv2d(in_channels, dims[0], stem_patch, stride=stem_patch),
                                  LayerNorm2d(dims[0], eps=1e-6))
        self.downsample = nn.ModuleList(
            nn.Sequential(LayerNorm2d(dims[i - 1], eps=1e-6), nn.Conv2d(dims[i - 1], dims[i], 2, stride=2))
            for i in range(1, len(dims))
        )
        self.stages = nn.ModuleList(
            nn.Sequential(*[ConvNeXtBlock(dim, layer_scale) for _ in range(depth)])
            for dim, depth in zip(dims, depths)
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.norm = nn.LayerNorm(dims[-1], eps=1e-6)
        self.classifier = nn.Linear(dims[-1], num_classes)
        self.min_size = stem_patch * 2 ** (len(dims) - 1)
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.trunc_normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)

    def _features(self, x: Tensor) -> Tensor:
        x = self.stages[0](self.stem(x))
        for down, stage in zip(self.downsample, self.stages[1:]):
            x = stage(down(x))
        return self.norm(self.pool(x).flatten(1))
