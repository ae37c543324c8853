"""The samples shipped in the package: ``demo-cifar10`` (1,000 CIFAR-10 test images), ``demo-mnist`` and
the ``demo`` alias; the CIFAR-10 sample is rebuilt byte for byte by its script from the shared archive."""

from __future__ import annotations

import fnmatch
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from freqlens.data import load_dataset, loader
from freqlens.data.samples import DEMO_CIFAR10_FILE, demo_cifar10_arrays
from freqlens.errors import DataError

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "src" / "freqlens" / "data" / "demo_cifar10" / DEMO_CIFAR10_FILE
CIFAR_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def test_demo_cifar10_holds_100_uint8_images_per_class():
    sample = load_dataset("demo-cifar10", split="test")
    assert len(sample) == 1000
    assert sample.images.dtype == torch.uint8 and tuple(sample.images.shape) == (1000, 3, 32, 32)
    assert sample.labels.dtype == torch.int64
    assert sample.class_counts().tolist() == [100] * 10
    assert sample.classes == CIFAR_NAMES
    assert sample.name == "demo-cifar10" and sample.split == "test"
    assert 0 < float(sample.images.float().std()) and int(sample.images.max()) > 200  # real pixels


def test_demo_cifar10_file_records_its_draw():
    arrays = demo_cifar10_arrays()
    indices = arrays["source_indices"]
    assert indices.dtype == np.int64 and len(np.unique(indices)) == 1000
    assert np.all(np.diff(indices) > 0) and indices.min() >= 0 and indices.max() < 10000
    assert int(arrays["seed"]) == 13
    # the archive lists the test split class by class, 1,000 images each: index // 1000 is the label
    assert np.array_equal(indices // 1000, arrays["labels"])
    assert SAMPLE.stat().st_size <= 4_000_000


def test_demo_cifar10_has_no_train_split():
    with pytest.raises(DataError, match=r"only 1,000 CIFAR-10 test images.*cifar10") as info:
        load_dataset("demo-cifar10", split="train")
    assert "\n" not in str(info.value)


def test_damaged_sample_bytes_are_a_data_error():
    with pytest.raises(DataError, match="unreadable"):
        demo_cifar10_arrays(b"PK\x03\x04 not really a zip")


def test_demo_is_the_cifar_sample_and_demo_mnist_the_digits():
    assert loader.DEMO_ALIAS == "demo-cifar10"
    demo, cifar = load_dataset("demo", split="test"), load_dataset("demo-cifar10", split="test")
    assert torch.equal(demo.images, cifar.images) and torch.equal(demo.labels, cifar.labels)
    with pytest.raises(DataError, match="only 1,000 CIFAR-10 test images"):
        load_dataset("demo", split="train")
    for split, size in (("train", 2000), ("test", 500)):
        digits = load_dataset("demo-mnist", split=split)
        assert len(digits) == size and digits.num_channels == 1 and digits.name == "demo-mnist"


def test_demo_alias_follows_the_one_line_switch(monkeypatch):
    monkeypatch.setattr(loader, "DEMO_ALIAS", "demo-mnist")
    assert tuple(load_dataset("demo", split="test").images.shape) == (500, 1, 28, 28)


def test_package_data_globs_ship_the_sample():
    tomllib = pytest.importorskip("tomllib")
    globs = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["freqlens"]
    relative = SAMPLE.relative_to(REPO / "src" / "freqlens").as_posix()
    assert any(fnmatch.fnmatch(relative, pattern) for pattern in globs), (relative, globs)


def test_script_rebuilds_the_sample_byte_for_byte(shared_data, cifar_cache_dir, tmp_path):
    """Needs ../shared/data (skipped with a reason without it): the CIFAR-10 JPEG archive."""
    archive = shared_data / "cifar10" / "cifar10-jpeg.tar.gz"
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "make_demo_cifar10_sample.py"), "--source", str(archive),
         "--out", str(tmp_path), "--cache-dir", str(cifar_cache_dir)],
        capture_output=True, text=True, timeout=900, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / DEMO_CIFAR10_FILE).read_bytes() == SAMPLE.read_bytes()
    # and the shipped pixels are the archive's test images at the recorded indices
    test = load_dataset(archive, split="test", cache_dir=cifar_cache_dir, progress=False)
    arrays = demo_cifar10_arrays()
    chosen = torch.from_numpy(arrays["source_indices"])
    assert torch.equal(test.images[chosen], torch.from_numpy(arrays["images"]))
    assert torch.equal(test.labels[chosen], torch.from_numpy(arrays["labels"]))
