"""Image folders ``root/<split>/<class>/*.(png|jpg|jpeg|bmp)``, as a directory or inside a tar archive.

Classes are the sorted class-folder names over *all* splits (so train and test share labels). Grayscale
images give 1 channel, colour images 3 (RGBA, palette, CMYK... are converted to RGB; a split that mixes
grayscale and colour is made 3-channel). All images of a split must share one size.

Archives (``.tar``, ``.tar.gz``, ``.tgz``; one extra top-level directory allowed) are read once, in a
single streaming pass that decodes every split, and each split is cached as uint8 tensors under the cache
directory (keyed by the archive's absolute path, size and mtime), so later loads take about a second.

Hostile files fail with :class:`~freqlens.errors.DataError` in bounded time and memory:

- an image file (an archive member or a file of a directory) larger than :func:`max_image_bytes` is refused
  *before it is read*, from the size that the tar header or the file system declares. The limit is
  :data:`MAX_IMAGE_BYTES` (64 MiB), or the environment variable ``FREQLENS_MAX_IMAGE_BYTES`` (a positive
  number of bytes) when it is set;
- an image declaring more than :data:`MAX_IMAGE_PIXELS` pixels (width × height; a "decompression bomb":
  a small file with huge dimensions) is refused before it is decoded, as is anything that Pillow's own
  decompression-bomb guard flags;
- hard and symbolic links inside an archive are not followed: they are skipped, with one
  :class:`RuntimeWarning` per archive giving their count. Member names are never used as paths on disk
  (nothing is extracted), and names with ``..`` parts are ignored like hidden files.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import json
import lzma
import os
import pickle
import re
import sys
import tarfile
import warnings
import zlib
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from freqlens.data.dataset import ImageDataset
from freqlens.errors import DataError
from freqlens.utils import atomic_save_torch, atomic_write_json
from freqlens.utils.env import env_positive_int
from freqlens.utils.signatures import forwards_options

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp")
ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz")
CACHE_VERSION = 1
LAYOUT_HINT = "expected layout <root>/<split>/<class>/<image>.(png|jpg|jpeg|bmp)"
#: Default largest image file, in bytes (see :func:`max_image_bytes`).
MAX_IMAGE_BYTES = 64 * 2**20
#: Environment variable that overrides :data:`MAX_IMAGE_BYTES` (a positive integer, in bytes).
MAX_IMAGE_BYTES_ENV = "FREQLENS_MAX_IMAGE_BYTES"
#: Largest image decoded, in pixels (width × height): 8192 × 8192, far above any image-dataset sample.
MAX_IMAGE_PIXELS = 2**26

# one decoded image: (class folder name, sort key, H×W or H×W×3 uint8 array)
_Record = tuple[str, str, np.ndarray]
# one decoded archive member: (path parts, member name, pixels)
_Entry = tuple[tuple[str, ...], str, np.ndarray]


def is_archive(path: str | os.PathLike) -> bool:
    return str(path).lower().endswith(ARCHIVE_SUFFIXES)


def default_cache_dir() -> Path:
    """``$FREQLENS_CACHE``, else ``~/.cache/freqlens``."""
    env = os.environ.get("FREQLENS_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "freqlens"


def _is_hidden(part: str) -> bool:
    return part.startswith(".") or part == "__MACOSX"


def _is_image_name(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS) and not _is_hidden(name)


def max_image_bytes() -> int:
    """The largest image file that the loaders read, in bytes.

    Returns:
        ``$FREQLENS_MAX_IMAGE_BYTES`` when it is set, else :data:`MAX_IMAGE_BYTES` (64 MiB).

    Raises:
        DataError: ``$FREQLENS_MAX_IMAGE_BYTES`` is set but is not a positive integer.
    """
    return env_positive_int(MAX_IMAGE_BYTES_ENV, MAX_IMAGE_BYTES, DataError, "bytes")


def _mib(size: int) -> str:
    return f"{size / 2**20:.1f} MiB"


def check_image_bytes(size: int, source: str, limit: int) -> None:
    """Refuse an image file of ``size`` bytes (as declared, before reading it) above ``limit``.

    Args:
        size: The size of the file, as its tar header or the file system declares it.
        source: The file or archive member, for the message.
        limit: The largest size allowed (:func:`max_image_bytes`).

    Raises:
        DataError: ``size > limit``, naming ``source`` and both sizes.
    """
    if size > limit:
        raise DataError(
            f"{source}: image file of {size} bytes ({_mib(size)}) is larger than the {limit} bytes "
            f"({_mib(limit)}) allowed per image; set {MAX_IMAGE_BYTES_ENV} to raise the limit"
        )


def _check_pixels(image: Image.Image, source: str) -> None:
    width, height = image.size
    if width * height > MAX_IMAGE_PIXELS:
        raise DataError(
            f"{source}: image of {width}×{height} = {width * height} pixels is larger than the "
            f"{MAX_IMAGE_PIXELS} pixels allowed (a decompression bomb?)"
        )


def decode_image(data: bytes, source: str) -> np.ndarray:
    """Decode one image file: ``H×W`` uint8 for grayscale (L, 1), ``H×W×3`` for everything else.

    The dimensions in the header are checked against :data:`MAX_IMAGE_PIXELS` before decoding, and
    Pillow's decompression-bomb warning is an error here.

    Args:
        data: The bytes of the file.
        source: The file or archive member, for messages.

    Returns:
        The pixels, ``H×W`` or ``H×W×3`` uint8.

    Raises:
        DataError: The file is corrupt, not an image, too large in pixels, or of an unsupported kind.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                _check_pixels(image, source)
                if image.mode == "L":
                    array = np.asarray(image)
                elif image.mode == "1":
                    array = np.asarray(image.convert("L"))
                elif image.mode == "RGB":
                    array = np.asarray(image)
                else:
                    array = np.asarray(image.convert("RGB"))
    except DataError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise DataError(f"{source}: refused as a decompression bomb ({exc})") from exc
    except Exception as exc:  # PIL raises OSError, SyntaxError, ValueError, zlib errors... on bad files
        raise DataError(f"{source}: corrupt or unreadable image ({type(exc).__name__}: {exc})") from exc
    if array.dtype != np.uint8 or array.ndim not in (2, 3) or array.size == 0:
        raise DataError(f"{source}: unsupported image ({array.dtype}, shape {array.shape})")
    return array


