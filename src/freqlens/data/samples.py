"""The CIFAR-10 sample shipped in the package (``demo-cifar10``): 1,000 test images, 100 per class.

Stored as ``demo_cifar10/cifar10-test-sample.npz`` (built byte for byte by
``scripts/make_demo_cifar10_sample.py``), read with ``allow_pickle=False``. Arrays:

- ``images``: uint8 ``N×3×32×32``; ``labels``: int64 ``N``; ``classes``: str ``10``;
- ``source_indices``: int64 ``N``, the position of each image in the test split of the CIFAR-10 JPEG
  archive as :func:`freqlens.data.load_dataset` orders it; ``seed``: int64 scalar of the draw;
- ``train_mean_image``: float32 ``3×32×32``, the mean image x̄ of the 50,000 CIFAR-10 training images
  (seed 000's VII needs the training set's x̄; the sample holds no training images).
"""

from __future__ import annotations

import io
import zipfile
from importlib import resources

import numpy as np
import torch

from freqlens.data.dataset import ImageDataset
from freqlens.errors import DataError

DEMO_CIFAR10_PACKAGE_DIR = "demo_cifar10"  # src/freqlens/data/demo_cifar10/, shipped as package data
DEMO_CIFAR10_FILE = "cifar10-test-sample.npz"
DEMO_CIFAR10_ARRAYS = ("images", "labels", "classes", "source_indices", "seed", "train_mean_image")

__all__ = ["DEMO_CIFAR10_ARRAYS", "DEMO_CIFAR10_FILE", "demo_cifar10_arrays", "demo_cifar10_train_mean",
           "load_demo_cifar10"]


def demo_cifar10_arrays(data: bytes | None = None) -> dict[str, np.ndarray]:
    """The arrays of the shipped CIFAR-10 sample (or of the ``.npz`` bytes ``data``), validated.

    Raises:
        DataError: the file is missing from the installed package, unreadable, or lacks an array.
    """
    where = f"the demo-cifar10 sample ({DEMO_CIFAR10_PACKAGE_DIR}/{DEMO_CIFAR10_FILE})"
    if data is None:
        resource = resources.files("freqlens.data").joinpath(DEMO_CIFAR10_PACKAGE_DIR, DEMO_CIFAR10_FILE)
        try:
            data = resource.read_bytes()
        except OSError as error:
            raise DataError(f"{where} is missing from the installed package ({error}); reinstall freqlens") from error
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise DataError(f"{where} is unreadable ({error}); reinstall freqlens") from error
    missing = [key for key in DEMO_CIFAR10_ARRAYS if key not in arrays]
    if missing:
        raise DataError(f"{where} lacks the array(s) {', '.join(missing)}; reinstall freqlens")
    return arrays


def load_demo_cifar10(split: str = "test") -> ImageDataset:
    """The 1,000 CIFAR-10 test images shipped in the package (100 per class, uint8 ``3×32×32``).

    Args:
        split: must be ``"test"``: the sample holds no training images.

    Raises:
        DataError: for any other split (train on ``cifar10`` or the CIFAR-10 image archive instead).
    """
    if split != "test":
        raise DataError(
            f"the demo-cifar10 sample holds only 1,000 CIFAR-10 test images (split 'test'), no {split!r} split; "
            f"to train, use the full dataset (cifar10 or the CIFAR-10 image archive)"
        )
    arrays = demo_cifar10_arrays()
    images = torch.from_numpy(np.ascontiguousarray(arrays["images"]))
    labels = torch.from_numpy(arrays["labels"].astype(np.int64))
    classes = [str(name) for name in arrays["classes"].tolist()]
    return ImageDataset(images, labels, classes, name="demo-cifar10", split="test")


def demo_cifar10_train_mean() -> torch.Tensor:
    """x̄ of the CIFAR-10 training split (float32 ``3×32×32`` in [0, 1]), stored with the sample: what
    :func:`freqlens.data.mean_image` gives on the 50,000 training images of the JPEG archive."""
    return torch.from_numpy(np.ascontiguousarray(demo_cifar10_arrays()["train_mean_image"], dtype=np.float32))
