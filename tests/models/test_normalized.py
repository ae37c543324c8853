"""Normalized: per-channel (x - mean) / std in front of a model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from freqlens.errors import ModelError
from freqlens.models import Normalized, build


class Recorder(nn.Module):
    """Returns its input unchanged (the arithmetic of the wrapper is then visible)."""

    def forward(self, x):
        return x


def test_arithmetic_matches_numpy_per_channel():
    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    model = Normalized(Recorder(), mean, std)
    x = torch.rand(2, 3, 5, 4, dtype=torch.float32)
    expected = np.empty((2, 3, 5, 4), dtype=np.float64)
    for c in range(3):
        expected[:, c] = (x[:, c].numpy().astype(np.float64) - mean[c]) / std[c]
    np.testing.assert_allclose(model(x).numpy(), expected, rtol=1e-5, atol=1e-6)


def test_gradient_is_scaled_by_one_over_std():
    model = Normalized(Recorder(), [0.1, 0.2], [0.5, 0.25])
    x = torch.rand(1, 2, 3, 3, requires_grad=True)
    model(x).sum().backward()
    torch.testing.assert_close(x.grad[0, :, 0, 0], torch.tensor([2.0, 4.0]))


def test_buffers_exposed_saved_and_moved():
    inner = nn.Conv2d(1, 2, 3)
    model = Normalized(inner, [0.5], [0.25])
    assert model.model is inner
    assert set(model.state_dict()) == {"mean", "std", "model.weight", "model.bias"}
    model = model.double()
    assert model.mean.dtype == torch.float64
    assert model(torch.rand(1, 1, 5, 5, dtype=torch.float64)).dtype == torch.float64


@pytest.mark.parametrize(
    "mean,std,fragment",
    [
        ([0.5, 0.5], [0.5], "one per channel"),
        ([0.5], [0.0], "positive"),
        ([0.5], [-1.0], "positive"),
        ([float("nan")], [1.0], "finite"),
        ([], [], "empty"),
        ("abc", [1.0], "list of floats"),
    ],
)
def test_bad_mean_std_raise_model_error(mean, std, fragment):
    with pytest.raises(ModelError, match=fragment):
        Normalized(Recorder(), mean, std)


def test_channel_mismatch_with_model_or_input():
    with pytest.raises(ModelError, match="takes 3 channel"):
        Normalized(build("lenet", 3), [0.5], [0.5])
    model = Normalized(Recorder(), [0.5, 0.5], [0.5, 0.5])
    with pytest.raises(ModelError, match="input has 3"):
        model(torch.rand(1, 3, 4, 4))


def test_tensor_mean_std_accepted():
    model = Normalized(Recorder(), torch.tensor([0.5, 0.25]), torch.tensor([2.0, 4.0]))
    x = torch.ones(1, 2, 1, 1)
    torch.testing.assert_close(model(x).flatten(), torch.tensor([0.25, 0.1875]))
