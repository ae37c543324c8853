"""The idx file format of MNIST (LeCun et al.), plain or gzipped.

Header: two zero bytes, a type code (0x08 = unsigned byte), the number of dimensions ``d``, then ``d``
big-endian uint32 sizes; the payload follows in C order. Images are ``idx3`` (magic 2051 = 0x00000803),
labels ``idx1`` (magic 2049 = 0x00000801).
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from freqlens.errors import DataError

IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801
_UBYTE = 0x08


def read_bytes(path: str | os.PathLike, data: bytes | None = None) -> bytes:
    """Contents of ``path`` (or of ``data`` read from it), gunzipped when it is gzip.

    Args:
        path: the file (read unless ``data`` is given; its name is used in messages and its ``.gz``
            suffix demands gzip content).
        data: the file's raw bytes, already read (``None``: read ``path``).

    Returns:
        The uncompressed bytes.

    Raises:
        DataError: an unreadable file, a corrupt or truncated gzip, or a ``.gz`` file that is not gzip.
    """
    path = Path(path)
    if data is None:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise DataError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if data[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise DataError(f"{path}: corrupt or truncated gzip file ({exc})") from exc
    if path.suffix == ".gz":
        raise DataError(f"{path}: not a gzip file (bad magic bytes)")
    return data


def parse_idx(data: bytes, *, expected_magic: int, source: str) -> np.ndarray:
    """Parse idx bytes into a read-only ``uint8`` array of the header's shape.

    Checks the magic number, that every size is positive, and that the payload length is exactly the
    product of the sizes (a truncated file raises :class:`DataError` naming ``source``). The product is
    computed with Python integers, so sizes whose product overflows 64 bits (e.g. 2³¹ × 2³¹ × 4) are
    reported as a truncated file before anything is allocated.

    Args:
        data: The whole (uncompressed) file.
        expected_magic: :data:`IMAGES_MAGIC` or :data:`LABELS_MAGIC`.
        source: The file name, for messages.

    Returns:
        A read-only ``uint8`` view of ``data`` with the header's shape.

    Raises:
        DataError: Wrong magic, truncated header, a zero size, or a payload of the wrong length.
    """
    kind = "images (idx3)" if expected_magic == IMAGES_MAGIC else "labels (idx1)"
    if len(data) < 4:
        raise DataError(f"{source}: file too short for an idx header ({len(data)} bytes)")
    (magic,) = struct.unpack(">I", data[:4])
    if magic != expected_magic:
        raise DataError(
            f"{source}: wrong magic number 0x{magic:08x}, expected 0x{expected_magic:08x} for "
            f"MNIST {kind}; is this the right file?"
        )
    ndim = expected_magic & 0xFF
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{source}: truncated idx header ({len(data)} of {header} bytes)")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    if any(d == 0 for d in dims):
        raise DataError(f"{source}: invalid idx sizes {dims}")
    expected = math.prod(dims)  # Python ints: np.prod would wrap around past 2**63 (uint8: 1 byte each)
    payload = len(data) - header
    if payload < expected:
        raise DataError(
            f"{source}: truncated file: header announces {dims} = {expected} bytes of data, "
            f"found only {payload}"
        )
    if payload > expected:
        raise DataError(
            f"{source}: {payload - expected} unexpected bytes after the data announced by the header {dims}"
        )
    return np.frombuffer(data, dtype=np.uint8, count=expected, offset=header).reshape(dims)


def read_idx(path: str | os.PathLike, *, expected_magic: int, data: bytes | None = None) -> np.ndarray:
    """Read an idx file (``.gz`` or plain) from ``path`` (or from its raw bytes ``data``).

    Args:
        path: the file (its name is used in messages).
        expected_magic: :data:`IMAGES_MAGIC` or :data:`LABELS_MAGIC`.
        data: the file's raw bytes, already read (``None``: read ``path``).

    Returns:
        A read-only ``uint8`` array of the header's shape (:func:`parse_idx`).

    Raises:
        DataError: an unreadable, corrupt or malformed file.
    """
    return parse_idx(read_bytes(path, data), expected_magic=expected_magic, source=str(path))


def encode_idx(array: np.ndarray) -> bytes:
    """Encode a ``uint8`` array (1-D labels or 3-D images) as idx bytes (not compressed)."""
    array = np.ascontiguousarray(array)
    if array.dtype != np.uint8 or array.ndim not in (1, 3):
        raise ValueError(f"encode_idx expects a 1-D or 3-D uint8 array, got {array.dtype} {array.shape}")
    header = struct.pack(">BBBB", 0, 0, _UBYTE, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.tobytes()


def gzip_bytes(data: bytes, level: int = 9) -> bytes:
    """Deterministic gzip (mtime 0, no file name) of ``data``.

    Args:
        data: the bytes to compress.
        level: the compression level, 0–9.

    Returns:
        The gzip bytes.
    """
    return gzip.compress(data, compresslevel=level, mtime=0)
