"""Hostile data files (issue 12): each is refused with a :class:`~freqlens.errors.DataError` before the
reader reads, decodes or allocates what the file announces.

- an archive member (or a directory file) larger than the per-image limit, judged by its declared size;
- a decompression bomb (a small PNG declaring huge dimensions);
- link members inside an archive: skipped with one warning giving their count;
- idx headers whose sizes overflow 64 bits, CIFAR-10 labels beyond 64 bits.
"""

from __future__ import annotations

import functools
import io
import pickle
import struct
import tarfile
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import freqlens.data.folder as folder_module
from freqlens.data import load_dataset
from freqlens.data.cifar import read_batch
from freqlens.data.folder import MAX_IMAGE_BYTES, MAX_IMAGE_BYTES_ENV, MAX_IMAGE_PIXELS
from freqlens.data.idx import IMAGES_MAGIC, parse_idx
from freqlens.errors import DataError

from .bounded import outcome

HUGE = 400 * 2**20  # the 400 MB member of the issue


class Zeros(io.RawIOBase):
    """A stream of ``size`` zero bytes that never holds more than one read's worth in memory."""

    def __init__(self, size: int) -> None:
        self.left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        count = min(len(buffer), self.left)
        buffer[:count] = bytes(count)
        self.left -= count
        return count


