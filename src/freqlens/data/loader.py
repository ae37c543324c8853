"""``load_dataset``: one entry point for MNIST, CIFAR-10, the demo sample and image folders/archives."""

from __future__ import annotations

import os
from pathlib import Path

from freqlens.data.cifar import load_cifar10
from freqlens.data.dataset import ImageDataset
from freqlens.data.folder import load_image_folder
from freqlens.data.mnist import load_demo, load_mnist
from freqlens.data.samples import load_demo_cifar10
from freqlens.errors import DataError

#: Datasets known by name (anything else must be a path to an image folder or archive).
DATASET_NAMES = ("mnist", "cifar10", "demo", "demo-mnist", "demo-cifar10")
#: The shipped sample that the name ``demo`` stands for (one line to switch to ``"demo-cifar10"``).
DEMO_ALIAS = "demo-cifar10"
STANDARD_SPLITS = ("train", "test")


def default_data_root(name: str) -> Path:
    """``$FREQLENS_DATA/<name>``, else ``~/.cache/freqlens/data/<name>``."""
    env = os.environ.get("FREQLENS_DATA")
    base = Path(env).expanduser() if env else Path.home() / ".cache" / "freqlens" / "data"
    return base / name


def load_dataset(
    name_or_path: str | os.PathLike,
    split: str = "train",
    root: str | os.PathLike | None = None,
    download: bool = False,
    *,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = False,
) -> ImageDataset:
    """Load a whole dataset split into memory as an :class:`ImageDataset` (uint8 ``N×C×H×W``).

    Args:
        name_or_path: ``"mnist"`` (idx files in ``root``), ``"cifar10"`` (python batches in ``root``),
            ``"demo-mnist"`` (the MNIST sample shipped in the package: 2,000 train / 500 test digits),
            ``"demo-cifar10"`` (the 1,000 CIFAR-10 test images shipped in the package; split ``test``
            only), ``"demo"`` (the sample named by :data:`DEMO_ALIAS`), or a path to an image folder
            ``<root>/<split>/<class>/*.png|jpg|jpeg|bmp`` given as a directory or a
            ``.tar``/``.tar.gz``/``.tgz`` archive (decoded once, then read from the cache in
            ``cache_dir``); a relative path is also looked up under ``root``.
        split: the split's name (``"train"`` or ``"test"`` for the named datasets).
        root: the data folder of a named dataset; defaults to ``$FREQLENS_DATA/<name>`` or
            ``~/.cache/freqlens/data/<name>``.
        download: fetch missing MNIST / CIFAR-10 files from the official sources (checksummed).
        cache_dir: the cache of decoded archives, default ``$FREQLENS_CACHE`` or ``~/.cache/freqlens``.
        progress: tqdm bars on stderr for downloads and archive decoding (off by default, as everywhere
            in the library; the commands turn them on unless ``--quiet``).

    Returns:
        The split as an :class:`ImageDataset`.

    Raises:
        DataError: every user error (unknown name, missing or corrupt file, bad split).
    """
    if not isinstance(split, str) or not split:
        raise DataError(f"split must be a non-empty string, got {split!r}")
    key = name_or_path.strip().lower() if isinstance(name_or_path, str) else None
    if key in DATASET_NAMES:
        if split not in STANDARD_SPLITS:
            raise DataError(f"unknown split {split!r} for {key}; choose one of {', '.join(STANDARD_SPLITS)}")
        key = DEMO_ALIAS if key == "demo" else key
        if key == "demo-mnist":
            return load_demo(split)
        if key == "demo-cifar10":
            return load_demo_cifar10(split)
        data_root = Path(root).expanduser() if root is not None else default_data_root(key)
        if key == "mnist":
            return load_mnist(split, data_root, download=download, progress=progress)
        return load_cifar10(split, data_root, download=download, progress=progress)
    path = Path(name_or_path).expanduser()
    if root is not None and not path.is_absolute() and not path.exists():
        path = Path(root).expanduser() / path
    if path.exists():
        return load_image_folder(path, split, cache_dir=cache_dir, progress=progress)
    text = str(name_or_path)
    if (
        not isinstance(name_or_path, str)
        or os.sep in text
        or "/" in text
        or text.lower().endswith((".tar", ".tar.gz", ".tgz"))
    ):
        raise DataError(
            f"{path}: no such file or folder (expected an image folder <root>/<split>/<class>/"
            f"*.png|jpg or a .tar/.tar.gz archive of one)"
        )
    raise DataError(
        f"unknown dataset {str(name_or_path)!r}: not one of {', '.join(DATASET_NAMES)} and no such "
        f"file or folder (give an image folder <root>/<split>/<class>/*.png|jpg or a .tar/.tar.gz "
        f"archive of one)"
    )
