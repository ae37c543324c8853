"""antialias / BlurPool2d: anti-aliased twins (Zhang 2019) keep shapes, weights and parameters, rebuild
from their spec, equal the original for filter_size=1, and are much less sensitive to one-pixel shifts."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from freqlens.cli import main
from freqlens.errors import ModelError
from freqlens.models import (
    BlurPool2d,
    antialias,
    build,
    load,
    model_spec,
    num_parameters,
    register,
    save_model,
    swap_pooling,
    unregister,
)
from freqlens.models.blurpool import binomial_filter
from freqlens.models.registry import state_shapes

from ._shapes import output_shapes

#: every zoo model with strided operations (narrow variants: same topology, faster)
STRIDED = {
    "lenet": {},
    "vgg11": {"width": 8},
    "resnet18": {"widths": [8, 16, 32, 64]},
    "resnet_small": {"widths": [8, 16, 32]},
    "convnext_tiny": {"dims": [8, 16, 32]},
    "vit_tiny": {"dim": 16, "depth": 1},
    "fcnn": {"width": 8},
}


def _strided(model: nn.Module) -> list[str]:
    return [name for name, m in model.named_modules()
            if isinstance(m, (nn.Conv2d, nn.MaxPool2d)) and tuple(torch.nn.modules.utils._pair(m.stride)) != (1, 1)]


def _twin(name: str, in_channels: int, size: int, filter_size: int = 3) -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(0)
    model = build(name, in_channels, image_size=size, **STRIDED[name]).eval()
    return model, antialias(model, filter_size).eval()


@pytest.mark.parametrize("name", STRIDED)
@pytest.mark.parametrize("in_channels,size", [(3, 32), (1, 28), (3, 33)])
def test_twin_has_no_strided_op_and_keeps_every_shape_and_parameter(name, in_channels, size):
    model, twin = _twin(name, in_channels, size)
    assert _strided(model), f"{name} has nothing to anti-alias"
    assert _strided(twin) == []
    blurs = [m for m in twin.modules() if isinstance(m, BlurPool2d)]
    assert len(blurs) == len(_strided(model))
    assert all(not list(blur.parameters()) for blur in blurs)
    # every module of the original (blocks, stages, replaced layers) is still there, with the same output shape
    names = [n for n, _ in model.named_modules() if n]
    x = torch.rand(2, in_channels, size, size)
    assert output_shapes(twin, names, x) == output_shapes(model, names, x)
    assert twin(x).shape == model(x).shape == (2, 10)
    assert num_parameters(twin, trainable_only=True) == num_parameters(model, trainable_only=True)
    # the filters are not weights: same state-dict values, strided convs under "<name>.0."
    replaced = set(_strided(model))
    twin_state = twin.state_dict()
    assert len(twin_state) == len(model.state_dict())
    for key, value in model.state_dict().items():
        module, _, leaf = key.rpartition(".")
        assert torch.equal(twin_state[f"{module}.0.{leaf}" if module in replaced else key], value), key


@pytest.mark.parametrize("name", STRIDED)
@pytest.mark.parametrize("in_channels,size", [(3, 32), (1, 28), (3, 33)])
def test_filter_size_one_is_the_original_model(name, in_channels, size):
    model, twin = _twin(name, in_channels, size, filter_size=1)
    x = torch.rand(3, in_channels, size, size)
    with torch.no_grad():
        # the same sums (bit-identical on CPU); only a convolution algorithm chosen per stride could round apart
        torch.testing.assert_close(twin(x), model(x), rtol=0, atol=1e-6)


@pytest.mark.parametrize("kernel,stride,padding,dilation,ceil", [
    (2, 2, 0, 1, True), (2, 2, 0, 1, False), (3, 2, 1, 1, True), (3, 2, 1, 1, False), (3, 3, 0, 1, True),
    (3, 2, 0, 2, False), ((3, 2), (2, 3), (1, 0), 1, True),
])
def test_max_blur_pool_matches_the_pool_for_every_size(kernel, stride, padding, dilation, ceil):
    pool = nn.MaxPool2d(kernel, stride, padding, dilation=dilation, ceil_mode=ceil)
    for height in range(5, 12):
        x = torch.randn(2, 3, height, height + 1)
        for filter_size in (1, 2, 3, 5):
            out = antialias(pool, filter_size)(x)
            assert out.shape == pool(x).shape, (height, filter_size)
            if filter_size == 1:  # dense max then subsampling: the same windows, partial ones included
                assert torch.equal(out, pool(x))


@pytest.mark.parametrize("kernel,stride,padding", [(2, 2, 0), (3, 2, 1), (4, 4, 0), ((3, 1), (2, 1), (1, 0))])
def test_conv_and_average_pool_twins_match_for_every_size(kernel, stride, padding):
    torch.manual_seed(0)
    conv = nn.Conv2d(2, 3, kernel, stride, padding)
    avg = nn.AvgPool2d(kernel, stride, padding)
    for height in range(5, 12):
        x = torch.randn(1, 2, height, height + 3)
        for filter_size in (1, 2, 3, 4, 7):
            assert antialias(conv, filter_size)(x).shape == conv(x).shape
            assert antialias(avg, filter_size)(x).shape == avg(x).shape
        torch.testing.assert_close(antialias(conv, 1)(x), conv(x), rtol=0, atol=1e-6)
        assert torch.equal(antialias(avg, 1)(x), avg(x))
    ceil_avg = nn.AvgPool2d(2, ceil_mode=True)  # left as it is (documented)
    assert isinstance(antialias(nn.Sequential(ceil_avg))[0], nn.AvgPool2d)


def test_binomial_filters_in_closed_form():
    torch.testing.assert_close(binomial_filter(1), torch.ones(1, 1, dtype=torch.float64))
    row3 = torch.tensor([1.0, 2.0, 1.0], dtype=torch.float64) / 4
    row4 = torch.tensor([1.0, 3.0, 3.0, 1.0], dtype=torch.float64) / 8
    torch.testing.assert_close(binomial_filter(3), torch.outer(row3, row3))
    torch.testing.assert_close(binomial_filter(4), torch.outer(row4, row4))
    for n in range(1, 8):
        kernel = binomial_filter(n)
        assert kernel.shape == (n, n) and kernel.sum().item() == pytest.approx(1.0)
        assert torch.equal(kernel, kernel.T) and torch.equal(kernel, kernel.flip(0))
        assert kernel[0, 0].item() == pytest.approx(1 / 4 ** (n - 1))
    blur = BlurPool2d(3)
    torch.testing.assert_close(blur.filter, torch.outer(row3, row3).float())
    assert "filter" not in blur.state_dict() and not list(blur.parameters())


@pytest.mark.parametrize("filter_size", range(1, 8))
@pytest.mark.parametrize("stride", [1, 2, 3, (2, 1)])
def test_blur_pool_shape_and_constant_preserved(filter_size, stride):
    strides = torch.nn.modules.utils._pair(stride)
    for height, width in [(1, 1), (2, 3), (5, 8), (9, 4)]:
        x = torch.full((2, 3, height, width), 0.7)
        out = BlurPool2d(filter_size, stride)(x)
        assert out.shape == (2, 3, math.ceil(height / strides[0]), math.ceil(width / strides[1]))
        torch.testing.assert_close(out, torch.full_like(out, 0.7))  # the filter sums to 1, reflect keeps constants


def test_blur_pool_is_depthwise_deterministic_and_differentiable():
    torch.manual_seed(1)
    x = torch.rand(2, 4, 9, 9, dtype=torch.float64, requires_grad=True)
    blur = BlurPool2d(3, 2).double()
    out = blur(x)
    # one channel at a time gives the same: no mixing between channels
    alone = torch.cat([blur(x[:, c : c + 1]) for c in range(4)], dim=1)
    torch.testing.assert_close(out, alone)
    assert torch.equal(out, blur(x))
    # interior value = the binomial average of its 3×3 neighbourhood
    expected = (x[0, 1, 1:4, 1:4] * binomial_filter(3)).sum()
    torch.testing.assert_close(out[0, 1, 1, 1], expected)
    assert torch.autograd.gradcheck(blur, (x,))


def test_blur_pool_is_nearly_invariant_to_a_one_pixel_shift():
    """Vertical stripes (-1)^j: plain stride-2 subsampling flips sign under a one-pixel shift; the
    [1, 2, 1] blur removes the Nyquist frequency, so its output does not move."""
    columns = torch.arange(16)
    stripes = ((-1.0) ** columns).expand(1, 1, 16, 16).clone()
    shifted = torch.roll(stripes, 1, dims=-1)
    plain = (stripes[..., ::2, ::2] - shifted[..., ::2, ::2]).abs().mean()
    assert plain.item() == pytest.approx(2.0)
    blur = BlurPool2d(3, 2)
    assert (blur(stripes) - blur(shifted)).abs().max().item() < 1e-6
    # a high but not Nyquist frequency (0.4 cycles / pixel): attenuated by cos²(0.4π) ≈ 0.1 (interior)
    wave = torch.cos(2 * math.pi * 0.4 * torch.arange(40.0)).expand(1, 1, 8, 40).clone()
    moved = torch.cos(2 * math.pi * 0.4 * (torch.arange(40.0) - 1)).expand(1, 1, 8, 40).clone()
    plain = (wave[..., ::2, ::2] - moved[..., ::2, ::2]).abs()[..., 2:-2].mean()
    blurred = (blur(wave) - blur(moved)).abs()[..., 2:-2].mean()
    assert blurred < 0.2 * plain
    # and through a model: a 1×1 stride-2 "identity" convolution and its twin
    conv = nn.Conv2d(1, 1, 1, stride=2, bias=False)
    nn.init.ones_(conv.weight)
    twin = antialias(conv)
    with torch.no_grad():
        assert (conv(stripes) - conv(shifted)).abs().mean() == pytest.approx(2.0)
        assert (twin(stripes) - twin(shifted)).abs().max() < 1e-6


def test_original_is_not_modified():
    model = build("resnet_small", 1, widths=[8, 16, 32])
    before = {k: v.clone() for k, v in model.state_dict().items()}
    strided = _strided(model)
    twin = antialias(model)
    assert _strided(model) == strided
    assert not any(isinstance(m, BlurPool2d) for m in model.modules())
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert model_spec(model)["kwargs"]["antialias"] is None and model_spec(twin)["kwargs"]["antialias"] == 3
    with torch.no_grad():
        next(twin.parameters()).add_(1.0)
    assert torch.equal(next(model.parameters()), next(iter(before.values())))


@pytest.mark.parametrize("name,in_channels,kwargs", [
    ("resnet_small", 3, {"widths": [8, 16, 32], "mean": [0.5, 0.4, 0.3], "std": [0.2, 0.2, 0.3]}),
    ("fcnn", 1, {"width": 8}),  # ceil-mode max pools at 28 px (7 -> 4)
    ("vit_tiny", 3, {"dim": 16, "depth": 1, "antialias": 5}),
])
def test_build_antialias_round_trips_through_a_checkpoint(tmp_path, name, in_channels, kwargs):
    kwargs = {"antialias": 3, **kwargs}
    torch.manual_seed(0)
    model = build(name, in_channels, 5, **kwargs)
    size = 28 if in_channels == 1 else 32
    with torch.no_grad():  # move the weights away from their initial values, and the BatchNorm statistics
        model.train()(torch.rand(4, in_channels, size, size))
        for parameter in model.parameters():
            parameter.add_(0.01 * torch.randn_like(parameter))
    model.eval()
    assert model_spec(model)["kwargs"]["antialias"] == kwargs["antialias"]
    assert _strided(model) == [] and any(isinstance(m, BlurPool2d) for m in model.modules())
    # build(antialias=N) is antialias(build(), N): same modules, same initial weights
    torch.manual_seed(0)
    plain = build(name, in_channels, 5, **{**kwargs, "antialias": None})
    torch.manual_seed(0)
    again = build(name, in_channels, 5, **kwargs)
    assert model_spec(antialias(plain, kwargs["antialias"])) == model_spec(again)
    assert {k: v.shape for k, v in antialias(plain, kwargs["antialias"]).state_dict().items()} == \
        {k: v.shape for k, v in again.state_dict().items()} == state_shapes(name, in_channels=in_channels,
                                                                            num_classes=5, **kwargs)
    path = save_model(model, tmp_path / "twin.pt")
    loaded = load(path)
    assert model_spec(loaded) == model_spec(model)
    assert loaded.state_dict().keys() == model.state_dict().keys()
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in model.state_dict().items())
    x = torch.rand(3, in_channels, size, size)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    # the twin made by antialias() on a built model is saved and rebuilt the same way
    by_function = antialias(build("lenet", 1), 2)
    assert model_spec(load(save_model(by_function, tmp_path / "f.pt")))["kwargs"]["antialias"] == 2


@pytest.mark.parametrize("value", [True, False, 0, 8, -1, 3.0, "3", [3]])
def test_bad_antialias_values_raise_model_error(value):
    with pytest.raises(ModelError, match="antialias"):
        build("lenet", antialias=value)
    with pytest.raises(ModelError, match="antialias"):
        state_shapes("lenet", antialias=value)
    if not isinstance(value, list):
        with pytest.raises(ModelError):
            antialias(nn.Conv2d(1, 1, 3, stride=2), value)


def test_twice_or_after_a_pooling_swap_is_refused_and_build_combines_both():
    with pytest.raises(ModelError, match="already anti-aliased"):
        antialias(build("lenet", antialias=3))
    with pytest.raises(ModelError, match="pooling"):
        antialias(swap_pooling(build("lenet"), "avg"))
    with pytest.raises(ModelError, match="return_indices"):
        antialias(nn.MaxPool2d(2, return_indices=True))
    both = build("vgg11", 1, width=8, pooling="avg", antialias=3).eval()
    assert not any(isinstance(m, nn.MaxPool2d) for m in both.modules())
    assert sum(isinstance(m, BlurPool2d) for m in both.modules()) == 5
    x = torch.rand(2, 1, 28, 28)
    assert torch.isfinite(both(x)).all() and both(x).shape == (2, 10)
    assert swap_pooling(antialias(build("vgg11", 1, width=8)), "avg").state_dict().keys() == both.state_dict().keys()


def test_registered_model_takes_antialias():
    def make(width: int = 4) -> nn.Module:
        return nn.Sequential(nn.Conv2d(1, width, 3, stride=2, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                             nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, 10))

    register("blur_test_net", make)
    try:
        model = build("blur_test_net", antialias=4)
        assert model_spec(model)["kwargs"] == {"width": 4, "mean": None, "std": None, "pooling": None,
                                               "antialias": 4}
        assert _strided(model) == [] and sum(isinstance(m, BlurPool2d) for m in model.modules()) == 2
        assert model(torch.rand(2, 1, 28, 28)).shape == (2, 10)
    finally:
        unregister("blur_test_net")


def test_train_command_antialias(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--dataset", "demo-mnist", "--model", "lenet", "--epochs", "1", "--max-batches", "2",
                 "--antialias", "3", "--out", str(out), "--quiet"]) == 0
    model = load(out / "last.pt")
    assert model_spec(model)["kwargs"]["antialias"] == 3
    assert _strided(model) == [] and sum(isinstance(m, BlurPool2d) for m in model.modules()) == 2
    assert model(torch.rand(2, 1, 28, 28)).shape == (2, 10)
    with pytest.raises(SystemExit) as error:
        main(["train", "--dataset", "demo-mnist", "--model", "lenet", "--antialias", "8", "--out", str(out)])
    assert error.value.code == 2
    assert "--antialias" in capsys.readouterr().err
