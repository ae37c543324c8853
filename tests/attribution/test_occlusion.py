"""Occlusion: closed form on a linear model, a naive reference implementation, border coverage,
localisation, streaming and input validation (batch-size independence: ``test_contract.py``)."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from freqlens.attribution.occlusion import Occlusion, _patch_starts

from .conftest import Quadrants, quadrant_mask


class Linear(nn.Module):
    """``f(x) = W · flatten(x) + b`` with random weights."""

    def __init__(self, shape: tuple[int, int, int], classes: int = 4, seed: int = 0) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.shape = shape
        self.weight = nn.Parameter(torch.randn(classes, *shape, generator=generator))
        self.bias = nn.Parameter(torch.randn(classes, generator=generator))

    def forward(self, x: Tensor) -> Tensor:
        return x.flatten(1) @ self.weight.flatten(1).T + self.bias


class SmallCNN(nn.Module):
    def __init__(self, channels: int = 2, classes: int = 3) -> None:
        super().__init__()
        torch.manual_seed(3)
        self.body = nn.Sequential(nn.Conv2d(channels, 4, 3, padding=1), nn.Tanh(), nn.AdaptiveAvgPool2d(3),
                                  nn.Flatten(), nn.Linear(36, classes))

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x)


def naive_occlusion(model: nn.Module, x: Tensor, target: Tensor, patch: tuple[int, int],
                    stride: tuple[int, int], baseline: float) -> Tensor:
    """Reference: explicit loops over patch positions (border patch added by hand)."""
    _, _, height, width = x.shape
    rows = list(range(0, height - patch[0] + 1, stride[0]))
    cols = list(range(0, width - patch[1] + 1, stride[1]))
    if rows[-1] + patch[0] != height:
        rows.append(height - patch[0])
    if cols[-1] + patch[1] != width:
        cols.append(width - patch[1])
    with torch.no_grad():
        clean = model(x).gather(1, target[:, None])[:, 0]
        total = torch.zeros(x.shape[0], height, width)
        count = torch.zeros(height, width)
        for top in rows:
            for left in cols:
                occluded = x.clone()
                occluded[:, :, top : top + patch[0], left : left + patch[1]] = baseline
                drop = clean - model(occluded).gather(1, target[:, None])[:, 0]
                total[:, top : top + patch[0], left : left + patch[1]] += drop[:, None, None]
                count[top : top + patch[0], left : left + patch[1]] += 1
    assert (count > 0).all()
    return (total / count)[:, None]


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("baseline", [0.0, 0.5])
def test_patch_one_is_weight_times_input_minus_baseline(channels: int, baseline: float) -> None:
    shape = (channels, 6, 7)
    model = Linear(shape)
    x = torch.rand(3, *shape, generator=torch.Generator().manual_seed(1))
    target = torch.tensor([0, 3, 1])
    maps = Occlusion(model, patch=1, stride=1, baseline=baseline)(x, target)
    expected = (model.weight.detach()[target] * (x - baseline)).sum(dim=1, keepdim=True)
    assert maps.shape == (3, 1, 6, 7)
    torch.testing.assert_close(maps, expected, rtol=1e-4, atol=1e-5)


def test_tensor_baseline_closed_form() -> None:
    shape = (2, 5, 5)
    model = Linear(shape)
    x = torch.rand(2, *shape)
    baseline = torch.rand(*shape)
    maps = Occlusion(model, patch=1, stride=1, baseline=baseline)(x, torch.tensor([2, 2]))
    expected = (model.weight.detach()[2] * (x - baseline)).sum(dim=1, keepdim=True)
    torch.testing.assert_close(maps, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    ("size", "patch", "stride"),
    [((11, 10), (3, 3), (2, 3)), ((9, 9), (4, 4), (4, 4)), ((8, 13), (8, 5), (1, 4)), ((7, 7), (5, 3), (5, 1))],
)
def test_matches_naive_reference_including_borders(size: tuple[int, int], patch: tuple[int, int],
                                                    stride: tuple[int, int]) -> None:
    model = SmallCNN().eval()
    x = torch.rand(3, 2, *size, generator=torch.Generator().manual_seed(2))
    target = torch.tensor([0, 2, 1])
    maps = Occlusion(model, patch=patch, stride=stride, baseline=0.25)(x, target)
    expected = naive_occlusion(model, x, target, patch, stride, 0.25)
    torch.testing.assert_close(maps, expected, rtol=1e-4, atol=1e-6)


def test_patch_starts_cover_the_border() -> None:
    assert _patch_starts(10, 4, 3).tolist() == [0, 3, 6]
    assert _patch_starts(11, 4, 3).tolist() == [0, 3, 6, 7]
    assert _patch_starts(5, 5, 2).tolist() == [0]
    for size in range(4, 20):
        starts = _patch_starts(size, 4, 3)
        assert int(starts[-1]) + 4 == size


@pytest.mark.parametrize("quadrant", [0, 1, 2, 3])
def test_map_peaks_in_the_quadrant_that_carries_the_evidence(quadrant: int) -> None:
    x = torch.rand(2, 1, 16, 16, generator=torch.Generator().manual_seed(quadrant))
    maps = Occlusion(Quadrants(), patch=4, stride=2)(x, torch.full((2,), quadrant))
    inside = quadrant_mask(quadrant, 16, 16)
    for image in maps[:, 0]:
        assert image[inside].mean() > 5 * image[~inside].abs().mean()


def test_target_none_is_the_predicted_class() -> None:
    model = SmallCNN().eval()
    x = torch.rand(4, 2, 9, 9)
    predicted = model(x).argmax(1)
    explainer = Occlusion(model, patch=3, stride=2)
    torch.testing.assert_close(explainer(x), explainer(x, predicted))


def test_forward_passes_never_exceed_batch_size_and_mode_is_restored() -> None:
    model = SmallCNN()
    model.train()
    sizes: list[int] = []
    handle = model.register_forward_pre_hook(lambda module, args: sizes.append(args[0].shape[0]))
    Occlusion(model, patch=2, stride=1, batch_size=5)(torch.rand(3, 2, 8, 8), torch.tensor([0, 1, 2]))
    handle.remove()
    assert max(sizes) <= 5
    assert sum(sizes) == 3 + 3 * 7 * 7  # clean pass + every occluded copy
    assert model.training and all(module.training for module in model.modules())


def test_invalid_arguments() -> None:
    model = SmallCNN().eval()
    x = torch.rand(2, 2, 8, 8)
    with pytest.raises(ValueError, match="larger than the image"):
        Occlusion(model, patch=9)(x)
    with pytest.raises(ValueError, match="stride"):
        Occlusion(model, stride=0)
    with pytest.raises(ValueError, match="never be occluded"):
        Occlusion(model, patch=2, stride=3)
    with pytest.raises(ValueError, match="patch"):
        Occlusion(model, patch=(2, 2, 2))
    with pytest.raises(ValueError, match="broadcast"):
        Occlusion(model, patch=2, baseline=torch.zeros(3, 8, 8))(x)
    with pytest.raises(ValueError, match="finite"):
        Occlusion(model, baseline=float("nan"))
    with pytest.raises(ValueError, match="NaN"):
        Occlusion(model, patch=2)(torch.full((1, 2, 8, 8), float("nan")))
    with pytest.raises(ValueError, match="out of range"):
        Occlusion(model, patch=2)(x, torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="score"):
        Occlusion(model, score="energy")
    with pytest.raises(ValueError, match="batch_size"):
        Occlusion(model, batch_size=0)
