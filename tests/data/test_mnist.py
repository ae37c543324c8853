"""MNIST from idx files (real shared files and synthetic ones), the shipped demo sample and its builder."""

from __future__ import annotations

import gzip
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from freqlens.data import load_dataset
from freqlens.errors import DataError

REPO = Path(__file__).resolve().parents[2]
DEMO_DIR = REPO / "src" / "freqlens" / "data" / "demo"


def _raw(path: Path) -> bytes:
    return gzip.decompress(path.read_bytes())


def test_real_mnist_train_and_test(shared_data):
    root = shared_data / "mnist"
    test = load_dataset("mnist", "test", root=root, progress=False)
    train = load_dataset("mnist", "train", root=root, progress=False)
    assert len(test) == 10_000 and len(train) == 5_000
    assert test.labels[:5].tolist() == [7, 2, 1, 0, 4]
    assert test.images.shape == (10_000, 1, 28, 28) and test.num_channels == 1 and test.image_size == (28, 28)
    assert test.classes == [str(d) for d in range(10)] and test.name == "mnist" and test.split == "test"
    assert train.class_counts().tolist() == [500] * 10  # the README's 500 per class
    # pixels: the payload after the 16-byte header, in C order (read here without freqlens)
    raw = np.frombuffer(_raw(root / "t10k-images-idx3-ubyte.gz"), np.uint8)
    assert int.from_bytes(raw[4:8].tobytes(), "big") == 10_000
    assert np.array_equal(test.images.numpy().reshape(-1), raw[16:])


@pytest.mark.parametrize("layout", ["flat", "plain", "mnist_subdir", "torchvision"])
def test_layouts_and_uncompressed_files(shared_data, tmp_path, layout):
    source = shared_data / "mnist"
    folder = {
        "flat": tmp_path,
        "plain": tmp_path,
        "mnist_subdir": tmp_path / "mnist",
        "torchvision": tmp_path / "MNIST" / "raw",
    }[layout]
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        if layout == "plain":
            (folder / name[:-3]).write_bytes(_raw(source / name))
        else:
            shutil.copy(source / name, folder / name)
    reference = load_dataset("mnist", "test", root=source, progress=False)
    got = load_dataset("mnist", "test", root=tmp_path, progress=False)
    assert torch.equal(got.images, reference.images) and torch.equal(got.labels, reference.labels)


def test_default_root_from_environment(shared_data, tmp_path, monkeypatch):
    shutil.copytree(shared_data / "mnist", tmp_path / "mnist")
    monkeypatch.setenv("FREQLENS_DATA", str(tmp_path))
    assert len(load_dataset("mnist", "train", progress=False)) == 5_000


def _write_pair(idx_writer, folder: Path, images, labels):
    idx_writer(folder / "train-images-idx3-ubyte.gz", images)
    idx_writer(folder / "train-labels-idx1-ubyte.gz", labels)


def test_synthetic_files_load_exactly(tmp_path, idx_writer):
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, size=(12, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=12).astype(np.uint8)
    _write_pair(idx_writer, tmp_path, images, labels)
    dataset = load_dataset("mnist", "train", root=tmp_path, progress=False)
    assert torch.equal(dataset.images[:, 0], torch.from_numpy(images))
    assert dataset.labels.tolist() == labels.tolist()


def test_count_mismatch(tmp_path, idx_writer):
    _write_pair(idx_writer, tmp_path, np.zeros((5, 28, 28), np.uint8), np.zeros(4, np.uint8))
    with pytest.raises(DataError, match="5 images but .* 4 labels"):
        load_dataset("mnist", "train", root=tmp_path)


def test_label_out_of_range(tmp_path, idx_writer):
    _write_pair(idx_writer, tmp_path, np.zeros((2, 28, 28), np.uint8), np.array([3, 10], np.uint8))
    with pytest.raises(DataError, match="label 10 out of range"):
        load_dataset("mnist", "train", root=tmp_path)


def test_truncated_real_file(shared_data, tmp_path):
    source = shared_data / "mnist"
    shutil.copy(source / "t10k-labels-idx1-ubyte.gz", tmp_path)
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(_raw(source / "t10k-images-idx3-ubyte.gz")[: -784 * 3])
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte: truncated") as info:
        load_dataset("mnist", "test", root=tmp_path)
    assert "\n" not in str(info.value)


def test_swapped_files_wrong_magic(tmp_path, idx_writer):
    idx_writer(tmp_path / "train-images-idx3-ubyte.gz", np.zeros(3, np.uint8))  # a label file in its place
    idx_writer(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(3, np.uint8))
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz: wrong magic"):
        load_dataset("mnist", "train", root=tmp_path)


def test_missing_files_suggest_download(tmp_path):
    with pytest.raises(DataError) as info:
        load_dataset("mnist", "test", root=tmp_path / "nothing")
    message = str(info.value)
    assert "t10k-images-idx3-ubyte" in message and "download=True" in message and "--data-dir" in message


# ---------------------------------------------------------------------------------------------------------
# the demo sample
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("split, n", [("train", 2_000), ("test", 500)])
def test_demo_is_balanced_mnist(split, n):
    dataset = load_dataset("demo-mnist", split)
    assert len(dataset) == n and dataset.images.shape[1:] == (1, 28, 28)
    assert dataset.classes == [str(d) for d in range(10)] and dataset.name == "demo-mnist"
    assert dataset.class_counts().tolist() == [n // 10] * 10
    assert int(dataset.images.max()) == 255 and int(dataset.images.min()) == 0


def test_demo_files_are_small():
    files = sorted(DEMO_DIR.glob("*.gz"))
    assert len(files) == 4 and sum(f.stat().st_size for f in files) < 1_000_000


@pytest.mark.parametrize("split, per_class", [("train", 200), ("test", 50)])
def test_demo_is_the_first_images_of_each_class(shared_data, split, per_class):
    full = load_dataset("mnist", split, root=shared_data / "mnist", progress=False)
    keep, seen = [], [0] * 10
    for i, label in enumerate(full.labels.tolist()):  # the definition, written as a plain loop
        if seen[label] < per_class:
            seen[label] += 1
            keep.append(i)
    demo = load_dataset("demo-mnist", split)
    assert torch.equal(demo.images, full.images[keep]) and torch.equal(demo.labels, full.labels[keep])


def test_demo_builder_is_deterministic(shared_data, tmp_path):
    subprocess.run(
        [
            sys.executable,
            str(REPO / "scripts" / "make_demo_sample.py"),
            "--source",
            str(shared_data / "mnist"),
            "--out",
            str(tmp_path),
        ],
        check=True,
        capture_output=True,
    )
    for shipped in DEMO_DIR.glob("*.gz"):
        assert (tmp_path / shipped.name).read_bytes() == shipped.read_bytes(), shipped.name