def _assemble(
    records: list[_Record], classes: list[str], *, source: str, split: str, name: str
) -> ImageDataset:
    """Stack the decoded images of one split (sorted by class then file) into an ImageDataset."""
    if not records:
        raise DataError(f"{source}: split {split!r} contains no images ({LAYOUT_HINT})")
    class_index = {c: i for i, c in enumerate(classes)}
    records = sorted(records, key=lambda r: (class_index[r[0]], r[1]))
    first_key, first = records[0][1], records[0][2]
    height, width = first.shape[:2]
    channels = 1
    for _, key, array in records:
        if array.shape[:2] != (height, width):
            raise DataError(
                f"{source}: images of split {split!r} differ in size: {key} is "
                f"{array.shape[0]}×{array.shape[1]} but {first_key} is {height}×{width}; "
                f"all images must share one size"
            )
        if array.ndim == 3:
            channels = 3
    images = np.empty((len(records), channels, height, width), dtype=np.uint8)
    for i, (_, _, array) in enumerate(records):
        images[i] = array if array.ndim == 2 else array.transpose(2, 0, 1)  # gray broadcasts to 3 channels
    labels = np.fromiter((class_index[r[0]] for r in records), dtype=np.int64, count=len(records))
    return ImageDataset(torch.from_numpy(images), torch.from_numpy(labels), classes, name=name, split=split)


