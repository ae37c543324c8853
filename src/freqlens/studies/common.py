"""Pieces shared by the studies, the command line and the benchmarks."""

from __future__ import annotations

import torch
from torch import nn

from freqlens.data import ImageDataset, normalization_stats
from freqlens.models import build


def model_for_dataset(name: str, dataset: ImageDataset, seed: int = 0) -> nn.Module:
    """``build(name)`` sized for ``dataset`` (channels, classes, image size) with its per-channel
    normalisation inside the model, initialised from ``torch.manual_seed(seed)``."""
    mean, std = normalization_stats(dataset.images)
    torch.manual_seed(seed)
    return build(
        name,
        in_channels=dataset.images.shape[1],
        num_classes=len(dataset.classes),
        image_size=tuple(dataset.images.shape[-2:]),
        mean=mean,
        std=std,
    )
