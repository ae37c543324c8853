"""Tests of the layer-wise high-frequency content of gradients (seed 001, Fig. 5)."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from freqlens.metrics.layers import default_layer_names, layer_hf_content
from freqlens.spectral import hf_power_ratio

SIZE = 16


class Shuffled(nn.Module):
    """Registration order (head, act, conv) differs from the call order (conv, act, pool, head)."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(4 * (SIZE // 2) ** 2, 3)
        self.act = nn.ReLU()
        self.conv = nn.Conv2d(2, 4, 3, padding=1)
        self.pool = nn.MaxPool2d(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.act(self.conv(x))).flatten(1))


class Broken(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.conv(x)
        raise RuntimeError("boom")


class SharedActivation(nn.Module):
    """One ReLU module called twice: reported as ``act`` and ``act#2``."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(2, 3, 3, padding=1)
        self.conv2 = nn.Conv2d(3, 3, 3, padding=1)
        self.act = nn.ReLU()
        self.head = nn.Linear(3 * SIZE * SIZE, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.act(self.conv2(self.act(self.conv1(x)))).flatten(1))


def _net(inplace: bool = False, seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(inplace=inplace), nn.Conv2d(4, 4, 3, stride=2, padding=1),
        nn.ReLU(inplace=inplace), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3),
    )


def _inputs(n: int = 4, channels: int = 2, size: int = SIZE, seed: int = 1) -> torch.Tensor:
    return torch.rand(n, channels, size, size, generator=torch.Generator().manual_seed(seed))


def _no_hooks(model: nn.Module) -> bool:
    return all(not m._forward_hooks and not m._backward_hooks and not m._forward_pre_hooks
               for m in model.modules())


def test_default_layers_in_forward_order_and_no_hooks_left():
    model = Shuffled()
    out = layer_hf_content(model, _inputs(), None, "hf_power")
    assert [name for name, _ in out] == ["conv", "act", "pool"]
    assert all(isinstance(v, float) and 0.0 <= v <= 1.0 for _, v in out)
    assert _no_hooks(model)


def test_repeated_module_calls_get_one_entry_each_and_mode_is_restored():
    model = SharedActivation()
    model.train()
    out = layer_hf_content(model, _inputs(), None, "laplacian")
    assert [name for name, _ in out] == ["conv1", "act", "conv2", "act#2"]
    assert all(m.training for m in model.modules())
    (_, second), = layer_hf_content(model, _inputs(), None, "laplacian", layers=["act#2"])
    assert second == pytest.approx(out[3][1], rel=1e-6)


def test_default_selection_skips_non_spatial_outputs():
    # The adaptive pool's 1×1 output and the Linear are not default layers.
    assert default_layer_names(_net(), _inputs()) == ["0", "1", "2", "3"]


def test_restricted_layers_are_reported_in_forward_order():
    out = layer_hf_content(_net(), _inputs(), 0, "laplacian", layers=["3", "0"])
    assert [name for name, _ in out] == ["0", "3"]


def test_hooks_removed_when_the_model_raises():
    model = Broken()
    with pytest.raises(RuntimeError, match="boom"):
        layer_hf_content(model, _inputs(), 0, layers=["conv"])
    assert _no_hooks(model)


@pytest.mark.parametrize("measure", ["hf_power", "laplacian", "compression"])
def test_matches_a_manual_gradient(measure):
    from freqlens.spectral import compression_ratio, laplacian_energy

    model, x = _net(), _inputs()
    target = torch.tensor([0, 1, 2, 0])
    out = dict(layer_hf_content(model, x, target, measure, batch_size=3))
    # Independent: split the Sequential after layer "1" and differentiate the tail.
    act = model[1](model[0](x)).detach().requires_grad_(True)
    score = model[2:](act).gather(1, target[:, None]).sum()
    (grad,) = torch.autograd.grad(score, act)
    fn = {"hf_power": hf_power_ratio, "laplacian": laplacian_energy, "compression": compression_ratio}[measure]
    expected = float(fn(grad.sum(dim=1)).double().mean())
    assert out["1"] == pytest.approx(expected, rel=1e-5)


def test_inplace_activations_give_the_same_result():
    x = _inputs()
    a = layer_hf_content(_net(inplace=False), x, 1, "hf_power")
    b = layer_hf_content(_net(inplace=True), x, 1, "hf_power")
    assert [n for n, _ in a] == [n for n, _ in b]
    for (_, va), (_, vb) in zip(a, b):
        assert va == pytest.approx(vb, rel=1e-6)


def test_average_maps_of_identical_images_equals_per_image_measure():
    x = _inputs(n=1).expand(5, -1, -1, -1).contiguous()
    per_image = layer_hf_content(_net(), x, 2, "hf_power")
    averaged = layer_hf_content(_net(), x, 2, "hf_power", average_maps=True, batch_size=2)
    for (na, va), (nb, vb) in zip(per_image, averaged):
        assert na == nb
        assert va == pytest.approx(vb, rel=1e-5)


def test_batch_size_invariance():
    model, x = _net(), _inputs(n=5)
    ref = layer_hf_content(model, x, None, "laplacian")
    out = layer_hf_content(model, x, None, "laplacian", batch_size=2)
    for (na, va), (nb, vb) in zip(ref, out):
        assert na == nb
        assert va == pytest.approx(vb, rel=1e-5)


def _strided_and_pooled(seed: int) -> tuple[nn.Module, nn.Module]:
    """A stride-2 conv and its twin: the same conv with stride 1 followed by AvgPool2d(2)."""
    torch.manual_seed(seed)
    strided = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, stride=2, padding=1), nn.ReLU(),
        nn.Flatten(), nn.Linear(8 * 16 * 16, 10),
    )
    pooled = copy.deepcopy(strided)
    conv = pooled[2]
    pooled[2] = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.AvgPool2d(2))
    pooled[2][0].load_state_dict(conv.state_dict())
    return strided, pooled


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("measure", ["hf_power", "laplacian"])
def test_strided_conv_gradient_has_more_high_frequencies_than_avg_pool_twin(seed, measure):
    # Compared: the gradient w.r.t. the input-side layer "1" (the ReLU feeding the strided conv /
    # the stride-1 conv + AvgPool2d), averaged over 16 random 32-px images. Striding scatters the
    # gradient onto every other pixel (a checkerboard); average pooling spreads it evenly.
    strided, pooled = _strided_and_pooled(seed)
    x = _inputs(n=16, channels=3, size=32, seed=seed)
    (_, high), = layer_hf_content(strided, x, 0, measure, layers=["1"])
    (_, low), = layer_hf_content(pooled, x, 0, measure, layers=["1"])
    assert high > 1.2 * low


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"measure": "entropy"}, ValueError),
        ({"layers": ["nope"]}, ValueError),
        ({"layers": ["6"]}, ValueError),  # the Linear: not a 4-D output
        ({"layers": "0"}, TypeError),
        ({"batch_size": -1}, ValueError),
    ],
)
def test_bad_arguments(kwargs, error):
    model = _net()
    with pytest.raises(error):
        layer_hf_content(model, _inputs(), 0, **kwargs)
    assert _no_hooks(model)
