"""Occluded Frequency (freqlens.analysis.occluded_frequency): closed forms on mean / linear models."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.fft
import torch
from torch import nn

from freqlens.analysis.occluded_frequency import (
    ablate_bands,
    low_band_share,
    occluded_frequency,
    occluded_frequency_by_class,
)
from freqlens.spectral import dct_bands

H, W = 6, 5


class MeanModel(nn.Module):
    """logits = [a·mean(x) + b, −a·mean(x)]: sees only the image mean (the DC coefficients)."""

    def __init__(self, a: float, b: float) -> None:
        super().__init__()
        self.a, self.b = a, b

    def forward(self, x):
        m = x.mean(dim=(1, 2, 3))
        return torch.stack([self.a * m + self.b, -self.a * m], dim=1)


class LinearModel(nn.Module):
    """logits_k = ⟨w_k, x⟩ with weights ``w`` of shape K×C×H×W."""

    def __init__(self, weights: torch.Tensor) -> None:
        super().__init__()
        self.weights = nn.Parameter(weights)

    def forward(self, x):
        return torch.einsum("bchw,kchw->bk", x, self.weights)


def tiny_cnn(channels: int = 3) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(channels, 4, 3, padding=1), nn.ReLU(), nn.Dropout(0.5), nn.Flatten(), nn.Linear(4 * H * W, 3)
    ).double()


def images(batch: int = 3, channels: int = 3, seed: int = 1) -> torch.Tensor:
    return torch.rand(batch, channels, H, W, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def scipy_dct2(x: torch.Tensor) -> np.ndarray:
    return scipy.fft.dctn(x.numpy(), type=2, norm="ortho", axes=(-2, -1))


@pytest.mark.parametrize("a", [2.5, -0.7])
def test_mean_model_puts_all_weight_on_band_zero(a):
    x = images()
    scores = occluded_frequency(MeanModel(a, 0.3), x, target=0)
    assert scores.shape == (3, H + W - 1)
    # band 0 holds the DC coefficient sqrt(HW)·mean of every channel: removing it zeroes the mean.
    torch.testing.assert_close(scores[:, 0], a * x.mean(dim=(1, 2, 3)))
    torch.testing.assert_close(scores[:, 1:], torch.zeros(3, H + W - 2, dtype=x.dtype), atol=1e-12, rtol=0)


def test_probability_score_matches_softmax():
    x = images()
    model = MeanModel(2.0, 0.1)
    scores = occluded_frequency(model, x, target=1, score="probability")
    m = x.mean(dim=(1, 2, 3))
    p_before = torch.softmax(torch.stack([2 * m + 0.1, -2 * m], 1), 1)[:, 1]
    p_after = torch.softmax(torch.tensor([0.1, 0.0], dtype=x.dtype), 0)[1]
    torch.testing.assert_close(scores[:, 0], p_before - p_after)


def test_linear_model_per_coefficient_closed_form():
    gen = torch.Generator().manual_seed(3)
    weights = torch.randn(4, 2, H, W, generator=gen, dtype=torch.float64)
    x = images(channels=2)
    target = torch.tensor([0, 3, 2])
    model = LinearModel(weights)
    per_coef = occluded_frequency(model, x, target=target, per_coefficient=True, batch_size=7)
    assert per_coef.shape == (3, H, W)
    # O(k) = Σ_c dct2(w_target)_{c,k} · dct2(x)_{c,k}, with an independent DCT (scipy)
    expected = (scipy_dct2(weights[target]) * scipy_dct2(x)).sum(axis=1)
    np.testing.assert_allclose(per_coef.numpy(), expected, atol=1e-10)
    # band scores of a linear model are the sums of its per-coefficient scores over each band
    bands = occluded_frequency(model, x, target=target)
    summed = torch.zeros(3, H + W - 1, dtype=x.dtype).index_add_(1, dct_bands(H, W).reshape(-1), per_coef.flatten(1))
    torch.testing.assert_close(bands, summed)
    # and (Parseval) all coefficients together give back the full logit f(x) − f(0)
    torch.testing.assert_close(per_coef.sum(dim=(1, 2)), model(x).gather(1, target[:, None])[:, 0])


@pytest.mark.parametrize("per_coefficient", [False, True])
@pytest.mark.parametrize("baseline", ["zero", "noise"])
def test_batch_size_invariance_and_eval_mode(baseline, per_coefficient):
    model = tiny_cnn()
    model.train()
    x = images()
    results = [
        occluded_frequency(model, x, baseline=baseline, batch_size=bs, per_coefficient=per_coefficient,
                           generator=torch.Generator().manual_seed(5))
        for bs in (1, 5, None)
    ]
    for other in results[1:]:
        torch.testing.assert_close(other, results[0], atol=1e-12, rtol=0)
    assert model.training and all(m.training for m in model.modules())


def test_predicted_class_is_default_target():
    model = tiny_cnn()
    x = images()
    predicted = model.eval()(x).argmax(1)
    torch.testing.assert_close(occluded_frequency(model, x), occluded_frequency(model, x, target=predicted))


def test_noise_baseline_is_seeded_and_follows_band_rms():
    gen = torch.Generator().manual_seed(3)
    weights = torch.randn(2, 3, H, W, generator=gen, dtype=torch.float64)
    model = LinearModel(weights)
    x = images()
    first = occluded_frequency(model, x, target=0, baseline="noise", generator=torch.Generator().manual_seed(9))
    again = occluded_frequency(model, x, target=0, baseline="noise", generator=torch.Generator().manual_seed(9))
    other = occluded_frequency(model, x, target=0, baseline="noise", generator=torch.Generator().manual_seed(10))
    torch.testing.assert_close(first, again, atol=0, rtol=0)
    assert not torch.allclose(first, other)
    # closed form for a linear model: O(b) = Σ_{k∈b} dct2(w)_k (X_k − z_k · rms_b(X)), z ~ N(0, 1) drawn
    # once per coefficient from the generator (documented), rms per image, channel and band.
    z = torch.randn(x.shape, generator=torch.Generator().manual_seed(9), dtype=x.dtype)
    coeffs = torch.from_numpy(scipy_dct2(x))
    bands = dct_bands(H, W)
    rms = torch.zeros_like(coeffs)
    for b in range(H + W - 1):
        sel = bands == b
        rms[..., sel] = coeffs[..., sel].square().mean(dim=-1, keepdim=True).sqrt()
    contribution = torch.from_numpy(scipy_dct2(weights[0]))[None] * (coeffs - z * rms)
    expected = torch.stack([contribution[..., bands == b].sum(dim=(1, 2)) for b in range(H + W - 1)], dim=1)
    torch.testing.assert_close(first, expected)


def test_by_class_averages_profiles_per_label():
    model = tiny_cnn()
    x = images(batch=5)
    labels = torch.tensor([2, 0, 2, 1, 2])
    per_class = occluded_frequency_by_class(model, x, labels, batch_size=8)
    profiles = occluded_frequency(model, x, target=labels)
    assert sorted(per_class) == [0, 1, 2]
    torch.testing.assert_close(per_class[2], profiles[[0, 2, 4]].mean(0))
    torch.testing.assert_close(per_class[1], profiles[3])


@pytest.mark.parametrize("bands", [[0], range(3), [4, 2, 7], torch.tensor([H + W - 2])])
def test_ablate_bands_removes_exactly_those_bands(bands):
    x = images()
    ablated = ablate_bands(x, bands)
    before, after = scipy_dct2(x), scipy_dct2(ablated)
    removed = np.isin(dct_bands(H, W).numpy(), np.asarray(list(bands)))
    assert removed.any()
    np.testing.assert_allclose(after[..., removed], 0.0, atol=1e-12)
    np.testing.assert_allclose(after[..., ~removed], before[..., ~removed], atol=1e-12)


def test_ablate_dc_is_mean_removal():
    x = images()
    torch.testing.assert_close(ablate_bands(x, 0), x - x.mean(dim=(-2, -1), keepdim=True))


def test_low_band_share():
    profile = torch.tensor([[1.0, -2.0, 3.0, 4.0], [-1.0, -1.0, 0.0, 0.0]])
    torch.testing.assert_close(low_band_share(profile, 3), torch.tensor([4.0 / 8.0, 0.0]))
    torch.testing.assert_close(low_band_share(profile, 4), torch.tensor([1.0, 0.0]))
    assert float(low_band_share(profile[0], 0)) == 0.0


def test_errors():
    x = images()
    model = MeanModel(1.0, 0.0)
    with pytest.raises(ValueError, match="baseline"):
        occluded_frequency(model, x, baseline="blur")
    with pytest.raises(ValueError, match="score"):
        occluded_frequency(model, x, score="loss")
    with pytest.raises(ValueError, match="NaN"):
        occluded_frequency(model, x.clone().fill_(math.nan))
    with pytest.raises(ValueError, match="B×C×H×W"):
        occluded_frequency(model, x[0])
    with pytest.raises(ValueError, match="out of range"):
        occluded_frequency(model, x, target=2)
    with pytest.raises(ValueError, match="labels"):
        occluded_frequency_by_class(model, x, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="cutoff"):
        low_band_share(torch.ones(4), -1)