def png_file(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def add_file(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


@pytest.fixture(scope="module")
def huge_member_archive(tmp_path_factory) -> Path:
    """A 1.8 MB ``.tar.gz`` whose member ``train/a/x.png`` holds 400 MiB of zeros (streamed, never in memory)."""
    path = tmp_path_factory.mktemp("huge") / "huge.tar.gz"
    with tarfile.open(path, "w:gz", compresslevel=1) as tar:
        add_file(tar, "train/b/ok.png", png_file(np.zeros((4, 4), np.uint8)))
        info = tarfile.TarInfo("train/a/x.png")
        info.size = HUGE
        tar.addfile(info, io.BufferedReader(Zeros(HUGE), 1 << 20))
    return path


# ---------------------------------------------------------------------------------------------------------
# per-image byte limit
# ---------------------------------------------------------------------------------------------------------
def test_archive_member_larger_than_the_limit_is_refused_before_reading(huge_member_archive, tmp_path):
    assert huge_member_archive.stat().st_size < 4 * 2**20
    result = outcome(lambda: load_dataset(huge_member_archive, "train", cache_dir=tmp_path, progress=False))
    assert isinstance(result, DataError)
    message = str(result)
    assert "huge.tar.gz:train/a/x.png" in message and f"{HUGE} bytes (400.0 MiB)" in message
    assert f"{MAX_IMAGE_BYTES} bytes" in message and MAX_IMAGE_BYTES_ENV in message
    assert "\n" not in message
    assert not list(tmp_path.glob("**/*.pt"))  # nothing cached


def test_directory_file_larger_than_the_limit_is_refused_before_reading(tmp_path):
    (tmp_path / "ds/train/a").mkdir(parents=True)
    (tmp_path / "ds/train/a/ok.png").write_bytes(png_file(np.zeros((4, 4), np.uint8)))
    with open(tmp_path / "ds/train/a/x.png", "wb") as handle:
        handle.truncate(MAX_IMAGE_BYTES + 1)  # sparse: takes no disk space
    result = outcome(lambda: load_dataset(tmp_path / "ds", "train", progress=False))
    assert isinstance(result, DataError)
    assert f"x.png: image file of {MAX_IMAGE_BYTES + 1} bytes" in str(result)


@pytest.mark.parametrize("container", ["directory", "archive"])
def test_limit_comes_from_the_environment(tmp_path, monkeypatch, container):
    image = png_file(np.arange(64, dtype=np.uint8).reshape(8, 8))
    (tmp_path / "ds/train/a").mkdir(parents=True)
    (tmp_path / "ds/train/a/img.png").write_bytes(image)
    source = tmp_path / "ds"
    if container == "archive":
        source = tmp_path / "ds.tar"
        with tarfile.open(source, "w") as tar:
            add_file(tar, "train/a/img.png", image)

    def read():
        return load_dataset(source, "train", cache_dir=tmp_path / "cache", progress=False)

    monkeypatch.setenv(MAX_IMAGE_BYTES_ENV, str(len(image) - 1))
    with pytest.raises(DataError, match=f"img.png: image file of {len(image)} bytes .* than the {len(image) - 1} "):
        read()
    monkeypatch.setenv(MAX_IMAGE_BYTES_ENV, str(len(image)))
    assert read().images.shape == (1, 1, 8, 8)


@pytest.mark.parametrize("value", ["0", "-5", "12MB", "1e6"])
def test_invalid_limit_in_the_environment(tmp_path, monkeypatch, value):
    (tmp_path / "ds/train/a").mkdir(parents=True)
    (tmp_path / "ds/train/a/img.png").write_bytes(png_file(np.zeros((2, 2), np.uint8)))
    monkeypatch.setenv(MAX_IMAGE_BYTES_ENV, value)
    with pytest.raises(DataError, match=f"{MAX_IMAGE_BYTES_ENV} must be a positive integer .*{value!r}"):
        load_dataset(tmp_path / "ds", "train", progress=False)


# ---------------------------------------------------------------------------------------------------------
# decompression bombs
# ---------------------------------------------------------------------------------------------------------
@functools.cache
def bomb_png(width: int, height: int) -> bytes:
    """A *valid* 8-bit grayscale PNG of ``width × height`` black pixels, compressed row by row (the file is
    a few hundred KB; decoding it would take ``width × height`` bytes)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    compressor = zlib.compressobj(9)
    row = bytes(width + 1)  # filter byte 0, then the pixels
    idat = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


@pytest.mark.parametrize(
    "width, height",
    [(9000, 9000),  # 81 M pixels: above freqlens' limit (2**26), below Pillow's warning (89 M)
     (10000, 10000)],  # 100 M pixels: Pillow's DecompressionBombWarning, an error here
)
@pytest.mark.parametrize("container", ["directory", "archive"])
def test_decompression_bomb_is_refused_before_decoding(tmp_path, width, height, container):
    bomb = bomb_png(width, height)
    assert width * height > MAX_IMAGE_PIXELS and len(bomb) < 2**20
    if container == "directory":
        (tmp_path / "ds/train/a").mkdir(parents=True)
        (tmp_path / "ds/train/a/bomb.png").write_bytes(bomb)
        source = tmp_path / "ds"
    else:
        source = tmp_path / "ds.tar.gz"
        with tarfile.open(source, "w:gz") as tar:
            add_file(tar, "train/a/bomb.png", bomb)
    result = outcome(lambda: load_dataset(source, "train", cache_dir=tmp_path / "cache", progress=False))
    assert isinstance(result, DataError)
    assert "bomb.png" in str(result) and "decompression bomb" in str(result)


def test_an_image_at_the_pixel_limit_still_decodes(monkeypatch):
    monkeypatch.setattr(folder_module, "MAX_IMAGE_PIXELS", 12)
    assert folder_module.decode_image(png_file(np.ones((3, 4), np.uint8)), "x.png").shape == (3, 4)
    with pytest.raises(DataError, match=r"x.png: image of 4×4 = 16 pixels"):
        folder_module.decode_image(png_file(np.ones((4, 4), np.uint8)), "x.png")


# ---------------------------------------------------------------------------------------------------------
# links and path traversal inside archives
# ---------------------------------------------------------------------------------------------------------
def test_link_members_are_skipped_with_one_warning_giving_their_count(tmp_path):
    path = tmp_path / "links.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        add_file(tar, "train/a/real.png", png_file(np.full((2, 2), 7, np.uint8)))
        for kind, name in ((tarfile.LNKTYPE, "train/a/hard1.png"), (tarfile.LNKTYPE, "train/b/hard2.png"),
                           (tarfile.SYMTYPE, "train/a/soft.png")):
            info = tarfile.TarInfo(name)
            info.type, info.linkname = kind, "train/a/real.png"
            tar.addfile(info)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dataset = load_dataset(path, "train", cache_dir=tmp_path / "cache", progress=False)
    assert dataset.images.shape == (1, 1, 2, 2) and dataset.classes == ["a"]
    link_warnings = [w for w in caught if "link" in str(w.message)]
    assert len(link_warnings) == 1 and link_warnings[0].category is RuntimeWarning
    assert f"skipped 3 link members in {path}" in str(link_warnings[0].message)


def test_path_traversal_members_are_ignored(tmp_path):
    """Names with ``..`` never become files (nothing is extracted) and are ignored like hidden files."""
    path = tmp_path / "sub" / "evil.tar"
    path.parent.mkdir()
    with tarfile.open(path, "w") as tar:
        add_file(tar, "train/a/ok.png", png_file(np.full((2, 2), 1, np.uint8)))
        add_file(tar, "../train/b/escape.png", png_file(np.full((2, 2), 2, np.uint8)))
        add_file(tar, "train/../../c/up.png", png_file(np.full((2, 2), 3, np.uint8)))
    dataset = load_dataset(path, "train", cache_dir=tmp_path / "cache", progress=False)
    assert dataset.classes == ["a"] and dataset.images.flatten().tolist() == [1, 1, 1, 1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "sub"]


# ---------------------------------------------------------------------------------------------------------
# idx and CIFAR-10 headers
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "dims", [(2**31, 2**31, 4), (2**32 - 1, 2**32 - 1, 2**32 - 1), (2**32 - 1, 2**32 - 1, 1)]
)
def test_idx_sizes_overflowing_64_bits(dims):
    data = struct.pack(">I3I", IMAGES_MAGIC, *dims) + bytes(16)
    result = outcome(lambda: parse_idx(data, expected_magic=IMAGES_MAGIC, source="evil-idx3"))
    assert isinstance(result, DataError)
    expected = dims[0] * dims[1] * dims[2]  # Python ints: the exact number of bytes announced
    assert f"evil-idx3: truncated file: header announces {dims} = {expected} bytes" in str(result)


def test_cifar_labels_beyond_64_bits(tmp_path):
    path = tmp_path / "data_batch_1"
    data = np.zeros((2, 3072), np.uint8)
    path.write_bytes(pickle.dumps({b"data": data, b"labels": [2**70, 1]}, protocol=2))
    with pytest.raises(DataError, match="data_batch_1: 'labels' are not 64-bit integers"):
        read_batch(path)

