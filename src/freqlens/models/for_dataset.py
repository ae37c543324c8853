"""A zoo model sized for a dataset: channels, classes and image size read from the dataset, its per-channel
normalisation inside the model."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import torch
from torch import Tensor, nn

from freqlens.models.registry import build

__all__ = ["LabelledImages", "model_for_dataset"]


class LabelledImages(Protocol):
    """What :func:`model_for_dataset` reads of a dataset (e.g. a :class:`freqlens.data.ImageDataset`)."""

    images: Tensor  # N×C×H×W
    classes: Sequence[str]


def model_for_dataset(name: str, dataset: LabelledImages, mean: Sequence[float], std: Sequence[float],
                      seed: int = 0) -> nn.Module:
    """``build(name)`` sized for ``dataset``, initialised from ``torch.manual_seed(seed)``.

    Args:
        name: A model name of :func:`~freqlens.models.build`.
        dataset: Gives the number of channels, the image size (``dataset.images``, ``N×C×H×W``) and the
            number of classes (``dataset.classes``).
        mean: Per-channel mean of the training images in [0, 1] units (e.g. the first value of
            :func:`freqlens.data.normalization_stats`), subtracted inside the model.
        std: Their per-channel standard deviation, divided inside the model.
        seed: Seeds torch's global RNG just before the weights are drawn.

    Returns:
        The model, taking ``B×C×H×W`` pixels in [0, 1].
    """
    torch.manual_seed(seed)
    return build(
        name,
        in_channels=dataset.images.shape[1],
        num_classes=len(dataset.classes),
        image_size=tuple(dataset.images.shape[-2:]),
        mean=mean,
        std=std,
    )
