"""CIFAR-10 (Krizhevsky 2009) from the official python pickle batches (``cifar-10-batches-py/``)."""

from __future__ import annotations

import codecs
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from freqlens.data.dataset import ImageDataset
from freqlens.data.download import CIFAR10_FOLDER, download_cifar10, missing_files_error
from freqlens.errors import DataError

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
CIFAR10_SPLIT_FILES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
_PIXELS = 3 * 32 * 32

# The only globals a CIFAR batch needs (numpy array reconstruction, bytes under protocol 2). Anything else
# (os.system, eval...) is refused: a pickle is code, and the batches may come from anywhere.
_RECONSTRUCT = np.zeros(1).__reduce__()[0]
_FROMBUFFER = np.zeros(1).__reduce_ex__(5)[0]
_SCALAR = np.int64(1).__reduce__()[0]
_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): codecs.encode,
}
for _module in ("numpy.core.multiarray", "numpy._core.multiarray"):
    _ALLOWED_GLOBALS[(_module, "_reconstruct")] = _RECONSTRUCT
    _ALLOWED_GLOBALS[(_module, "scalar")] = _SCALAR
for _module in ("numpy.core.numeric", "numpy._core.numeric"):
    _ALLOWED_GLOBALS[(_module, "_frombuffer")] = _FROMBUFFER


class _BatchUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing to load {module}.{name} (not part of a CIFAR batch)"
            ) from None


def read_pickle(path: Path) -> Any:
    """Unpickle a CIFAR file (``encoding="bytes"`` for the Python 2 originals); DataError if corrupt."""
    try:
        with open(path, "rb") as handle:
            return _BatchUnpickler(handle, encoding="bytes").load()
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except Exception as exc:  # UnpicklingError, EOFError, ValueError... on damaged files
        raise DataError(f"{path}: corrupt CIFAR-10 pickle ({type(exc).__name__}: {exc})") from exc


def _get(batch: dict, key: str) -> Any:
    for candidate in (key.encode(), key):
        if candidate in batch:
            return batch[candidate]
    return None


def read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One batch file -> ``(uint8 N×3×32×32, int64 N)``, shapes and label range checked."""
    batch = read_pickle(path)
    if not isinstance(batch, dict):
        raise DataError(f"{path}: not a CIFAR-10 batch (a {type(batch).__name__}, expected a dict)")
    data, labels = _get(batch, "data"), _get(batch, "labels")
    if not isinstance(data, np.ndarray) or labels is None:
        raise DataError(f"{path}: not a CIFAR-10 batch (needs 'data' array and 'labels')")
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != _PIXELS:
        raise DataError(f"{path}: 'data' must be uint8 N×{_PIXELS}, got {data.dtype} {data.shape}")
    try:
        labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    except (TypeError, ValueError, OverflowError) as exc:  # OverflowError: an int beyond 64 bits
        raise DataError(f"{path}: 'labels' are not 64-bit integers ({exc})") from exc
    if labels.shape[0] != data.shape[0]:
        raise DataError(f"{path}: {data.shape[0]} images but {labels.shape[0]} labels")
    if labels.size and (labels.min() < 0 or labels.max() >= len(CIFAR10_CLASSES)):
        raise DataError(f"{path}: labels must lie in 0..9, got {labels.min()}..{labels.max()}")
    return data.reshape(-1, 3, 32, 32), labels


def read_classes(folder: Path) -> list[str]:
    """Class names from ``batches.meta`` (the standard ten when the file is absent)."""
    meta_path = folder / "batches.meta"
    if not meta_path.is_file():
        return list(CIFAR10_CLASSES)
    meta = read_pickle(meta_path)
    names = _get(meta, "label_names") if isinstance(meta, dict) else None
    if not isinstance(names, list) or len(names) != len(CIFAR10_CLASSES):
        raise DataError(f"{meta_path}: expected 10 'label_names'")
    return [n.decode("utf-8") if isinstance(n, bytes) else str(n) for n in names]


def find_batches_folder(root: Path) -> Path | None:
    for folder in (root / CIFAR10_FOLDER, root, root / "cifar10" / CIFAR10_FOLDER):
        if (folder / "batches.meta").is_file() or any(
            (folder / f).is_file() for fs in CIFAR10_SPLIT_FILES.values() for f in fs
        ):
            return folder
    return None


def load_cifar10(
    split: str, root: str | os.PathLike, *, download: bool = False, progress: bool = False
) -> ImageDataset:
    """CIFAR-10 ``split`` from ``root`` (containing ``cifar-10-batches-py/`` or being it).

    Args:
        split: ``"train"`` (50,000 images) or ``"test"`` (10,000).
        root: the data folder.
        download: fetch the archive into ``root`` when batches are missing.
        progress: show a download progress bar.

    Returns:
        The split as an :class:`ImageDataset` (``N×3×32×32`` uint8, named ``"cifar10"``).

    Raises:
        DataError: batches missing (without ``download``) or unreadable.
    """
    root = Path(root).expanduser()
    folder = find_batches_folder(root)
    needed = CIFAR10_SPLIT_FILES[split]
    missing = needed if folder is None else [f for f in needed if not (folder / f).is_file()]
    if missing:
        if not download:
            raise missing_files_error(f"CIFAR-10 {split} batches", root, f"{', '.join(missing)} of {CIFAR10_FOLDER}/",
                                      f"{CIFAR10_FOLDER}/")
        folder = download_cifar10(root, progress=progress)
        still = [f for f in needed if not (folder / f).is_file()]
        if still:
            raise DataError(f"the downloaded CIFAR-10 archive lacks {', '.join(still)}")
    batches = [read_batch(folder / f) for f in needed]
    images = np.concatenate([b[0] for b in batches])
    labels = np.concatenate([b[1] for b in batches])
    return ImageDataset(
        torch.from_numpy(images), torch.from_numpy(labels), read_classes(folder), name="cifar10", split=split
    )