def _dataset_name(path: Path) -> str:
    name = path.name
    for suffix in (".tar.gz", ".tgz", ".tar"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


# ---------------------------------------------------------------------------------------------------------
# directories
# ---------------------------------------------------------------------------------------------------------
def _subdirs(path: Path) -> list[str]:
    try:
        return sorted(
            entry.name for entry in os.scandir(path) if entry.is_dir() and not _is_hidden(entry.name)
        )
    except OSError as exc:
        raise DataError(f"cannot list {path}: {exc.strerror or exc}") from exc


def _read_image_file(file: Path, limit: int) -> bytes:
    """The bytes of ``file``, refused (:class:`DataError`) above ``limit`` bytes before reading them."""
    data = bytearray()
    try:
        with open(file, "rb") as handle:
            check_image_bytes(os.fstat(handle.fileno()).st_size, str(file), limit)
            # in chunks, up to one byte past the limit: bounded even if the file grows meanwhile
            while chunk := handle.read(min(1 << 20, limit + 1 - len(data))):
                data += chunk
                check_image_bytes(len(data), str(file), limit)
    except OSError as exc:
        raise DataError(f"cannot read {file}: {exc.strerror or exc}") from exc
    return bytes(data)


def load_directory(root: str | os.PathLike, split: str = "train", *, progress: bool = False) -> ImageDataset:
    """Load split ``split`` of the image folder ``root/<split>/<class>/*``.

    Image files larger than :func:`max_image_bytes` (default 64 MiB, ``$FREQLENS_MAX_IMAGE_BYTES``) or
    than :data:`MAX_IMAGE_PIXELS` pixels raise :class:`DataError` before they are read or decoded.

    Args:
        root: the image folder (holding one folder per split).
        split: the split folder's name.
        progress: show a tqdm bar (stderr) over the files.

    Returns:
        The split as an :class:`ImageDataset` (classes over all splits, module doc).

    Raises:
        DataError: no such split, no images, an oversized, unreadable or undecodable image, or images
            of different sizes.
    """
    root = Path(root).expanduser()
    limit = max_image_bytes()
    splits = _subdirs(root)
    if split not in splits:
        raise DataError(
            f"{root}: no split {split!r}; available splits: {', '.join(splits) or 'none'} ({LAYOUT_HINT})"
        )
    classes = sorted({c for s in splits for c in _subdirs(root / s)})
    files: list[tuple[str, Path]] = []
    for class_name in _subdirs(root / split):
        folder = root / split / class_name
        files.extend(
            (class_name, folder / f)
            for f in sorted(os.listdir(folder))
            if _is_image_name(f) and (folder / f).is_file()
        )
    if not files:
        raise DataError(f"{root / split}: no images found ({LAYOUT_HINT})")
    records: list[_Record] = []
    for class_name, file in tqdm(
        files,
        desc=f"reading {root.name}/{split}",
        unit="img",
        disable=not progress,
        file=sys.stderr,
        leave=False,
        delay=0.5,
    ):
        data = _read_image_file(file, limit)
        records.append((class_name, str(file), decode_image(data, str(file))))
    return _assemble(records, classes, source=str(root), split=split, name=_dataset_name(root))


# ---------------------------------------------------------------------------------------------------------
# archives
# ---------------------------------------------------------------------------------------------------------
class _CountingReader(io.RawIOBase):
    """Read-only byte stream that counts what it delivers and reports progress."""

    def __init__(self, stream: BinaryIO, bar: tqdm | None = None) -> None:
        self._stream = stream
        self._bar = bar
        self.delivered = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size)
        self.delivered += len(data)
        if self._bar is not None:
            self._bar.update(len(data))
        return data

    def readinto(self, buffer) -> int:  # pragma: no cover - tarfile uses read()
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _decompressor(head: bytes, raw: BinaryIO) -> BinaryIO:
    """Wrap ``raw`` in the decompressor that its first bytes ``head`` call for (gzip, bz2, xz), or not."""
    if head[:2] == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=raw, mode="rb")
    if head[:3] == b"BZh":
        return bz2.BZ2File(raw, mode="rb")
    if head[:6] == b"\xfd7zXZ\x00":
        return lzma.LZMAFile(raw, mode="rb")
    return raw


def _decode_members(archive: tarfile.TarFile, path: Path, limit: int) -> tuple[list[_Entry], int]:
    """Decode the image members of a streaming ``archive``; returns ``(entries, number of links skipped)``.

    Each image member's declared size is checked against ``limit`` before a byte of it is read.
    """
    entries: list[_Entry] = []
    links = 0
    for member in archive:
        if member.islnk() or member.issym():
            links += 1
            continue
        if not member.isfile():
            continue
        parts = tuple(p for p in PurePosixPath(member.name).parts if p not in ("", ".", "/"))
        if not parts or not _is_image_name(parts[-1]) or any(_is_hidden(p) for p in parts):
            continue  # ".." is hidden: path traversal is ignored (nothing is extracted anyway)
        source = f"{path}:{member.name}"
        check_image_bytes(member.size, source, limit)
        handle = archive.extractfile(member)
        data = handle.read() if handle is not None else b""
        if len(data) != member.size:
            raise DataError(f"{path}: truncated archive (member {member.name} is incomplete)")
        entries.append((parts, member.name, decode_image(data, source)))
    return entries, links


