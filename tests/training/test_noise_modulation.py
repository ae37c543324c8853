"""Noise modulation and modulational training (seed 000, Definitions 1 and 2)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats
from torch import nn

from freqlens.errors import FreqlensError
from freqlens.training import (
    NOISES,
    Modulational,
    NoiseModulation,
    Standard,
    describe_mode,
    modulate,
    sample_noise,
    train,
)

#: (mean, variance) of each noise with the seed's §3.4 parameters, from scipy (an independent source).
MOMENTS = {
    "gaussian": stats.norm().stats("mv"),
    "uniform": stats.uniform(0, 1).stats("mv"),
    "laplace": stats.laplace(0, 1).stats("mv"),
    "gamma": stats.gamma(1, scale=1).stats("mv"),
    "exponential": stats.expon(scale=1).stats("mv"),
    "rayleigh": stats.rayleigh(scale=1).stats("mv"),
}


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _batch(seed: int = 0, shape=(6, 3, 8, 8)) -> torch.Tensor:
    return torch.rand(shape, generator=_generator(seed))


def test_moments_table_matches_the_closed_forms():
    # the scipy table above against the textbook values quoted in the brief
    expected = {"gaussian": (0, 1), "uniform": (0.5, 1 / 12), "laplace": (0, 2), "gamma": (1, 1),
                "exponential": (1, 1), "rayleigh": (math.sqrt(math.pi / 2), (4 - math.pi) / 2)}
    for noise, (mean, var) in expected.items():
        assert np.allclose(MOMENTS[noise], (mean, var))
    assert set(MOMENTS) == set(NOISES)


@pytest.mark.parametrize("noise", sorted(NOISES))
def test_noise_moments_and_distribution(noise):
    values = sample_noise(noise, (200_000,), _generator(1)).double().numpy()
    mean, var = MOMENTS[noise]
    assert np.isfinite(values).all()
    assert abs(values.mean() - mean) < 0.02 * max(1.0, abs(mean))
    assert abs(values.var() - var) / var < 0.03
    # the whole law, not only two moments: Kolmogorov-Smirnov distance to scipy's distribution
    law = {"gaussian": stats.norm(), "uniform": stats.uniform(0, 1), "laplace": stats.laplace(0, 1),
           "gamma": stats.gamma(1, scale=1), "exponential": stats.expon(scale=1),
           "rayleigh": stats.rayleigh(scale=1)}[noise]
    assert stats.kstest(values[:20_000], law.cdf).statistic < 0.015


@pytest.mark.parametrize("noise", sorted(NOISES))
@pytest.mark.parametrize("beta", [0.0, 0.5, 0.8])
def test_multiplier_has_unit_mean_per_sample(noise, beta):
    x = torch.ones(5, 3, 7, 9)  # x* = multiplier
    mode = NoiseModulation(beta=beta, noise=noise)
    multiplier = mode.transform(nn.Identity(), x, torch.zeros(5, dtype=torch.long), _generator(2))
    assert multiplier.shape == x.shape
    torch.testing.assert_close(multiplier.flatten(1).mean(1), torch.ones(5), rtol=0, atol=1e-5)
    assert not torch.allclose(multiplier[0], multiplier[1])  # fresh noise per sample


@pytest.mark.parametrize("noise", sorted(NOISES))
def test_transform_matches_the_definition(noise):
    # x* = x · N · c² / Σc² with c = β + (1 − β)δ, recomputed in float64 with numpy from the same draws
    x, beta = _batch(3), 0.3
    got = NoiseModulation(beta, noise).transform(nn.Identity(), x, torch.zeros(6, dtype=torch.long),
                                                  _generator(4))
    delta = sample_noise(noise, x.shape, _generator(4)).double().numpy()
    carrier = beta + (1 - beta) * delta
    n = carrier[0].size
    power = carrier**2
    expected = x.double().numpy() * n * power / power.reshape(6, -1).sum(1).reshape(6, 1, 1, 1)
    np.testing.assert_allclose(got.double().numpy(), expected, rtol=1e-4, atol=1e-6)


def test_same_generator_same_batch_different_generator_different():
    x, y = _batch(), torch.zeros(6, dtype=torch.long)
    mode = NoiseModulation(0.5, "laplace")
    first = mode.transform(nn.Identity(), x, y, _generator(7))
    assert torch.equal(first, mode.transform(nn.Identity(), x, y, _generator(7)))
    assert not torch.allclose(first, mode.transform(nn.Identity(), x, y, _generator(8)))
    generator = _generator(7)  # fresh per step: consecutive draws from one generator differ
    step1 = mode.transform(nn.Identity(), x, y, generator)
    assert not torch.allclose(step1, mode.transform(nn.Identity(), x, y, generator))


def test_beta_one_returns_x_unchanged():
    x = _batch()
    out = NoiseModulation(beta=1.0).transform(nn.Identity(), x, torch.zeros(6, dtype=torch.long), _generator(0))
    assert torch.equal(out, x)


def test_modulated_batch_may_leave_unit_range():
    out = NoiseModulation(0.0, "gaussian").transform(nn.Identity(), _batch(), torch.zeros(6, dtype=torch.long),
                                                     _generator(0))
    assert float(out.max()) > 1.0  # documented: x* is not clipped


def test_constant_carrier_is_identity_and_scale_free():
    x = _batch()
    for value in (1.0, 0.3, -2.5):
        mode = Modulational(lambda shape, generator, device, dtype, v=value: torch.full(shape, v, dtype=dtype))
        torch.testing.assert_close(mode.transform(nn.Identity(), x, None, _generator(0)), x, rtol=1e-6, atol=0)


def test_modulational_uses_the_carrier_and_generator():
    calls = []

    def carrier(shape, generator, device, dtype):
        calls.append((tuple(shape), generator, device, dtype))
        return torch.rand(shape, generator=generator, device=device, dtype=dtype)

    x, generator = _batch(), _generator(5)
    out = Modulational(carrier).transform(nn.Identity(), x, None, generator)
    assert calls == [(tuple(x.shape), generator, x.device, x.dtype)]
    c = torch.rand(x.shape, generator=_generator(5))
    torch.testing.assert_close(out, modulate(x, c))
    torch.testing.assert_close(out, x * c**2 / (c**2).flatten(1).mean(1).view(-1, 1, 1, 1))


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: NoiseModulation(noise="pink"), "gaussian, uniform, laplace"),
        (lambda: NoiseModulation(beta=1.5), r"\[0, 1\]"),
        (lambda: NoiseModulation(beta=-0.1), r"\[0, 1\]"),
        (lambda: NoiseModulation(beta="x"), "number"),
        (lambda: Modulational(carrier=3), "callable"),
    ],
)
def test_bad_settings_are_user_errors(make, match):
    with pytest.raises(ValueError, match=match) as info:
        make()
    assert isinstance(info.value, FreqlensError)


@pytest.mark.parametrize(
    "carrier, match",
    [
        (lambda s, g, d, t: torch.ones(2, 3), "shape"),
        (lambda s, g, d, t: torch.zeros(s), "all zeros"),
        (lambda s, g, d, t: torch.full(s, float("nan")), "non-finite"),
        (lambda s, g, d, t: np.ones(s), "not a Tensor"),
    ],
)
def test_bad_carriers_are_rejected(carrier, match):
    with pytest.raises(ValueError, match=match):
        Modulational(carrier).transform(nn.Identity(), _batch(), None, _generator(0))


def test_describe():
    assert NoiseModulation(0.8, "rayleigh").describe() == {"name": "noise-modulation", "beta": 0.8,
                                                           "noise": "rayleigh"}
    description = describe_mode(Modulational(torch.ones))
    assert description["name"] == "modulational" and description["carrier"].endswith("ones")


def _lenet_like(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 4, 5), nn.ReLU(), nn.MaxPool2d(4), nn.Flatten(), nn.Linear(4 * 6 * 6, 10))


def test_beta_one_trains_bit_identical_to_standard(demo_train, tmp_path):
    small = demo_train.subset(range(128))
    weights = []
    for name, mode in (("standard", Standard()), ("beta1", NoiseModulation(beta=1.0, noise="laplace"))):
        model = _lenet_like(0)
        history = train(model, small, None, mode=mode, epochs=1, batch_size=32, out_dir=tmp_path / name,
                        seed=3, progress=False)
        weights.append([p.detach().clone() for p in model.parameters()])
        assert history[-1]["mode"] == mode.name
    assert all(torch.equal(a, b) for a, b in zip(*weights, strict=True))


def test_noise_modulation_training_changes_the_batches(demo_train, tmp_path):
    small = demo_train.subset(range(128))
    weights = []
    for name, mode in (("standard", Standard()), ("nm", NoiseModulation(beta=0.5))):
        model = _lenet_like(0)
        history = train(model, small, None, mode=mode, epochs=1, batch_size=32, out_dir=tmp_path / name,
                        seed=3, progress=False)
        weights.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    assert history[-1]["mode"] == "noise-modulation"
    checkpoint = torch.load(tmp_path / "nm" / "last.pt", weights_only=True)
    assert checkpoint["mode"] == {"name": "noise-modulation", "beta": 0.5, "noise": "gaussian"}
    assert math.isfinite(history[-1]["train_loss"])
    assert not torch.allclose(weights[0], weights[1])
