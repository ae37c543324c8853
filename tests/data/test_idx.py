"""idx parsing: round trips against an independent writer, every header/payload check."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from freqlens.data.idx import IMAGES_MAGIC, LABELS_MAGIC, encode_idx, gzip_bytes, read_idx
from freqlens.errors import DataError


@pytest.mark.parametrize("gz", [False, True])
def test_round_trip_with_independent_writer(tmp_path, idx_writer, gz):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(5, 7, 6), dtype=np.uint8)  # non-square on purpose
    labels = rng.integers(0, 10, size=5).astype(np.uint8)
    suffix = ".gz" if gz else ""
    got_images = read_idx(idx_writer(tmp_path / f"im{suffix}", images, gz=gz), expected_magic=IMAGES_MAGIC)
    got_labels = read_idx(idx_writer(tmp_path / f"lab{suffix}", labels, gz=gz), expected_magic=LABELS_MAGIC)
    assert got_images.shape == (5, 7, 6) and np.array_equal(got_images, images)
    assert np.array_equal(got_labels, labels)


def test_encode_idx_matches_independent_writer(tmp_path, idx_writer):
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    assert encode_idx(array) == idx_writer(tmp_path / "x", array, gz=False).read_bytes()
    assert gzip.decompress(gzip_bytes(encode_idx(array))) == encode_idx(array)
    assert gzip_bytes(b"abc") == gzip_bytes(b"abc")  # deterministic (mtime 0)


def test_truncated_payload_names_file(tmp_path, idx_writer):
    path = idx_writer(tmp_path / "cut-images-idx3-ubyte", np.zeros((3, 4, 4), np.uint8), gz=False)
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(DataError, match=r"cut-images-idx3-ubyte.*truncated") as info:
        read_idx(path, expected_magic=IMAGES_MAGIC)
    assert "\n" not in str(info.value)


def test_truncated_header(tmp_path, idx_writer):
    path = idx_writer(tmp_path / "h", np.zeros((3, 4, 4), np.uint8), gz=False)
    path.write_bytes(path.read_bytes()[:9])
    with pytest.raises(DataError, match="truncated idx header"):
        read_idx(path, expected_magic=IMAGES_MAGIC)


def test_trailing_bytes_rejected(tmp_path, idx_writer):
    path = idx_writer(tmp_path / "long", np.zeros(4, np.uint8), gz=False)
    path.write_bytes(path.read_bytes() + b"\x00\x00")
    with pytest.raises(DataError, match="2 unexpected bytes"):
        read_idx(path, expected_magic=LABELS_MAGIC)


def test_wrong_magic(tmp_path, idx_writer):
    labels = idx_writer(tmp_path / "labels.gz", np.zeros(4, np.uint8))
    with pytest.raises(DataError, match="wrong magic number 0x00000801"):
        read_idx(labels, expected_magic=IMAGES_MAGIC)
    wrong_type = tmp_path / "float"
    wrong_type.write_bytes(bytes([0, 0, 0x0D, 1]) + (4).to_bytes(4, "big") + bytes(16))
    with pytest.raises(DataError, match="wrong magic"):
        read_idx(wrong_type, expected_magic=LABELS_MAGIC)


def test_truncated_gzip_names_file(tmp_path, idx_writer):
    path = idx_writer(
        tmp_path / "x-images.gz", np.random.default_rng(0).integers(0, 255, (20, 8, 8), np.uint8)
    )
    path.write_bytes(path.read_bytes()[:-30])
    with pytest.raises(DataError, match=r"x-images.gz.*gzip"):
        read_idx(path, expected_magic=IMAGES_MAGIC)


def test_gz_suffix_without_gzip_content(tmp_path):
    path = tmp_path / "plain.gz"
    path.write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match="not a gzip file"):
        read_idx(path, expected_magic=IMAGES_MAGIC)
