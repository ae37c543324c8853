"""swap_pooling: max pools and strided convolutions -> average pooling, shapes and weights kept."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from freqlens.models import build, model_spec, swap_pooling

from ._shapes import output_shapes

#: every zoo model with pooling or strides (narrow variants: same topology, faster)
SWAPPABLE = {
    "fcnn": {"width": 8},
    "lenet": {},
    "vgg11": {"width": 8},
    "vgg16": {"width": 8},
    "resnet_small": {"widths": [8, 16, 32]},
    "resnet18": {"widths": [8, 16, 32, 64]},
    "vit_tiny": {"dim": 16, "depth": 1},
    "convnext_tiny": {"dims": [8, 16, 32]},
}


def _to_replace(model: nn.Module) -> list[str]:
    return [
        name for name, m in model.named_modules()
        if isinstance(m, (nn.MaxPool2d, nn.AdaptiveMaxPool2d))
        or (isinstance(m, nn.Conv2d) and tuple(m.stride) != (1, 1))
    ]


@pytest.mark.parametrize("name", SWAPPABLE)
@pytest.mark.parametrize("size", [32, 33])
def test_swap_removes_max_pools_and_strides_and_keeps_every_shape(name, size):
    model = build(name, 3, image_size=size, **SWAPPABLE[name]).eval()
    replaced = _to_replace(model)
    assert replaced, f"{name} has nothing to swap"
    swapped = swap_pooling(model, "avg").eval()
    assert _to_replace(swapped) == []
    x = torch.rand(2, 3, size, size)
    # the module at each replaced place yields the same shape as before (for odd sizes too)
    assert output_shapes(swapped, replaced, x) == output_shapes(model, replaced, x)
    assert swapped(x).shape == model(x).shape == (2, 10)


@pytest.mark.parametrize("name", ["lenet", "resnet_small"])
def test_original_untouched_and_weights_copied(name):
    model = build(name, 1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    replaced = set(_to_replace(model))
    swapped = swap_pooling(model, "avg")
    # original: same modules and values
    assert set(_to_replace(model)) == replaced
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert model_spec(model)["kwargs"]["pooling"] is None
    # swapped: every original value, under "<conv>.0." for unstrided convolutions
    new_state = swapped.state_dict()
    for key, value in before.items():
        module, _, leaf = key.rpartition(".")
        new_key = f"{module}.0.{leaf}" if module in replaced else key
        assert torch.equal(new_state[new_key], value), key
    assert len(new_state) == len(before)
    # deep copy: changing the copy does not change the original
    with torch.no_grad():
        next(swapped.parameters()).add_(1.0)
    assert torch.equal(next(model.parameters()), next(iter(before.values())))


def test_swapped_spec_rebuilds_the_same_architecture():
    swapped = swap_pooling(build("resnet_small", 1, mean=[0.5], std=[0.5]), "avg")
    spec = model_spec(swapped)
    assert spec["kwargs"]["pooling"] == "avg"
    rebuilt = build(spec["name"], **spec["kwargs"])
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {
        k: v.shape for k, v in swapped.state_dict().items()
    }


def test_strided_conv_becomes_conv_then_average():
    """By linearity a 1×1 stride-2 conv + average pool equals average pooling the input first."""
    torch.manual_seed(0)
    conv = nn.Conv2d(2, 3, 1, stride=2, bias=False)
    swapped = swap_pooling(nn.Sequential(conv), "avg")
    x = torch.rand(1, 2, 7, 9)
    expected = F.conv2d(F.avg_pool2d(x, 2, ceil_mode=True), conv.weight)
    torch.testing.assert_close(swapped(x), expected)
    assert swapped(x).shape == conv(x).shape == (1, 3, 4, 5)


@pytest.mark.parametrize("kernel,stride,padding,ceil", [(2, 2, 0, True), (3, 2, 1, False), (3, 2, 1, True)])
def test_max_pool_becomes_average_of_the_same_windows(kernel, stride, padding, ceil):
    pool = nn.MaxPool2d(kernel, stride, padding, ceil_mode=ceil)
    swapped = swap_pooling(pool, "avg")
    assert isinstance(swapped, nn.AvgPool2d) and isinstance(pool, nn.MaxPool2d)
    x = torch.rand(1, 1, 5, 5)
    out = swapped(x)
    assert out.shape == pool(x).shape
    # the window of output (i, j), clipped to the image (padding and overhang are not counted)
    for i in range(out.shape[-2]):
        for j in range(out.shape[-1]):
            r0, c0 = i * stride - padding, j * stride - padding
            window = x[0, 0, max(r0, 0) : min(r0 + kernel, 5), max(c0, 0) : min(c0 + kernel, 5)]
            torch.testing.assert_close(out[0, 0, i, j], window.mean())


def test_adaptive_max_pool_becomes_adaptive_average():
    swapped = swap_pooling(nn.Sequential(nn.AdaptiveMaxPool2d((2, 3))), "avg")
    assert isinstance(swapped[0], nn.AdaptiveAvgPool2d) and swapped[0].output_size == (2, 3)


def test_shared_module_is_replaced_once():
    pool = nn.MaxPool2d(2)
    model = nn.Sequential(pool, pool)
    swapped = swap_pooling(model, "avg")
    assert swapped[0] is swapped[1] and isinstance(swapped[0], nn.AvgPool2d)


def test_unknown_mode_and_unswappable_pools():
    with pytest.raises(ValueError, match="unknown mode"):
        swap_pooling(build("lenet"), "median")
    with pytest.raises(ValueError, match="return_indices"):
        swap_pooling(nn.MaxPool2d(2, return_indices=True), "avg")