def _split_entries(entries: list[_Entry], path: Path) -> tuple[dict[str, list[_Record]], list[str]]:
    """``({split: records}, classes)`` from the decoded members (layout checked)."""
    if not entries:
        raise DataError(f"{path}: no images found in the archive ({LAYOUT_HINT})")
    # layout: split/class/file, optionally below one common top-level directory
    depths = {len(parts) for parts, _, _ in entries}
    tops = {parts[0] for parts, _, _ in entries}
    if depths == {3}:
        strip = 0
    elif depths == {4} and len(tops) == 1:
        strip = 1
    else:
        odd = next(n for p, n, _ in entries if len(p) not in (3, 4)) if depths - {3, 4} else entries[0][1]
        raise DataError(
            f"{path}: unexpected archive layout (e.g. {odd}); {LAYOUT_HINT}, optionally inside "
            f"one top-level directory"
        )
    records: dict[str, list[_Record]] = defaultdict(list)
    for parts, member_name, array in entries:
        split, class_name = parts[strip], parts[strip + 1]
        records[split].append((class_name, member_name, array))
    classes = sorted({r[0] for split_records in records.values() for r in split_records})
    return dict(records), classes


def decode_archive(
    path: str | os.PathLike, *, progress: bool = False
) -> tuple[dict[str, list[_Record]], list[str]]:
    """Decode every image of the archive in one streaming pass.

    Image members larger than :func:`max_image_bytes` (default 64 MiB, ``$FREQLENS_MAX_IMAGE_BYTES``),
    judged by the size their header declares, raise :class:`DataError` before they are read; images of
    more than :data:`MAX_IMAGE_PIXELS` pixels before they are decoded. Link members are skipped with one
    :class:`RuntimeWarning` giving their count.

    Args:
        path: A ``.tar``, ``.tar.gz``/``.tgz`` (also bz2 or xz compressed) archive.
        progress: Show a progress bar on stderr (off by default).

    Returns:
        ``({split: records}, classes)``.

    Raises:
        DataError: The archive is truncated, corrupt, badly laid out, or holds a refused image.
    """
    path = Path(path)
    limit = max_image_bytes()
    try:
        total = path.stat().st_size
        with (
            open(path, "rb") as raw_file,
            tqdm(
                total=total,
                unit="B",
                unit_scale=True,
                file=sys.stderr,
                desc=f"decoding {path.name}",
                disable=not progress,
                leave=False,
                delay=0.5,
            ) as bar,
        ):
            head = raw_file.read(6)
            raw_file.seek(0)
            stream = _decompressor(head, _CountingReader(raw_file, bar))
            counter = _CountingReader(stream)
            # streaming mode ("r|"): a single forward pass, no seeking, members read in archive order
            with tarfile.open(fileobj=counter, mode="r|*") as archive:
                entries, links = _decode_members(archive, path, limit)
                end_of_data = archive.offset
            # A tar cut at a member boundary ends without its end-of-archive block, which tarfile accepts
            # silently: demand that block. Draining the decompressor also checks the gzip CRC and length.
            if counter.delivered < end_of_data + tarfile.BLOCKSIZE:
                raise DataError(
                    f"{path}: truncated archive (no end-of-archive marker after {end_of_data} bytes)"
                )
            while stream.read(1 << 20):
                pass
    except DataError:
        raise
    except (tarfile.TarError, EOFError, zlib.error, OSError, lzma.LZMAError) as exc:
        raise DataError(f"{path}: corrupt or truncated archive ({type(exc).__name__}: {exc})") from exc
    if links:
        warnings.warn(
            f"skipped {links} link member{'s' if links != 1 else ''} in {path} (hard and symbolic links "
            f"inside an archive are not followed)",
            RuntimeWarning,
            stacklevel=2,
        )
    return _split_entries(entries, path)


def _cache_stem(path: Path) -> str:
    stat = path.stat()
    key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|v{CACHE_VERSION}"
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:20]
    readable = re.sub(r"[^A-Za-z0-9_.-]+", "_", _dataset_name(path))[:60]
    return f"{readable}-{digest}"


def archive_cache_paths(
    path: str | os.PathLike, split: str, cache_dir: str | os.PathLike | None = None
) -> tuple[Path, Path]:
    """The cache files of an archive's split.

    Args:
        path: the archive (it must exist: its size and mtime are part of the key).
        split: the split's name.
        cache_dir: the cache directory (``None``: :func:`default_cache_dir`).

    Returns:
        ``(index json, split tensor file)`` of the cache of ``path`` (keyed by abs path, size, mtime,
            split).
    """
    path = Path(path).expanduser()
    folder = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    stem = _cache_stem(path)
    safe_split = re.sub(r"[^A-Za-z0-9_.-]+", "_", split)
    split_hash = hashlib.sha256(split.encode("utf-8")).hexdigest()[:8]
    return (
        folder / "datasets" / f"{stem}.json",
        folder / "datasets" / f"{stem}-{safe_split}-{split_hash}.pt",
    )


