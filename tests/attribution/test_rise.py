"""RISE: mask properties, agreement with the explicit Monte-Carlo formula, localisation, mask seeding and
streaming (seeding and batch-size independence of the maps: ``test_contract.py``)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from freqlens.attribution.rise import RISE

from .conftest import Quadrants, SmallReLUCNN, quadrant_mask, seeded


@pytest.mark.parametrize(("height", "width", "grid", "p"), [(16, 16, 4, 0.5), (13, 17, 3, 0.3), (28, 28, 7, 0.5)])
def test_masks_are_smooth_binary_grids_with_keep_rate_p(height: int, width: int, grid: int, p: float) -> None:
    masks = RISE(nn.Identity(), n_masks=3000, grid=grid, p=p, generator=seeded()).masks(height, width)
    assert masks.shape == (3000, 1, height, width)
    assert masks.min() >= 0 and masks.max() <= 1
    assert abs(masks.mean().item() - p) < 0.02
    # bilinear upsampling: intermediate values exist, and neighbouring pixels differ by at most one step
    assert ((masks > 0.05) & (masks < 0.95)).any()
    cell = -(-height // grid)
    assert (masks[..., 1:, :] - masks[..., :-1, :]).abs().max() <= 1.0 / cell * (grid + 1) / grid + 1e-5


def test_masks_depend_on_the_seed_only() -> None:
    first = RISE(nn.Identity(), n_masks=20, grid=4, generator=seeded(7)).masks(16, 16)
    again = RISE(nn.Identity(), n_masks=20, grid=4, generator=seeded(7)).masks(16, 16)
    other = RISE(nn.Identity(), n_masks=20, grid=4, generator=seeded(8)).masks(16, 16)
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


@pytest.mark.parametrize("score", ["prob", "logit"])
def test_saliency_is_the_explicit_monte_carlo_sum(score: str) -> None:
    model = SmallReLUCNN(seed=4).eval()
    x = torch.rand(3, 3, 12, 12, generator=seeded(1))
    target = torch.tensor([0, 4, 2])
    n, p = 50, 0.4
    maps = RISE(model, n_masks=n, grid=3, p=p, score=score, generator=seeded(5), batch_size=16)(x, target)
    masks = RISE(model, n_masks=n, grid=3, p=p, generator=seeded(5)).masks(12, 12)
    expected = []
    with torch.no_grad():
        for image, cls in zip(x, target):
            logits = model(image[None] * masks)
            values = logits.softmax(1) if score == "prob" else logits
            expected.append((values[:, cls].view(n, 1, 1, 1) * masks).sum(0) / (n * p))
    torch.testing.assert_close(maps, torch.stack(expected), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("quadrant", [0, 3])
def test_map_peaks_in_the_quadrant_that_carries_the_evidence(quadrant: int) -> None:
    x = torch.rand(2, 1, 16, 16, generator=seeded(quadrant))
    maps = RISE(Quadrants(), n_masks=400, grid=4, score="logit", generator=seeded())(x, torch.full((2,), quadrant))
    inside = quadrant_mask(quadrant, 16, 16)
    for image in maps[:, 0]:
        assert image[inside].mean() > image[~inside].mean() + 1.0


def test_streams_masks_in_chunks_and_restores_mode() -> None:
    model = SmallReLUCNN(seed=4)
    model.train()
    sizes: list[int] = []
    handle = model.register_forward_pre_hook(lambda module, args: sizes.append(args[0].shape[0]))
    maps = RISE(model, n_masks=100, grid=3, batch_size=16, generator=seeded())(torch.rand(2, 3, 9, 9))
    handle.remove()
    assert maps.shape == (2, 1, 9, 9)
    assert max(sizes) <= 16
    assert sum(sizes) == 2 + 2 * 100
    assert model.training and all(module.training for module in model.modules())


def test_invalid_arguments() -> None:
    model = SmallReLUCNN(seed=4).eval()
    with pytest.raises(ValueError, match="probability"):
        RISE(model, p=0.0)
    with pytest.raises(ValueError, match="probability"):
        RISE(model, p=1.5)
    with pytest.raises(ValueError, match="n_masks"):
        RISE(model, n_masks=0)
    with pytest.raises(ValueError, match="grid"):
        RISE(model, grid=-2)
    with pytest.raises(ValueError, match="B×C×H×W"):
        RISE(model, n_masks=4)(torch.rand(3, 8, 8))
    with pytest.raises(ValueError, match="out of range"):
        RISE(model, n_masks=4)(torch.rand(1, 3, 8, 8), torch.tensor([9]))
