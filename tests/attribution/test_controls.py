"""The centre-prior control map: closed form, no model call, follows the inputs, clear errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from freqlens.attribution import CentrePrior, count_passes


def _model() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 9 * 12, 4))


def test_closed_form_and_symmetry():
    inputs = torch.rand(2, 3, 9, 12)
    maps = CentrePrior(_model(), std_fraction=0.5).attribute(inputs)
    assert maps.shape == (2, 1, 9, 12)
    rows = torch.arange(9.0) - 4.0
    cols = torch.arange(12.0) - 5.5
    expected = torch.exp(-(rows[:, None] ** 2 + cols[None, :] ** 2) / (2 * 4.5**2))
    torch.testing.assert_close(maps[0, 0], expected)
    torch.testing.assert_close(maps, maps.flip(-1))  # symmetric about the centre
    torch.testing.assert_close(maps, maps.flip(-2))
    assert torch.equal(maps[0], maps[1])  # the same map for every image


def test_ignores_image_and_model_and_never_calls_it():
    model = _model()
    with count_passes(model) as passes:
        a = CentrePrior(model).attribute(torch.rand(3, 3, 9, 12), torch.tensor([0, 1, 2]))
        b = CentrePrior(model).attribute(torch.zeros(3, 3, 9, 12))
    assert passes.forward == 0 and passes.backward == 0
    assert torch.equal(a, b)
    assert CentrePrior(model).planned_passes(9, 12).forward == 0


def test_dtype_follows_the_inputs():
    maps = CentrePrior(_model())(torch.rand(1, 3, 9, 12, dtype=torch.float64))
    assert maps.dtype == torch.float64


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), "wide", True])
def test_bad_std_fraction(bad):
    with pytest.raises(ValueError, match="std_fraction"):
        CentrePrior(_model(), std_fraction=bad)