def _read_index(index_path: Path) -> dict | None:
    try:
        index = json.loads(index_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(index, dict) or not isinstance(index.get("splits"), list):
        return None
    return index


def _read_split_cache(file: Path, split: str, name: str) -> ImageDataset | None:
    if not file.is_file():
        return None
    try:
        payload = torch.load(file, map_location="cpu", weights_only=True)
        return ImageDataset(payload["images"], payload["labels"], payload["classes"], name=name, split=split)
    except (OSError, RuntimeError, EOFError, KeyError, TypeError, ValueError, pickle.UnpicklingError) as exc:
        # a damaged cache is rebuilt, never fatal (DataError is a ValueError)
        warnings.warn(
            f"ignoring unreadable dataset cache {file} ({exc}); decoding the archive again", stacklevel=3
        )
        return None


def _write_caches(
    path: Path,
    datasets: Iterable[ImageDataset],
    splits: list[str],
    classes: list[str],
    cache_dir: str | os.PathLike | None,
) -> None:
    try:
        index_path = None
        for dataset in datasets:
            index_path, file = archive_cache_paths(path, dataset.split, cache_dir)
            atomic_save_torch(
                file,
                {
                    "images": dataset.images,
                    "labels": dataset.labels,
                    "classes": dataset.classes,
                    "split": dataset.split,
                },
            )
        if index_path is not None:  # the index last: it vouches for complete split files
            atomic_write_json(
                index_path,
                {
                    "source": str(path.resolve()),
                    "splits": splits,
                    "classes": classes,
                    "version": CACHE_VERSION,
                },
            )
    except OSError as exc:
        warnings.warn(
            f"could not write the dataset cache for {path} ({exc}); the next load decodes it again",
            stacklevel=3,
        )


def load_archive(
    path: str | os.PathLike,
    split: str = "train",
    *,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = False,
) -> ImageDataset:
    """Load split ``split`` of an image-folder archive, from the cache when it is there.

    On a cache miss every split is decoded in one pass and cached (a cache that cannot be written or
    read only gives a warning).

    Args:
        path: a ``.tar``/``.tar.gz``/``.tgz`` archive of ``<split>/<class>/*`` images.
        split: the split's name.
        cache_dir: the cache directory (``None``: :func:`default_cache_dir`).
        progress: show a tqdm bar (stderr) while decoding.

    Returns:
        The split as an :class:`ImageDataset`.

    Raises:
        DataError: no such split, or a hostile or corrupt archive (module doc).
    """
    path = Path(path).expanduser()
    name = _dataset_name(path)
    index_path, split_file = archive_cache_paths(path, split, cache_dir)
    index = _read_index(index_path)
    if index is not None:
        if split not in index["splits"]:
            raise DataError(f"{path}: no split {split!r}; available splits: {', '.join(index['splits'])}")
        cached = _read_split_cache(split_file, split, name)
        if cached is not None:
            return cached
    records, classes = decode_archive(path, progress=progress)
    splits = sorted(records)
    datasets = {s: _assemble(records[s], classes, source=f"{path}", split=s, name=name) for s in splits}
    _write_caches(path, datasets.values(), splits, classes, cache_dir)
    if split not in datasets:
        raise DataError(f"{path}: no split {split!r}; available splits: {', '.join(splits)}")
    return datasets[split]


@forwards_options(load_archive, skip=("path", "split"))
def load_image_folder(path: str | os.PathLike, split: str = "train", **options: Any) -> ImageDataset:
    """An image folder given as a directory or as a ``.tar``/``.tar.gz``/``.tgz`` archive.

    Args:
        path: the directory (:func:`load_directory`) or archive (:func:`load_archive`).
        split: the split's name.
        cache_dir, progress: as :func:`load_archive` (a directory is read as it is: not cached).

    Returns:
        The split as an :class:`ImageDataset`.

    Raises:
        DataError: ``path`` does not exist or is neither a directory nor an archive, or the loader's
            errors.
    """
    path = Path(path).expanduser()
    if path.is_dir():
        options.pop("cache_dir", None)
        return load_directory(path, split, **options)
    if path.is_file() and is_archive(path):
        return load_archive(path, split, **options)
    if path.exists():
        raise DataError(f"{path}: not an image folder nor a .tar/.tar.gz/.tgz archive ({LAYOUT_HINT})")
    raise DataError(f"{path}: no such file or directory")
