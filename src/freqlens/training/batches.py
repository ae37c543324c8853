"""In-memory batching for the training loop (no DataLoader, no workers).

Any supported dataset becomes a :class:`TensorData`: the whole image tensor (``uint8`` or ``float`` in
[0, 1], ``N×C×H×W``, on the CPU) and ``int64`` labels. A batch is one index into that tensor, moved to
the device and (for ``uint8``) converted to float / 255 on the fly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from freqlens.data import ImageDataset
from freqlens.errors import DataError


@dataclass(frozen=True)
class TensorData:
    """A training set held as two tensors.

    Attributes:
        images: ``N×C×H×W`` ``uint8`` or ``float32`` in [0, 1].
        labels: ``int64`` ``N``.
    """

    images: Tensor
    labels: Tensor

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def image_shape(self) -> tuple[int, ...]:
        return tuple(self.images.shape[1:])

    def batch(self, index: Tensor | slice, device: torch.device) -> tuple[Tensor, Tensor]:
        """One batch on ``device``.

        Args:
            index: the items' indices (a ``LongTensor[B]`` or a slice).
            device: where the batch goes.

        Returns:
            ``(x, y)``: float ``B×C×H×W`` in [0, 1] and ``int64`` ``B`` labels on ``device``.
        """
        images = self.images[index].to(device, non_blocking=True)
        labels = self.labels[index].to(device, non_blocking=True)
        if images.dtype == torch.uint8:
            images = images.to(torch.float32).div_(255.0)
        return images, labels


def _image_tensor(image: Any, where: str) -> Tensor:
    if isinstance(image, Tensor):
        tensor = image
    elif isinstance(image, np.ndarray):
        tensor = torch.from_numpy(np.ascontiguousarray(image))
    else:
        raise DataError(
            f"{where} is a {type(image).__name__}; training needs tensor (or numpy) images, C×H×W uint8 "
            "or float in [0, 1]"
        )
    if tensor.dim() == 2:
        tensor = tensor.unsqueeze(0)
    return tensor


def _label_int(label: Any, where: str) -> int:
    if isinstance(label, Tensor) and label.numel() == 1 or isinstance(label, np.ndarray) and label.size == 1:
        label = label.item()
    if isinstance(label, (bool, float)) or not isinstance(label, (int, np.integer)):
        raise DataError(f"{where} must be an integer class index, got {label!r}")
    return int(label)


def _stack(dataset: Sequence, what: str) -> tuple[Tensor, Tensor]:
    """Stack the ``(image, label)`` items of a map-style dataset once."""
    images: list[Tensor] = []
    labels: list[int] = []
    for i in range(len(dataset)):
        item = dataset[i]
        if not isinstance(item, (tuple, list)) or len(item) < 2:
            raise DataError(f"{what}[{i}] must be an (image, label) pair, got {type(item).__name__}")
        images.append(_image_tensor(item[0], f"{what}[{i}] image"))
        labels.append(_label_int(item[1], f"{what}[{i}] label"))
    shapes = {tuple(image.shape) for image in images}
    if len(shapes) > 1:
        raise DataError(f"{what} holds images of different shapes: {sorted(shapes)[:4]}")
    dtypes = {image.dtype for image in images}
    if len(dtypes) > 1:
        raise DataError(f"{what} holds images of different dtypes: {sorted(map(str, dtypes))}")
    return torch.stack(images), torch.tensor(labels, dtype=torch.int64)


def as_tensor_data(dataset: Any, what: str = "dataset") -> TensorData:
    """A :class:`TensorData` (on the CPU) from any of the accepted dataset forms.

    Args:
        dataset: an :class:`~freqlens.data.ImageDataset`, an ``(images, labels)`` pair of tensors, or any
            map-style dataset of ``(image, label)`` items.
        what: how to name the dataset in messages.

    Returns:
        The :class:`TensorData` (float images as float32, labels as int64).

    Raises:
        DataError: when it is empty, has the wrong shape or dtype, or float pixels outside [0, 1].
    """
    if isinstance(dataset, ImageDataset):
        images, labels = dataset.images, dataset.labels
    elif isinstance(dataset, (tuple, list)) and len(dataset) == 2 and all(isinstance(t, Tensor) for t in dataset):
        images, labels = dataset
    elif hasattr(dataset, "__len__") and hasattr(dataset, "__getitem__"):
        if len(dataset) == 0:
            raise DataError(f"{what} is empty")
        images, labels = _stack(dataset, what)
    else:
        raise DataError(
            f"{what} must be an ImageDataset, an (images, labels) pair of tensors or a dataset of "
            f"(image, label) items; got {type(dataset).__name__}"
        )
    images = images.detach().cpu()
    labels = torch.as_tensor(labels).detach().cpu()
    if images.dim() != 4:
        raise DataError(f"{what}: images must be N×C×H×W, got shape {tuple(images.shape)}")
    if images.shape[0] == 0:
        raise DataError(f"{what} is empty")
    if labels.dim() != 1 or labels.shape[0] != images.shape[0]:
        raise DataError(f"{what}: {images.shape[0]} images but labels of shape {tuple(labels.shape)}")
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise DataError(f"{what}: labels must be integers, got {labels.dtype}")
    labels = labels.to(torch.int64)
    if int(labels.min()) < 0:
        raise DataError(f"{what}: labels must be >= 0, got {int(labels.min())}")
    if images.is_floating_point():
        images = images.to(torch.float32)
        if not bool(torch.isfinite(images).all()):
            raise DataError(f"{what}: images contain NaN or infinite values")
        low, high = float(images.min()), float(images.max())
        if low < 0.0 or high > 1.0:
            raise DataError(
                f"{what}: float images must have pixels in [0, 1], got values in [{low:.4g}, {high:.4g}] "
                "(uint8 images are divided by 255 automatically)"
            )
    elif images.dtype != torch.uint8:
        raise DataError(f"{what}: images must be uint8 (0..255) or float in [0, 1], got {images.dtype}")
    return TensorData(images.contiguous(), labels.contiguous())


def split_batches(order: Tensor, batch_size: int, max_batches: int | None = None) -> list[Tensor]:
    """Consecutive chunks of ``batch_size`` indices of ``order``.

    Args:
        order: the indices, in the order of the epoch.
        batch_size: indices per chunk.
        max_batches: the most chunks kept (the first ones; ``None``: all).

    Returns:
        The chunks; a last chunk of a single index is merged into the previous one (batch norm cannot
            train on one image).
    """
    chunks = list(torch.split(order, batch_size))
    if len(chunks) > 1 and chunks[-1].numel() == 1:
        chunks[-2:] = [torch.cat(chunks[-2:])]
    return chunks if max_batches is None else chunks[:max_batches]


__all__ = ["TensorData", "as_tensor_data", "split_batches"]
