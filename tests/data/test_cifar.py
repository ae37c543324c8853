"""CIFAR-10 python batches: fake batches written in the official format, corrupt and hostile pickles."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import torch

from freqlens.data import load_dataset
from freqlens.errors import DataError


@pytest.mark.parametrize("protocol", [2, 5])
@pytest.mark.parametrize("root_is_batches_folder", [False, True])
def test_loads_batches_in_order(tmp_path, fake_cifar, cifar_names, protocol, root_is_batches_folder):
    folder = tmp_path / "cifar-10-batches-py"
    written = fake_cifar(folder, protocol=protocol)
    root = folder if root_is_batches_folder else tmp_path
    for split in ("train", "test"):
        dataset = load_dataset("cifar10", split, root=root, progress=False)
        images, labels = written[split]
        assert dataset.images.shape == (len(labels), 3, 32, 32) and dataset.images.dtype == torch.uint8
        assert torch.equal(dataset.images, torch.from_numpy(images))
        assert dataset.labels.tolist() == labels.tolist()
        assert dataset.classes == cifar_names and dataset.name == "cifar10"
    # the channel layout of the format: the first 1024 values of a row are the red plane, row-major
    row = written["test"][0].reshape(-1, 3072)[0]
    red = load_dataset("cifar10", "test", root=root).images[0, 0]
    assert torch.equal(red, torch.from_numpy(row[:1024]).view(32, 32))


def test_missing_batches_suggest_download(tmp_path, fake_cifar):
    fake_cifar(tmp_path / "cifar-10-batches-py")
    os.remove(tmp_path / "cifar-10-batches-py" / "data_batch_3")
    with pytest.raises(DataError, match=r"data_batch_3.*download=True.*--data-dir"):
        load_dataset("cifar10", "train", root=tmp_path)
    assert len(load_dataset("cifar10", "test", root=tmp_path)) == 6  # the other split is unaffected
    with pytest.raises(DataError, match="download=True"):
        load_dataset("cifar10", "test", root=tmp_path / "empty")


def test_truncated_pickle_names_file(tmp_path, fake_cifar):
    folder = tmp_path / "cifar-10-batches-py"
    fake_cifar(folder)
    batch = folder / "test_batch"
    batch.write_bytes(batch.read_bytes()[:-100])
    with pytest.raises(DataError, match=r"test_batch: corrupt CIFAR-10 pickle") as info:
        load_dataset("cifar10", "test", root=tmp_path)
    assert "\n" not in str(info.value)


class _Evil:
    def __init__(self, target: str) -> None:
        self.target = target

    def __reduce__(self):
        return (os.remove, (self.target,))


def test_hostile_pickle_is_refused(tmp_path, fake_cifar):
    folder = tmp_path / "cifar-10-batches-py"
    fake_cifar(folder)
    canary = tmp_path / "canary"
    canary.write_text("still here")
    (folder / "test_batch").write_bytes(pickle.dumps({b"data": _Evil(str(canary)), b"labels": []}))
    with pytest.raises(DataError, match="refusing to load posix.remove|refusing to load os.remove"):
        load_dataset("cifar10", "test", root=tmp_path)
    assert canary.read_text() == "still here"


@pytest.mark.parametrize(
    "data, labels, fragment",
    [
        (np.zeros((3, 100), np.uint8), [0, 1, 2], "uint8 N×3072"),
        (np.zeros((3, 3072), np.float32), [0, 1, 2], "uint8 N×3072"),
        (np.zeros((3, 3072), np.uint8), [0, 1], "3 images but 2 labels"),
        (np.zeros((3, 3072), np.uint8), [0, 1, 10], "labels must lie in 0..9"),
    ],
)
def test_bad_batch_content(tmp_path, fake_cifar, cifar_batch_writer, data, labels, fragment):
    folder = tmp_path / "cifar-10-batches-py"
    fake_cifar(folder)
    cifar_batch_writer(folder / "test_batch", data, labels)
    with pytest.raises(DataError, match=fragment):
        load_dataset("cifar10", "test", root=tmp_path)


def test_not_a_dict(tmp_path, fake_cifar):
    folder = tmp_path / "cifar-10-batches-py"
    fake_cifar(folder)
    (folder / "test_batch").write_bytes(pickle.dumps([1, 2, 3]))
    with pytest.raises(DataError, match="not a CIFAR-10 batch"):
        load_dataset("cifar10", "test", root=tmp_path)
