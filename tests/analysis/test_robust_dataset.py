"""Robust dataset generation (freqlens.analysis.robust_dataset, Ilyas et al. 2019)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from freqlens.analysis.robust_dataset import other_image_indices, robust_dataset
from freqlens.models import features as penultimate_features

SIZE = 12


def tiny_cnn() -> nn.Module:
    """Conv → ReLU → pool → Linear(→ penultimate) → Linear; its features are the input of the last layer."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Dropout(0.5), nn.AvgPool2d(2), nn.Flatten(),
        nn.Linear(4 * (SIZE // 2) ** 2, 16), nn.Tanh(), nn.Linear(16, 3),
    ).double()


def pair(batch: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(2)
    x = torch.rand(batch, 1, SIZE, SIZE, generator=gen, dtype=torch.float64)
    return x, x.roll(1, dims=0)  # each image starts from another image of the batch


def test_identity_features_move_straight_to_the_source():
    # with g(x) = x the normalised gradient points from x_r to x: the distance drops by exactly
    # step_size per step (the segment stays inside [0, 1]) until it is below step_size.
    x, init = pair()
    model = tiny_cnn()
    step = 0.1
    x_r, dist = robust_dataset(model, x, init, steps=5, step_size=step, return_history=True,
                               features=lambda _m, v: v.flatten(1))
    d0 = (x - init).flatten(1).norm(dim=1)
    assert dist.shape == (6, 4)
    assert bool((d0 > 5 * step).all())
    torch.testing.assert_close(dist, d0[None] - step * torch.arange(6, dtype=x.dtype)[:, None])
    direction = (x - init) / d0.view(-1, 1, 1, 1)
    torch.testing.assert_close(x_r, init + 5 * step * direction)


def test_cnn_features_distance_decreases_monotonically():
    model = tiny_cnn()
    model.train()
    x, init = pair()
    # step_size 0.05 (pixel L2; the images have norm ≈ 7) is small against the curvature of this net,
    # so the distance falls at every step (≈ 5 % of the start per step). A fixed normalised step
    # oscillates once the distance is within ~one step of the minimum (here after ~30 steps), so
    # the run stops at 20 steps, well before that.
    x_r, dist = robust_dataset(model, x, init, steps=20, step_size=0.05, return_history=True)
    assert x_r.shape == x.shape and float(x_r.min()) >= 0.0 and float(x_r.max()) <= 1.0
    assert bool((dist[1:] <= dist[:-1] + 1e-9).all())
    assert bool((dist[-1] < 0.5 * dist[0]).all())
    with torch.no_grad():
        model.eval()
        expected = (penultimate_features(model, x_r) - penultimate_features(model, x)).norm(dim=1)
    torch.testing.assert_close(dist[-1], expected)


def test_train_flags_restored_and_weights_untouched():
    model = tiny_cnn()
    model.train()
    before = [p.clone() for p in model.parameters()]
    x, init = pair(2)
    robust_dataset(model, x, init, steps=2, step_size=0.05)
    assert all(m.training for m in model.modules())
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert all(p.grad is None for p in model.parameters())


def test_batch_size_invariance():
    model = tiny_cnn()
    x, init = pair(5)
    runs = [robust_dataset(model, x, init, steps=6, step_size=0.2, batch_size=bs, return_history=True)
            for bs in (1, 2, None)]
    for x_r, dist in runs[1:]:
        torch.testing.assert_close(x_r, runs[0][0])
        torch.testing.assert_close(dist, runs[0][1])


def test_projection_keeps_pixels_in_range():
    model = tiny_cnn()
    x, init = pair()
    x_r = robust_dataset(model, x, init, steps=5, step_size=3.0)
    assert float(x_r.min()) >= 0.0 and float(x_r.max()) <= 1.0
    assert float((x_r == 0).sum() + (x_r == 1).sum()) > 0  # large steps hit the box


def test_zero_steps_returns_init():
    model = tiny_cnn()
    x, init = pair()
    x_r, dist = robust_dataset(model, x, init, steps=0, return_history=True)
    torch.testing.assert_close(x_r, init)
    assert dist.shape == (1, 4)


def test_errors():
    model = tiny_cnn()
    x, init = pair()
    with pytest.raises(ValueError, match="shape"):
        robust_dataset(model, x, init[:2])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        robust_dataset(model, x * 2, init)
    with pytest.raises(ValueError, match="steps"):
        robust_dataset(model, x, init, steps=-1)
    with pytest.raises(ValueError, match="step_size"):
        robust_dataset(model, x, init, step_size=0.0)
    with pytest.raises(TypeError, match="features"):
        robust_dataset(model, x, init, features="penultimate")


@pytest.mark.parametrize("n", [2, 3, 10, 101])
def test_other_image_indices_is_one_cycle_without_fixed_points(n):
    partner = other_image_indices(n, torch.Generator().manual_seed(n))
    assert sorted(partner.tolist()) == list(range(n))  # a permutation
    assert not (partner == torch.arange(n)).any()  # nobody starts from itself
    seen, index = set(), 0
    while index not in seen:  # following the pairs visits every image once: a single cycle
        seen.add(index)
        index = int(partner[index])
    assert len(seen) == n
    assert torch.equal(partner, other_image_indices(n, torch.Generator().manual_seed(n)))
