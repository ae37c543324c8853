"""Input checks of the zoo networks: any size for conv nets, exact size for mlp/vit, clear errors."""

from __future__ import annotations

import pytest
import torch

from freqlens.errors import ModelError
from freqlens.models import MODEL_NAMES

from .conftest import CONV_NETS, FIXED_SIZE


@pytest.mark.parametrize("name", CONV_NETS)
@pytest.mark.parametrize("size", [(33, 33), (28, 41)])
def test_conv_nets_take_odd_and_rectangular_sizes(zoo, name, size):
    model = zoo(name, 3)
    logits = model(torch.rand(2, 3, *size))
    assert logits.shape == (2, 7) and torch.isfinite(logits).all()


@pytest.mark.parametrize("name", CONV_NETS)
def test_min_size_is_exact(zoo, name):
    """``min_size`` works; one pixel less is refused with ModelError, and would really fail."""
    model = zoo(name, 1)
    assert model.min_size <= 28
    assert model(torch.rand(1, 1, model.min_size, model.min_size)).shape == (1, 7)
    if model.min_size > 1:
        too_small = torch.rand(1, 1, model.min_size - 1, 40)
        with pytest.raises(ModelError, match=rf"{model.arch}.*at least {model.min_size}"):
            model(too_small)
        with pytest.raises(RuntimeError):
            model._logits(too_small)  # unchecked forward: the check is not over-cautious


@pytest.mark.parametrize("name", FIXED_SIZE)
@pytest.mark.parametrize("in_channels,built,given", [(1, 28, 32), (3, 32, 28), (3, 32, 33)])
def test_fixed_size_models_refuse_other_sizes_clearly(zoo, name, in_channels, built, given):
    model = zoo(name, in_channels)
    with pytest.raises(ModelError) as info:
        model(torch.rand(2, in_channels, given, given))
    message = str(info.value)
    assert name in message and f"{built}×{built}" in message and f"{given}×{given}" in message


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_wrong_channel_count_raises_model_error(zoo, name):
    model = zoo(name, 3)
    with pytest.raises(ModelError, match=r"3 input channel\(s\) but got 1"):
        model(torch.rand(2, 1, 32, 32))


@pytest.mark.parametrize("bad", [torch.zeros(2, 3, 32, 32, dtype=torch.uint8), torch.rand(3, 32, 32), [1.0]])
def test_non_batches_raise_model_error(zoo, bad):
    with pytest.raises(ModelError, match="lenet"):
        zoo("lenet", 3)(bad)


def test_features_check_inputs_too(zoo):
    with pytest.raises(ModelError, match="channel"):
        zoo("resnet_small", 3).forward_features(torch.rand(1, 1, 32, 32))
