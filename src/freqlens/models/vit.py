"""A tiny Vision Transformer (Dosovitskiy et al. 2021) for 28/32-pixel images."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from freqlens.errors import ModelError
from freqlens.models.base import ZooNet


class Attention(nn.Module):
    """Multi-head self-attention on ``B×N×D`` tokens.

    Args:
        dim: the token dimension ``D`` (a multiple of ``heads``).
        heads: the number of attention heads.
    """

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, tokens: Tensor) -> Tensor:
        batch, count, dim = tokens.shape
        qkv = self.qkv(tokens).reshape(batch, count, 3, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
        return self.proj(out.transpose(1, 2).reshape(batch, count, dim))


class TransformerBlock(nn.Module):
    """Pre-norm block: ``t + attn(LN(t))``, then ``t + MLP(LN(t))``.

    Args:
        dim: the token dimension ``D``.
        heads: the number of attention heads.
        mlp_ratio: the MLP's hidden width ÷ ``D`` (rounded, at least 1 unit).
        dropout: the dropout probability in the MLP.
    """

    def __init__(self, dim: int, heads: int, mlp_ratio: float, dropout: float) -> None:
        super().__init__()
        hidden = max(1, round(dim * mlp_ratio))
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(
            nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, dim), nn.Dropout(dropout)
        )

    def forward(self, tokens: Tensor) -> Tensor:
        tokens = tokens + self.attn(self.norm1(tokens))
        return tokens + self.mlp(self.norm2(tokens))


class ViTTiny(ZooNet):
    """Patch embedding (a ``patch×patch`` convolution with stride ``patch``), learned position
    embeddings, ``depth`` pre-norm transformer blocks, final LayerNorm, and a linear head on the class
    token (``pool="cls"``) or on the mean token (``pool="mean"``).

    Takes exactly ``image_size``; sizes that are not multiples of ``patch_size`` are zero-padded at the
    bottom/right to the next multiple (so a ViT built for 33×33 sees a 9×9 patch grid).

    Args:
        in_channels: input channels ``C``.
        num_classes: output logits ``K``.
        image_size: the input size, an int or ``(H, W)`` (fixed: it sets the position embeddings).
        patch_size: the patch side in pixels (a positive int).
        dim: the token dimension (a positive multiple of ``heads``).
        depth: the number of transformer blocks.
        heads: the number of attention heads.
        mlp_ratio: the MLP's hidden width ÷ ``dim`` (> 0).
        pool: ``"cls"`` (class token) or ``"mean"`` (mean token).
        dropout: the dropout probability in the MLPs, in [0, 1).

    Raises:
        ModelError: invalid sizes or any argument out of its range.
    """

    arch = "vit_tiny"
    fixed_size = True

    def __init__(
        self, in_channels: int = 3, num_classes: int = 10, image_size: int | tuple[int, int] = 32,
        patch_size: int = 4, dim: int = 128, depth: int = 6, heads: int = 4, mlp_ratio: float = 2.0,
        pool: str = "cls", dropout: float = 0.0,
    ) -> None:
        super().__init__(in_channels, num_classes, image_size)
        for key, value in (("patch_size", patch_size), ("dim", dim), ("depth", depth), ("heads", heads)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ModelError(f"vit_tiny: {key} must be a positive int, got {value!r}")
        if dim % heads:
            raise ModelError(f"vit_tiny: dim ({dim}) must be a multiple of heads ({heads})")
        if pool not in ("cls", "mean"):
            raise ModelError(f"vit_tiny: pool must be 'cls' or 'mean', got {pool!r}")
        if not (isinstance(mlp_ratio, (int, float)) and mlp_ratio > 0):
            raise ModelError(f"vit_tiny: mlp_ratio must be positive, got {mlp_ratio!r}")
        if not (isinstance(dropout, (int, float)) and 0.0 <= dropout < 1.0):
            raise ModelError(f"vit_tiny: dropout must be in [0, 1), got {dropout!r}")
        self.patch_size = patch_size
        self.pool_mode = pool
        height, width = self.image_size
        self.grid = (math.ceil(height / patch_size), math.ceil(width / patch_size))
        tokens = self.grid[0] * self.grid[1] + (pool == "cls")
        self.patch_embed = nn.Conv2d(in_channels, dim, patch_size, stride=patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim)) if pool == "cls" else None
        self.pos_embed = nn.Parameter(torch.zeros(1, tokens, dim))
        self.blocks = nn.Sequential(*[TransformerBlock(dim, heads, float(mlp_ratio), float(dropout))
                                      for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.classifier = nn.Linear(dim, num_classes)
        self._init()

    def _init(self) -> None:
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        if self.cls_token is not None:
            nn.init.trunc_normal_(self.cls_token, std=0.02)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)

    def _features(self, x: Tensor) -> Tensor:
        pad_h = -x.shape[-2] % self.patch_size
        pad_w = -x.shape[-1] % self.patch_size
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h))
        tokens = self.patch_embed(x).flatten(2).transpose(1, 2)  # B×N×D
        if self.cls_token is not None:
            tokens = torch.cat([self.cls_token.expand(tokens.shape[0], -1, -1), tokens], dim=1)
        tokens = self.norm(self.blocks(tokens + self.pos_embed))
        return tokens[:, 0] if self.cls_token is not None else tokens.mean(dim=1)
