"""Tests of the linearization-residual test (seed 001, Fig. 4) and its per-radius reading."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from freqlens.metrics.linearization import (
    LinearizationCurves,
    NonlinearRadii,
    linearization_curves,
    linearization_residual,
    unit_directions,
)

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


# --- curves relative to the unfiltered gradient and to |f(x + ε) − f(x)| ---------------------------------

class _Quadratic(nn.Module):
    """``f(x) = xᵀAx + bᵀx`` (A symmetric) as the logit of class 0; class 1 is 0. The exact gradient is
    ``b + 2Ax`` and the residual of the exact first-order model is exactly the quadratic term ``εᵀAε``."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        p = SIZE * SIZE
        a = torch.randn(p, p, generator=generator, dtype=torch.float64) / p
        self.register_buffer("a", (a + a.T) / 2)
        self.register_buffer("b", torch.randn(p, generator=generator, dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v = x.flatten(1)
        f = ((v @ self.a) * v).sum(1) + v @ self.b
        return torch.stack([f, torch.zeros_like(f)], dim=1)


def _quadratic_closed_form(model: _Quadratic, x: torch.Tensor, radii: list[float], n_dirs: int, seed: int,
                           sigma: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean unfiltered residual, filtered residual (box σ) and |f(x + ε) − f(x)| per radius, in numpy."""
    a, b = model.a.numpy(), model.b.numpy()
    dirs = unit_directions(n_dirs, (1, SIZE, SIZE), _gen(seed)).numpy().reshape(n_dirs, -1)  # D×P
    v = x.numpy().reshape(len(x), -1)  # B×P
    grad = b[None] + 2 * v @ a  # B×P
    high = grad - np.stack([_numpy_box_lowpass(g.reshape(SIZE, SIZE), sigma).reshape(-1) for g in grad])
    quad = np.einsum("dp,pq,dq->d", dirs, a, dirs)  # ε̂ᵀAε̂, D
    lin = grad @ dirs.T  # ⟨ε̂, ∇f⟩, B×D
    lin_high = high @ dirs.T  # ⟨ε̂, ∇f − ∇^σ f⟩, B×D
    unfiltered = np.array([r * r * np.abs(quad).mean() for r in radii])
    filtered = np.array([np.abs(r * lin_high + r * r * quad[None]).mean() for r in radii])
    change = np.array([np.abs(r * lin + r * r * quad[None]).mean() for r in radii])
    return unfiltered, filtered, change


def test_curves_match_the_closed_form_of_a_quadratic_model():
    model, x = _Quadratic(), _inputs(4)
    radii = [1e-3, 1e-2, 0.1, 1.0, 10.0, 100.0]
    curves = linearization_curves(model, x, 0, [1.0], radii, n_dirs=12, generator=_gen(5))
    unfiltered, filtered, change = _quadratic_closed_form(model, x, radii, 12, 5, sigma=1.0)
    assert isinstance(curves, LinearizationCurves) and curves.sigmas == [1.0] and curves.radii == radii
    # (f(x) is O(1): at r = 1e-3 the residual of 1e-8 carries float64 cancellation of ~1e-16)
    np.testing.assert_allclose(curves.unfiltered.numpy(), unfiltered, rtol=1e-6)
    np.testing.assert_allclose(curves.residual[0].numpy(), filtered, rtol=1e-6)
    np.testing.assert_allclose(curves.change.numpy(), change, rtol=1e-6)
    np.testing.assert_allclose(curves.ratio[0].numpy(), filtered / unfiltered, rtol=1e-6)
    # the unfiltered residual is ∝ r², the filtered one ∝ r at small r: the ratio falls like 1 / r
    assert curves.ratio[0, 0] > 50 * curves.ratio[0, 2] > 0
    # the same numbers as linearization_residual for the same generator
    plain = linearization_residual(model, x, 0, [1.0, None], radii, n_dirs=12, generator=_gen(5))
    torch.testing.assert_close(curves.residual[0], plain[0], rtol=1e-12, atol=0)
    torch.testing.assert_close(curves.unfiltered, plain[1], rtol=1e-12, atol=0)


@pytest.mark.parametrize("fraction", [0.1, 0.5])
def test_nonlinear_radii_of_a_quadratic_model(fraction):
    """Kept radii: where the quadratic term r²·mean|ε̂ᵀAε̂| exceeds ``fraction`` × mean |f(x + ε) − f(x)|."""
    model, x = _Quadratic(), _inputs(4)
    radii = [float(r) for r in np.logspace(-3, 2, 11)]
    curves = linearization_curves(model, x, 0, [1.0, 2.0], radii, n_dirs=12, generator=_gen(5))
    unfiltered, _, change = _quadratic_closed_form(model, x, radii, 12, 5, sigma=1.0)
    expected = unfiltered > fraction * change
    assert expected.any() and not expected.all()  # the threshold crosses inside the radius range
    assert expected.tolist() == sorted(expected.tolist())  # small radii linear, large ones nonlinear
    selected = curves.nonlinear_radii(fraction)
    assert isinstance(selected, NonlinearRadii) and selected.fraction == fraction
    assert selected.mask.tolist() == expected.tolist()
    assert selected.radii == [r for r, keep in zip(radii, expected) if keep]
    np.testing.assert_allclose(selected.relative.numpy(), unfiltered / change, rtol=1e-6)
    torch.testing.assert_close(selected.ratio, curves.ratio[:, torch.from_numpy(expected)])
    geometric = torch.exp(torch.log(curves.ratio[:, torch.from_numpy(expected)]).mean(dim=1))
    torch.testing.assert_close(selected.geometric_mean_ratio(), geometric)


def test_nonlinear_radii_edge_cases():
    model, x = _Quadratic(), _inputs(2)
    curves = linearization_curves(model, x, 0, [1.0], [0.0, 1e-4], n_dirs=4, generator=_gen(1))
    selected = curves.nonlinear_radii()  # r = 0 (0 > 0 is false) and a tiny, linear radius: none kept
    assert selected.radii == [] and selected.ratio.shape == (1, 0)
    assert torch.isnan(selected.relative[0]) and torch.isnan(selected.geometric_mean_ratio()).all()
    assert curves.nonlinear_radii(0.0).radii == [1e-4]  # any curvature counts at fraction 0
    with pytest.raises(ValueError, match="fraction"):
        curves.nonlinear_radii(-0.1)
