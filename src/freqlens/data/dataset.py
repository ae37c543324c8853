"""In-memory image dataset: uint8 images ``N×C×H×W`` + int64 labels + class names."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from freqlens.errors import DataError

IndexLike = Sequence[int] | torch.Tensor | np.ndarray | slice


class ImageDataset(Dataset):
    """A whole image dataset held in memory.

    ``images``: contiguous ``uint8`` tensor ``N×C×H×W``; ``labels``: ``int64`` tensor ``N`` with values in
    ``[0, len(classes))``; ``classes``: class names (index = label). ``dataset[i]`` is
    ``(uint8 C×H×W tensor, int)``; :meth:`float_images` gives a batch in ``[0, 1]`` (the convention of
    every freqlens model, attack and explainer).

    Args:
        images: contiguous ``uint8`` tensor ``N×C×H×W`` (``C ≥ 1``).
        labels: ``N`` integer labels in ``[0, len(classes))`` (tensor, array or sequence; stored as
            ``int64``).
        classes: the distinct class names (index = label).
        name: the dataset's name (e.g. ``"mnist"``).
        split: the split's name (e.g. ``"train"``).

    Raises:
        DataError: a wrong dtype or shape, non-integer or out-of-range labels, a length mismatch, no
            class or duplicate class names.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor | np.ndarray | Sequence[int],
        classes: Sequence[str],
        name: str = "dataset",
        split: str = "train",
    ) -> None:
        if not isinstance(images, torch.Tensor):
            raise DataError(f"images must be a torch.Tensor, got {type(images).__name__}")
        if images.dtype != torch.uint8:
            raise DataError(f"images must be uint8 (0..255), got {images.dtype}")
        if images.dim() != 4:
            raise DataError(f"images must be N×C×H×W (4-D), got shape {tuple(images.shape)}")
        if images.shape[1] < 1:
            raise DataError(f"images need at least one channel, got shape {tuple(images.shape)}")
        labels = torch.as_tensor(np.asarray(labels) if not isinstance(labels, torch.Tensor) else labels)
        if labels.dim() != 1:
            raise DataError(f"labels must be 1-D, got shape {tuple(labels.shape)}")
        if labels.numel() and (
            labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool
        ):
            raise DataError(f"labels must be integers, got {labels.dtype}")
        labels = labels.to(torch.int64)
        if labels.shape[0] != images.shape[0]:
            raise DataError(f"{images.shape[0]} images but {labels.shape[0]} labels")
        classes = [str(c) for c in classes]
        if not classes:
            raise DataError("a dataset needs at least one class")
        if len(set(classes)) != len(classes):
            raise DataError(f"duplicate class names in {classes}")
        if labels.numel():
            low, high = int(labels.min()), int(labels.max())
            if low < 0 or high >= len(classes):
                raise DataError(
                    f"labels must lie in [0, {len(classes) - 1}] ({len(classes)} classes), "
                    f"got values in [{low}, {high}]"
                )
        self.images = images.contiguous()
        self.labels = labels.contiguous()
        self.classes = classes
        self.name = str(name)
        self.split = str(split)

    # -- torch Dataset protocol ---------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.images[index], int(self.labels[index])

    # -- helpers ------------------------------------------------------------------------------------------
    @property
    def num_channels(self) -> int:
        return int(self.images.shape[1])

    @property
    def image_size(self) -> tuple[int, int]:
        """``(H, W)``."""
        return int(self.images.shape[2]), int(self.images.shape[3])

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def _as_index(self, indices: IndexLike | None) -> torch.Tensor | slice:
        if indices is None:
            return slice(None)
        if isinstance(indices, slice):
            return indices
        index = torch.as_tensor(np.asarray(indices) if not isinstance(indices, torch.Tensor) else indices)
        index = index.to("cpu")
        if index.dtype == torch.bool:
            if index.shape != (len(self),):
                raise IndexError(
                    f"boolean mask of shape {tuple(index.shape)} for a dataset of {len(self)} items"
                )
            return index.nonzero().flatten()
        if index.numel() == 0:
            return torch.zeros(0, dtype=torch.int64)
        if index.is_floating_point() or index.dim() > 1:
            raise IndexError(
                f"indices must be a 1-D sequence of integers, got {index.dtype} {tuple(index.shape)}"
            )
        index = index.to(torch.int64).flatten()
        n = len(self)
        if int(index.min()) < -n or int(index.max()) >= n:
            raise IndexError(
                f"index out of range for a dataset of {n} items "
                f"(got values in [{int(index.min())}, {int(index.max())}])"
            )
        return index

    def subset(self, indices: IndexLike) -> ImageDataset:
        """A new dataset with the items ``indices`` (ints, bool mask or slice), same classes."""
        index = self._as_index(indices)
        return ImageDataset(self.images[index], self.labels[index], self.classes, self.name, self.split)

    def float_images(self, indices: IndexLike | None = None) -> torch.Tensor:
        """Images (all, or ``indices``) as ``float32`` ``B×C×H×W`` in ``[0, 1]``."""
        return self.images[self._as_index(indices)].to(torch.float32).div_(255.0)

    def class_counts(self) -> torch.Tensor:
        """Number of images per class, ``int64`` tensor of length ``len(classes)``."""
        return torch.bincount(self.labels, minlength=len(self.classes))

    def __repr__(self) -> str:
        c, (h, w) = self.num_channels, self.image_size
        shown = ", ".join(self.classes[:10]) + (", ..." if len(self.classes) > 10 else "")
        return (
            f"ImageDataset(name={self.name!r}, split={self.split!r}, n={len(self)}, "
            f"image={c}×{h}×{w} uint8, classes={len(self.classes)} [{shown}])"
        )


