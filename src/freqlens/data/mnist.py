"""MNIST (LeCun et al. 1998) from its idx files, gzipped or plain; the shipped demo sample."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from freqlens.data.dataset import ImageDataset
from freqlens.data.download import MNIST_SPLIT_FILES, download_mnist, missing_files_error
from freqlens.data.idx import IMAGES_MAGIC, LABELS_MAGIC, read_idx
from freqlens.errors import DataError

MNIST_CLASSES = [str(digit) for digit in range(10)]
DEMO_PACKAGE_DIR = "demo"  # src/freqlens/data/demo/, shipped as package data


def _stems(split: str) -> tuple[str, str]:
    images, labels = MNIST_SPLIT_FILES[split]
    return images.removesuffix(".gz"), labels.removesuffix(".gz")


def dataset_from_idx(
    images_path: str | os.PathLike,
    labels_path: str | os.PathLike,
    *,
    name: str,
    split: str,
    images_data: bytes | None = None,
    labels_data: bytes | None = None,
    classes: list[str] | None = None,
) -> ImageDataset:
    """An ImageDataset from an idx3 image file and an idx1 label file (``N×1×H×W`` uint8).

    Args:
        images_path: the idx3 images file (``.gz`` or plain; named in messages).
        labels_path: the idx1 labels file (``.gz`` or plain; named in messages).
        name: the dataset's name.
        split: the split's name.
        images_data: the images file's raw bytes, already read (``None``: read ``images_path``).
        labels_data: the labels file's raw bytes, already read (``None``: read ``labels_path``).
        classes: the class names (``None``: the digits ``"0"``–``"9"``).

    Returns:
        The :class:`ImageDataset`.

    Raises:
        DataError: malformed files, a count mismatch, or a label out of range.
    """
    images = read_idx(images_path, expected_magic=IMAGES_MAGIC, data=images_data)
    labels = read_idx(labels_path, expected_magic=LABELS_MAGIC, data=labels_data)
    if images.shape[0] != labels.shape[0]:
        raise DataError(
            f"{images_path} holds {images.shape[0]} images but {labels_path} holds {labels.shape[0]} labels"
        )
    classes = classes or MNIST_CLASSES
    if labels.max() >= len(classes):
        raise DataError(f"{labels_path}: label {int(labels.max())} out of range for {len(classes)} classes")
    images_t = torch.from_numpy(np.array(images[:, None], copy=True))  # writable, contiguous N×1×H×W
    labels_t = torch.from_numpy(labels.astype(np.int64))
    return ImageDataset(images_t, labels_t, classes, name=name, split=split)


def _find(folders: list[Path], stem: str) -> Path | None:
    for folder in folders:
        for filename in (stem, stem + ".gz"):
            if (folder / filename).is_file():
                return folder / filename
    return None


def load_mnist(
    split: str, root: str | os.PathLike, *, download: bool = False, progress: bool = False
) -> ImageDataset:
    """MNIST ``split`` from ``root``.

    Args:
        split: ``"train"`` (60,000 images) or ``"test"`` (10,000).
        root: the folder with the idx files (``root/mnist`` and the torchvision layout
            ``root/MNIST/raw`` are found too).
        download: fetch missing files into ``root``.
        progress: show download progress bars.

    Returns:
        The split as an :class:`ImageDataset` (``N×1×28×28`` uint8, named ``"mnist"``).

    Raises:
        DataError: files missing (without ``download``) or malformed.
    """
    root = Path(root).expanduser()
    folders = [root, root / "mnist", root / "MNIST" / "raw"]
    images_stem, labels_stem = _stems(split)
    images, labels = _find(folders, images_stem), _find(folders, labels_stem)
    if images is None or labels is None:
        if not download:
            missing = ", ".join(
                s + "[.gz]" for s, f in ((images_stem, images), (labels_stem, labels)) if f is None
            )
            raise missing_files_error(f"MNIST {split} files", root, missing, "them")
        download_mnist(root, [split], progress=progress)
        images, labels = root / (images_stem + ".gz"), root / (labels_stem + ".gz")
    return dataset_from_idx(images, labels, name="mnist", split=split)


def demo_file_names(split: str) -> tuple[str, str]:
    """Names of the two idx ``.gz`` files of the shipped demo sample for ``split``."""
    return MNIST_SPLIT_FILES[split]


def load_demo(split: str) -> ImageDataset:
    """The MNIST sample shipped in the package: 2,000 train / 500 test images, 10 balanced classes."""
    folder = resources.files("freqlens.data").joinpath(DEMO_PACKAGE_DIR)
    payload = []
    for filename in demo_file_names(split):
        resource = folder.joinpath(filename)
        try:
            payload.append(resource.read_bytes())
        except OSError as exc:
            raise DataError(
                f"the demo sample file {filename} is missing from the installed package "
                f"({exc}); reinstall freqlens"
            ) from exc
    return dataset_from_idx(
        f"demo/{MNIST_SPLIT_FILES[split][0]}",
        f"demo/{MNIST_SPLIT_FILES[split][1]}",
        name="demo-mnist",
        split=split,
        images_data=payload[0],
        labels_data=payload[1],
    )
