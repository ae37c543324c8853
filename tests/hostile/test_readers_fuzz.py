"""Fuzzing the file readers (issue 12): a small valid file, randomly truncated and bit-flipped, either loads
or raises the library's own error (:class:`~freqlens.errors.FreqlensError`): never another exception, never
a hang, never more than a bounded amount of memory (:func:`bounded.outcome`).

When the damage leaves the bytes unchanged the result equals the original; when a damaged file still
loads, what it gives must be consistent with its bytes (idx, checkpoints: exactly what the file says; CRCs
make a silently different checkpoint impossible) or at least a well-formed dataset (image folders: a flip
in pixel data or in a tar header's unused fields may load).
"""

from __future__ import annotations

import gzip
import io
import pickle
import struct
import tarfile
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from freqlens.data.cifar import read_batch
from freqlens.data.dataset import ImageDataset
from freqlens.data.folder import load_archive, load_directory
from freqlens.data.idx import IMAGES_MAGIC, read_idx
from freqlens.errors import FreqlensError
from freqlens.models import build, checkpoint_dict, load

from .bounded import damaged, outcome

FUZZ = settings(max_examples=50, deadline=None, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

RNG = np.random.default_rng(12)
IMAGES = RNG.integers(0, 256, size=(3, 4, 5), dtype=np.uint8)
TREE = {  # split -> class -> 4×4 RGB images (2 splits, 2 classes, 2 images each)
    split: {cls: [RNG.integers(0, 256, size=(4, 4, 3), dtype=np.uint8) for _ in range(2)] for cls in ("a", "b")}
    for split in ("train", "test")
}


# ---------------------------------------------------------------------------------------------------------
# original files, written by the formats' specs (independently of freqlens' writers)
# ---------------------------------------------------------------------------------------------------------
def idx_file(array: np.ndarray) -> bytes:
    """idx: two zero bytes, type 0x08 (ubyte), ndim, big-endian uint32 sizes, the bytes in C order."""
    return bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def png_file(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def tar_file(compress: bool) -> bytes:
    """The image tree :data:`TREE` as a tar (``split/class/imgN.png``), deterministic (mtime 0)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for split, classes in TREE.items():
            for cls, images in classes.items():
                for i, image in enumerate(images):
                    data = png_file(image)
                    info = tarfile.TarInfo(f"{split}/{cls}/img{i}.png")
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
    raw = buffer.getvalue()
    return gzip.compress(raw, mtime=0) if compress else raw


def checkpoint_file() -> bytes:
    """A freqlens checkpoint of a 118-parameter MLP (about 3 KB)."""
    torch.manual_seed(0)
    buffer = io.BytesIO()
    torch.save(checkpoint_dict(build("mlp", 1, num_classes=10, image_size=4, hidden=[4])), buffer)
    return buffer.getvalue()


IDX, IDX_GZ = idx_file(IMAGES), gzip.compress(idx_file(IMAGES), mtime=0)
TAR, TAR_GZ = tar_file(False), tar_file(True)
CHECKPOINT = checkpoint_file()
ORIGINAL_STATE = torch.load(io.BytesIO(CHECKPOINT), weights_only=True)["model_state"]


def expected_split(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    images = [image for cls in ("a", "b") for image in TREE[split][cls]]
    return torch.from_numpy(np.stack(images).transpose(0, 3, 1, 2).copy()), torch.tensor([0, 0, 1, 1])


def assert_well_formed(dataset: ImageDataset) -> None:
    """What any successful load gives: uint8 N×C×H×W images (C 1 or 3) and labels indexing the classes."""
    assert dataset.images.dtype == torch.uint8 and dataset.images.dim() == 4
    assert dataset.images.shape[1] in (1, 3) and dataset.images.shape[0] == dataset.labels.shape[0] > 0
    assert int(dataset.labels.min()) >= 0 and int(dataset.labels.max()) < len(dataset.classes)


def assert_equals_original(dataset: ImageDataset, split: str) -> None:
    images, labels = expected_split(split)
    assert dataset.classes == ["a", "b"]
    assert torch.equal(dataset.images, images) and torch.equal(dataset.labels, labels)


# ---------------------------------------------------------------------------------------------------------
# idx
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("original", [IDX, IDX_GZ], ids=["plain", "gzip"])
@FUZZ
@given(data=st.data())
def test_idx_reader(original: bytes, data: st.DataObject) -> None:
    damaged_bytes = data.draw(damaged(original))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / ("images.idx3-ubyte.gz" if original is IDX_GZ else "images.idx3-ubyte")
        path.write_bytes(damaged_bytes)
        result = outcome(lambda: read_idx(path, expected_magic=IMAGES_MAGIC))
    if damaged_bytes == original:
        assert isinstance(result, np.ndarray) and np.array_equal(result, IMAGES)
    elif isinstance(result, np.ndarray):  # loaded: exactly what the (gunzipped) bytes say
        plain = gzip.decompress(damaged_bytes) if original is IDX_GZ else damaged_bytes
        assert idx_file(result) == plain
    else:
        assert isinstance(result, FreqlensError)


# ---------------------------------------------------------------------------------------------------------
# image folders: tar / tar.gz archives and directories
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("original", [TAR, TAR_GZ], ids=["tar", "tar.gz"])
@FUZZ
@given(data=st.data())
def test_archive_reader(original: bytes, data: st.DataObject) -> None:
    damaged_bytes = data.draw(damaged(original))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / ("pack.tar.gz" if original is TAR_GZ else "pack.tar")
        path.write_bytes(damaged_bytes)
        result = outcome(lambda: load_archive(path, "train", cache_dir=Path(folder) / "cache", progress=False))
    if damaged_bytes == original:
        assert isinstance(result, ImageDataset)
        assert_equals_original(result, "train")
    elif isinstance(result, ImageDataset):
        assert_well_formed(result)
    else:
        assert isinstance(result, FreqlensError)


def write_tree(root: Path) -> dict[Path, bytes]:
    """:data:`TREE` as PNG files under ``root``; returns ``{file: bytes}``."""
    files = {}
    for split, classes in TREE.items():
        for cls, images in classes.items():
            (root / split / cls).mkdir(parents=True)
            for i, image in enumerate(images):
                file = root / split / cls / f"img{i}.png"
                files[file] = png_file(image)
                file.write_bytes(files[file])
    return files


@FUZZ
@given(which=st.integers(0, 3), data=st.data())
def test_directory_reader(which: int, data: st.DataObject) -> None:
    with tempfile.TemporaryDirectory() as folder:
        files = write_tree(Path(folder))
        target = sorted(f for f in files if f.parts[-3] == "train")[which]
        damaged_bytes = data.draw(damaged(files[target]))
        target.write_bytes(damaged_bytes)
        result = outcome(lambda: load_directory(folder, "train", progress=False))
    if damaged_bytes == files[target]:
        assert isinstance(result, ImageDataset)
        assert_equals_original(result, "train")
    elif isinstance(result, ImageDataset):  # a flip in pixel data (or an ancillary chunk) may still decode
        assert_well_formed(result)
    else:
        assert isinstance(result, FreqlensError)


# ---------------------------------------------------------------------------------------------------------
# checkpoints and CIFAR-10 batches
# ---------------------------------------------------------------------------------------------------------
@FUZZ
@given(data=st.data())
def test_checkpoint_reader(data: st.DataObject) -> None:
    damaged_bytes = data.draw(damaged(CHECKPOINT))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.pt"
        path.write_bytes(damaged_bytes)
        result = outcome(lambda: load(path))
    if isinstance(result, torch.nn.Module):  # loaded (unchanged, or damage in unchecked zip fields): same weights
        state = result.state_dict()
        assert state.keys() == ORIGINAL_STATE.keys()
        assert all(torch.equal(state[key], ORIGINAL_STATE[key]) for key in state)
    else:
        assert damaged_bytes != CHECKPOINT and isinstance(result, FreqlensError)


def cifar_batch() -> bytes:
    """A CIFAR-10 python batch as distributed (bytes keys, protocol 2) with two images."""
    data = RNG.integers(0, 256, size=(2, 3072), dtype=np.uint8)
    return pickle.dumps({b"batch_label": b"b", b"labels": [3, 7], b"data": data}, protocol=2)


CIFAR = cifar_batch()


@FUZZ
@given(data=st.data())
def test_cifar_batch_reader(data: st.DataObject) -> None:
    damaged_bytes = data.draw(damaged(CIFAR))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "data_batch_1"
        path.write_bytes(damaged_bytes)
        result = outcome(lambda: read_batch(path))
    if damaged_bytes == CIFAR:
        assert isinstance(result, tuple) and result[1].tolist() == [3, 7]
    elif isinstance(result, tuple):  # a flip in pixel data or a label still in 0..9 loads
        images, labels = result
        assert images.shape == (2, 3, 32, 32) and images.dtype == np.uint8 and labels.shape == (2,)
        assert 0 <= labels.min() and labels.max() <= 9
    else:
        assert isinstance(result, FreqlensError)