def normalization_stats(images: torch.Tensor, chunk: int = 4096) -> tuple[list[float], list[float]]:
    """Per-channel mean and standard deviation of a uint8 ``N×C×H×W`` tensor, in [0, 1] units.

    Streams over chunks of ``chunk`` images in float64 so a 50,000-image split needs no float copy.

    Args:
        images: ``uint8`` images ``N×C×H×W``.
        chunk: images per chunk.

    Returns:
        ``(mean, std)``, ``C`` floats each (the std floored at ``1e-6``).

    Raises:
        DataError: ``images`` is not 4-D.
    """
    if images.dim() != 4:
        raise DataError(f"expected N×C×H×W images, got shape {tuple(images.shape)}")
    channels = images.shape[1]
    total = torch.zeros(channels, dtype=torch.float64)
    total_sq = torch.zeros(channels, dtype=torch.float64)
    for start in range(0, images.shape[0], chunk):
        part = images[start : start + chunk].transpose(0, 1).reshape(channels, -1).double() / 255.0
        total += part.sum(dim=1)
        total_sq += (part * part).sum(dim=1)
    count = images.shape[0] * images.shape[2] * images.shape[3]
    mean = total / count
    std = (total_sq / count - mean * mean).clamp_min(0).sqrt().clamp_min(1e-6)
    return mean.tolist(), std.tolist()


def mean_image(images: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    """The mean image x̄ of a batch (x̄ of VII, seed 000).

    Args:
        images: ``N×C×H×W`` images, ``uint8`` or float in [0, 1] (``N ≥ 1``).
        chunk: images per chunk, summed in float64.

    Returns:
        x̄, ``C×H×W`` float32 in [0, 1].

    Raises:
        DataError: ``images`` is not a non-empty 4-D batch.
    """
    if images.dim() != 4 or images.shape[0] == 0:
        raise DataError(f"expected a non-empty N×C×H×W batch of images, got shape {tuple(images.shape)}")
    total = torch.zeros(images.shape[1:], dtype=torch.float64)
    for start in range(0, images.shape[0], chunk):
        part = images[start : start + chunk]
        if part.dtype == torch.uint8:
            part = part.to(torch.float32).div_(255.0)
        total += part.double().sum(dim=0)
    return (total / images.shape[0]).float()

