"""In-memory batching: supported dataset kinds agree; bad data gives DataError."""

from __future__ import annotations

import pytest
import torch

from freqlens.errors import DataError
from freqlens.training.batches import as_tensor_data, split_batches


def test_image_dataset_pair_and_item_dataset_give_the_same_batches(demo_val):
    from_dataset = as_tensor_data(demo_val)
    from_pair = as_tensor_data((demo_val.images, demo_val.labels))
    float_items = [(demo_val.images[i].float() / 255, int(demo_val.labels[i])) for i in range(len(demo_val))]
    from_items = as_tensor_data(float_items)
    index = torch.tensor([5, 0, 17, 199])
    expected_x = demo_val.images[index].float() / 255
    for data in (from_dataset, from_pair, from_items):
        x, y = data.batch(index, torch.device("cpu"))
        assert x.dtype == torch.float32 and torch.equal(x, expected_x)
        assert torch.equal(y, demo_val.labels[index])


def test_2d_numpy_items_get_a_channel():
    items = [(torch.zeros(6, 7, dtype=torch.uint8).numpy(), 1), (torch.ones(6, 7, dtype=torch.uint8).numpy(), 0)]
    data = as_tensor_data(items)
    assert data.image_shape == (1, 6, 7)
    assert data.labels.tolist() == [1, 0]


@pytest.mark.parametrize(
    "dataset, fragment",
    [
        ([(torch.rand(1, 4, 4) * 2, 0)], r"\[0, 1\]"),
        ([(torch.full((1, 4, 4), float("nan")), 0)], "NaN"),
        ([(torch.rand(1, 4, 4), 0), (torch.rand(1, 5, 4), 1)], "different shapes"),
        ([(torch.rand(1, 4, 4), 0.5)], "integer"),
        ([(torch.rand(1, 4, 4), -1)], ">= 0"),
        ([], "empty"),
        ([("not an image", 0)], "tensor"),
        ((torch.zeros(3, 1, 4, 4, dtype=torch.int32), torch.zeros(3, dtype=torch.long)), "uint8"),
        ((torch.zeros(3, 1, 4, 4), torch.zeros(2, dtype=torch.long)), "labels"),
        (42, "ImageDataset"),
    ],
)
def test_bad_data_is_a_data_error(dataset, fragment):
    with pytest.raises(DataError, match=fragment):
        as_tensor_data(dataset)


def test_split_batches_covers_every_index_once_and_merges_a_single_leftover():
    order = torch.randperm(129, generator=torch.Generator().manual_seed(0))
    chunks = split_batches(order, 64)
    assert [len(c) for c in chunks] == [64, 65]
    assert torch.equal(torch.cat(chunks), order)
    assert [len(c) for c in split_batches(torch.arange(130), 64)] == [64, 64, 2]
    assert [len(c) for c in split_batches(order, 16, max_batches=3)] == [16, 16, 16]
