"""ImageDataset: constructor validation, indexing, subsets, float conversion, DataLoader compatibility."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from freqlens.data import ImageDataset
from freqlens.errors import DataError


@pytest.fixture
def small():
    generator = torch.Generator().manual_seed(1)
    images = torch.randint(0, 256, (7, 3, 5, 4), dtype=torch.uint8, generator=generator)
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 2])
    return ImageDataset(images, labels, ["a", "b", "c"], name="toy", split="test")


def test_attributes_and_getitem(small):
    assert len(small) == 7 and small.num_channels == 3 and small.image_size == (5, 4)
    assert small.images.dtype == torch.uint8 and small.images.is_contiguous()
    assert small.labels.dtype == torch.int64 and small.num_classes == 3
    for i in (0, 3, -1):
        image, label = small[i]
        assert image.shape == (3, 5, 4) and image.dtype == torch.uint8
        assert isinstance(label, int) and label == int(small.labels[i])
        assert torch.equal(image, small.images[i])
    assert small.class_counts().tolist() == [2, 2, 3]


def test_non_contiguous_input_is_made_contiguous():
    images = torch.zeros(4, 8, 8, 3, dtype=torch.uint8).permute(0, 3, 1, 2)
    assert not images.is_contiguous()
    dataset = ImageDataset(images, [0, 1, 0, 1], ["x", "y"])
    assert dataset.images.is_contiguous() and dataset.images.shape == (4, 3, 8, 8)


@pytest.mark.parametrize("indices", [[4, 0, 2], torch.tensor([4, 0, 2]), np.array([4, 0, 2]), [-3, 0, 2]])
def test_subset_matches_manual_indexing(small, indices):
    sub = small.subset(indices)
    expected = torch.as_tensor(np.asarray(indices)) % len(small)
    assert torch.equal(sub.images, small.images[expected])
    assert torch.equal(sub.labels, small.labels[expected])
    assert sub.classes == small.classes and sub.name == "toy" and sub.split == "test"


def test_subset_mask_slice_and_empty(small):
    mask = small.labels == 2
    assert torch.equal(small.subset(mask).images, small.images[mask])
    assert torch.equal(small.subset(slice(1, 6, 2)).labels, small.labels[1:6:2])
    assert len(small.subset([])) == 0


@pytest.mark.parametrize("bad", [[7], [-8], torch.ones(3, dtype=torch.bool), [[0, 1]], [0.5]])
def test_subset_rejects_bad_indices(small, bad):
    with pytest.raises(IndexError):
        small.subset(bad)


def test_float_images(small):
    x = small.float_images()
    assert x.dtype == torch.float32 and x.shape == small.images.shape
    assert torch.allclose(x * 255, small.images.float())
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0
    assert torch.equal(small.float_images([1, 2]), x[[1, 2]])
    assert small.images.dtype == torch.uint8  # the stored images are untouched


def test_repr_names_what_matters(small):
    text = repr(small)
    for fragment in ("toy", "test", "n=7", "3×5×4", "classes=3"):
        assert fragment in text


def test_dataloader_collates_batches(small):
    images, labels = next(iter(DataLoader(small, batch_size=4, shuffle=False)))
    assert images.shape == (4, 3, 5, 4) and images.dtype == torch.uint8
    assert torch.equal(labels, small.labels[:4])


@pytest.mark.parametrize(
    "images, labels, classes, fragment",
    [
        (torch.zeros(2, 1, 4, 4), [0, 0], ["a"], "uint8"),
        (np.zeros((2, 1, 4, 4), np.uint8), [0, 0], ["a"], "torch.Tensor"),
        (torch.zeros(2, 4, 4, dtype=torch.uint8), [0, 0], ["a"], "4-D"),
        (torch.zeros(2, 1, 4, 4, dtype=torch.uint8), [0, 0, 0], ["a"], "3 labels"),
        (torch.zeros(2, 1, 4, 4, dtype=torch.uint8), [0, 2], ["a", "b"], "labels must lie"),
        (torch.zeros(2, 1, 4, 4, dtype=torch.uint8), [-1, 0], ["a", "b"], "labels must lie"),
        (torch.zeros(2, 1, 4, 4, dtype=torch.uint8), [0.0, 1.0], ["a", "b"], "integers"),
        (torch.zeros(2, 1, 4, 4, dtype=torch.uint8), [[0, 1]], ["a", "b"], "1-D"),
        (torch.zeros(2, 1, 4, 4, dtype=torch.uint8), [0, 0], [], "at least one class"),
        (torch.zeros(2, 1, 4, 4, dtype=torch.uint8), [0, 0], ["a", "a"], "duplicate"),
    ],
)
def test_constructor_validates(images, labels, classes, fragment):
    with pytest.raises(DataError, match=fragment):
        ImageDataset(images, labels, classes)
