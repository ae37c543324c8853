"""Tests of the linearization-residual test (seed 001, Fig. 4)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from freqlens.metrics.linearization import linearization_residual, unit_directions

SIZE = 8  # box Nyquist σ = 4


def _smooth_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 3, 3, padding=1), nn.Softplus(), nn.Conv2d(3, 3, 3, padding=1), nn.Tanh(),
        nn.Flatten(), nn.Linear(3 * SIZE * SIZE, 4),
    ).double()


def _linear_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(SIZE * SIZE, 3)).double()


def _inputs(n: int = 3, seed: int = 1) -> torch.Tensor:
    return torch.rand(n, 1, SIZE, SIZE, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _gen(seed: int = 7) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_sigma_at_or_above_nyquist_is_the_unfiltered_residual():
    model, x = _smooth_model(), _inputs()
    out = linearization_residual(model, x, None, [None, math.inf, SIZE // 2, 50.0], [0.1, 0.5],
                                 n_dirs=8, generator=_gen())
    assert out.shape == (4, 2)
    for row in out[1:]:
        assert torch.equal(row, out[0])


def test_residual_is_second_order_in_the_radius_for_a_smooth_model():
    model, x = _smooth_model(), _inputs()
    radii = [0.01, 0.02, 0.04]
    out = linearization_residual(model, x, 0, [None], radii, n_dirs=16, generator=_gen())[0]
    assert bool((out[1:] > out[:-1]).all())
    ratios = out[1:] / out[:-1]
    assert torch.allclose(ratios, torch.full_like(ratios, 4.0), rtol=0.05)
    scaled = out / torch.tensor(radii, dtype=out.dtype) ** 2
    assert torch.allclose(scaled, scaled.mean().expand_as(scaled), rtol=0.05)


def _numpy_box_lowpass(w: np.ndarray, sigma: float) -> np.ndarray:
    """Independent box low-pass on the centred spectrum (numpy)."""
    h, v = w.shape
    di = np.arange(h)[:, None] - h // 2
    dj = np.arange(v)[None, :] - v // 2
    mask = (np.abs(di) <= sigma) & (np.abs(dj) <= sigma)
    spectrum = np.fft.fftshift(np.fft.fft2(w)) * mask
    return np.fft.ifft2(np.fft.ifftshift(spectrum)).real


def test_linear_model_closed_form():
    model, x = _linear_model(), _inputs()
    target, sigma, radii = 2, 1.0, [0.5, 2.0]
    out = linearization_residual(model, x, target, [None, sigma], radii, n_dirs=20, generator=_gen(3))
    assert bool((out[0].abs() < 1e-6).all())  # exact first-order model
    # f(x + ε) − f(x) − ⟨ε, w^σ⟩ = ⟨ε, w − w^σ⟩ with ε = r·ε̂ (the same directions).
    weight = model[1].weight[target].detach().numpy().reshape(SIZE, SIZE)
    high = weight - _numpy_box_lowpass(weight, sigma)
    dirs = unit_directions(20, (1, SIZE, SIZE), _gen(3)).numpy().reshape(20, -1)
    expected = np.array([r * np.abs(dirs @ high.reshape(-1)).mean() for r in radii])
    assert expected.min() > 1e-3  # random weights have high frequencies
    np.testing.assert_allclose(out[1].numpy(), expected, rtol=1e-9)


@pytest.mark.parametrize("batch_size", [1, 5, 17])
def test_batch_size_invariance(batch_size):
    model, x = _smooth_model(), _inputs()
    args = (model, x, None, [1.0, None], [0.05, 0.3])
    ref = linearization_residual(*args, n_dirs=6, generator=_gen())
    out = linearization_residual(*args, n_dirs=6, generator=_gen(), batch_size=batch_size)
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-15)


def test_generator_reproducibility_and_model_mode_restored():
    model, x = _smooth_model(), _inputs()
    model.train()
    args = (model, x, None, [2.0], [0.5])
    a = linearization_residual(*args, n_dirs=5, generator=_gen(11))
    b = linearization_residual(*args, n_dirs=5, generator=_gen(11))
    c = linearization_residual(*args, n_dirs=5, generator=_gen(12))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert all(module.training for module in model.modules())


def test_unit_directions_lie_on_the_sphere():
    dirs = unit_directions(50, (2, 3, 3), _gen())
    assert dirs.shape == (50, 2, 3, 3)
    torch.testing.assert_close(dirs.flatten(1).norm(dim=1), torch.ones(50, dtype=torch.float64))


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"radii": [-1.0]}, ValueError),
        ({"radii": [math.inf]}, ValueError),
        ({"sigmas": [math.nan]}, ValueError),
        ({"sigmas": ["a"]}, TypeError),
        ({"n_dirs": 0}, ValueError),
        ({"shape": "star"}, ValueError),
        ({"batch_size": 0}, ValueError),
    ],
)
def test_bad_arguments(kwargs, error):
    params = {"sigmas": [1.0], "radii": [0.1], "n_dirs": 2, "generator": _gen()} | kwargs
    with pytest.raises(error):
        linearization_residual(_linear_model(), _inputs(), None, **params)


def test_bad_inputs():
    with pytest.raises(ValueError):
        linearization_residual(_linear_model(), torch.full((1, 1, SIZE, SIZE), math.nan), None, [1.0], [0.1])


def test_zero_radius_gives_zero_residual_and_float32_result():
    model, x = _smooth_model().float(), _inputs().float()
    out = linearization_residual(model, x, None, [1.0, None], [0.0, 0.1], n_dirs=4, generator=_gen())
    assert out.dtype == torch.float32 and out.shape == (2, 2)
    assert bool((out[:, 0].abs() < 1e-6).all())
    assert bool((out[:, 1] > 0).all())
