"""reduce_channels: closed forms against numpy, shapes and errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from freqlens.attribution import REDUCTIONS, reduce_channels

NUMPY = {
    "sum": lambda a: a.sum(1),
    "mean": lambda a: a.mean(1),
    "abs_sum": lambda a: np.abs(a).sum(1),
    "abs_mean": lambda a: np.abs(a).mean(1),
    "max_abs": lambda a: np.abs(a).max(1),
}


@pytest.mark.parametrize("how", REDUCTIONS)
def test_matches_numpy(how):
    maps = torch.randn(2, 3, 5, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    out = reduce_channels(maps, how)
    assert out.shape == (2, 5, 4)
    np.testing.assert_allclose(out.numpy(), NUMPY[how](maps.numpy()), rtol=1e-12)


def test_hand_computed_pixel():
    maps = torch.tensor([1.0, -3.0, 2.0]).view(1, 3, 1, 1)
    values = {how: float(reduce_channels(maps, how)) for how in REDUCTIONS}
    assert values == {"sum": 0.0, "mean": 0.0, "abs_sum": 6.0, "abs_mean": 2.0, "max_abs": 3.0}


@pytest.mark.parametrize("how", REDUCTIONS)
def test_single_channel_maps(how):
    maps = torch.randn(3, 1, 6, 6)
    expected = maps[:, 0] if how in ("sum", "mean") else maps[:, 0].abs()
    torch.testing.assert_close(reduce_channels(maps, how), expected)


def test_default_is_sum():
    maps = torch.randn(1, 3, 2, 2)
    torch.testing.assert_close(reduce_channels(maps), maps.sum(1))


@pytest.mark.parametrize(("maps", "how", "error", "message"), [
    (torch.randn(3, 4, 4), "sum", ValueError, "B×C×H×W"),
    (torch.ones(1, 3, 4, 4, dtype=torch.long), "sum", ValueError, "floating"),
    (torch.randn(1, 3, 4, 4), "median", ValueError, "unknown channel reduction"),
    (np.ones((1, 3, 4, 4)), "sum", TypeError, "torch.Tensor"),
])
def test_bad_inputs(maps, how, error, message):
    with pytest.raises(error, match=message):
        reduce_channels(maps, how)
