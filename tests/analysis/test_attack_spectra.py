"""Tests for freqlens.analysis.attack_spectra (seed 003, Fig. 2: RCT of adversarial perturbations)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import scipy.fft
import torch
from torch import nn

from freqlens.analysis.attack_spectra import AttackSpectra, attack_spectra, high_low_ratio
from freqlens.attacks import FGSM, PGD, LowFrequencyPGD
from freqlens.report.figures import save_rct_figure
from freqlens.spectral import band_mask, dct_bands, idct2
from freqlens.utils.tensors import predict

SIZE = 16
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class BandAttack:
    """Adds a fixed perturbation whose DCT coefficients are all in band ``band`` (no clipping needed:
    the test images stay away from 0 and 1)."""

    def __init__(self, band: int, amplitude: float = 0.01) -> None:
        self.band, self.amplitude = band, amplitude

    def __call__(self, inputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        h, w = inputs.shape[-2:]
        generator = torch.Generator().manual_seed(self.band)
        signs = torch.randint(0, 2, inputs.shape[1:], generator=generator, dtype=inputs.dtype) * 2 - 1
        magnitudes = torch.rand(inputs.shape[1:], generator=generator, dtype=inputs.dtype) * 0.5 + 0.5
        coefficients = signs * magnitudes * band_mask(h, w, self.band).to(inputs.dtype)
        return inputs + self.amplitude * idct2(coefficients)


def _cnn(dtype: torch.dtype = torch.float32) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, 6, 3, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(24, 4)).to(dtype)


def _images(dtype: torch.dtype = torch.float32, count: int = 4) -> torch.Tensor:
    generator = torch.Generator().manual_seed(3)
    return (0.2 + 0.6 * torch.rand(count, 3, SIZE, SIZE, generator=generator)).to(dtype)


@pytest.mark.parametrize("band, high", [(1, False), (3, False), (20, True), (27, True)])
def test_band_confined_perturbation(band: int, high: bool) -> None:
    model, images = _cnn(torch.float64), _images(torch.float64)
    labels = predict(model, images).argmax(dim=1)
    result = attack_spectra(model, images, labels, {"band": BandAttack(band)})
    spectrum = result["band"]
    in_band = (dct_bands(SIZE, SIZE) == band).numpy()
    values = spectrum.rct.numpy()
    assert values[in_band].min() > 0
    assert values[~in_band].max() < 1e-9 * values[in_band].min()
    # independent RCT with scipy's orthonormal DCT
    x = images.numpy()
    change = scipy.fft.dctn(spectrum.adversarial.numpy() - x, type=2, norm="ortho", axes=(-2, -1))
    expected = np.abs(change / scipy.fft.dctn(x, type=2, norm="ortho", axes=(-2, -1))).reshape(-1, SIZE, SIZE)
    np.testing.assert_allclose(values, expected.mean(axis=0), rtol=1e-6, atol=1e-12)
    assert result.high_band == (2 * SIZE - 1) // 2
    assert (spectrum.high_low_ratio > 1e6) if high else (spectrum.high_low_ratio < 1e-6)
    assert spectrum.clean_accuracy == 1.0


def test_high_low_ratio_closed_forms() -> None:
    bands = dct_bands(SIZE, SIZE).double()
    assert high_low_ratio(torch.ones(SIZE, SIZE)) == pytest.approx(1.0)
    assert high_low_ratio((bands >= 15).double()) == math.inf
    assert math.isnan(high_low_ratio(torch.zeros(SIZE, SIZE)))
    split = 10
    expected = float(bands[bands >= split].mean() / bands[bands < split].mean())
    assert high_low_ratio(bands, high_band=split) == pytest.approx(expected)
    with pytest.raises(ValueError):
        high_low_ratio(bands, high_band=0)
    with pytest.raises(ValueError):
        high_low_ratio(bands, high_band=2 * SIZE - 1)


def test_fgsm_is_higher_frequency_than_low_frequency_pgd(tmp_path) -> None:
    model, images = _cnn(), _images()
    labels = predict(model, images).argmax(dim=1)
    attacks = {
        "fgsm": FGSM(model, eps=8 / 255),
        "lfpgd": LowFrequencyPGD(model, eps=8 / 255, alpha=4 / 255, steps=3, cutoff=2,
                                 generator=torch.Generator().manual_seed(0)),
    }
    result = attack_spectra(model, images, labels, attacks, batch_size=2)
    assert isinstance(result, AttackSpectra) and list(result) == ["fgsm", "lfpgd"]
    assert result["lfpgd"].high_low_ratio < result["fgsm"].high_low_ratio
    assert result["lfpgd"].high_low_ratio < 1e-3  # δ lives in bands 0–1 only (no clipping: pixels in [0.2, 0.8])
    for spectrum in result.values():
        assert spectrum.adversarial.shape == images.shape and spectrum.rct.shape == (SIZE, SIZE)
        robust = float((predict(model, spectrum.adversarial).argmax(dim=1) == labels).float().mean())
        assert spectrum.robust_accuracy == pytest.approx(robust)
        assert (spectrum.adversarial - images).abs().max() <= 8 / 255 + 1e-6
    summary = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert summary["high_band"] == result.high_band
    assert summary["attacks"]["fgsm"]["settings"]["name"] == "FGSM"
    assert np.asarray(summary["attacks"]["lfpgd"]["rct"]).shape == (SIZE, SIZE)
    path = save_rct_figure(result, tmp_path / "out" / "rct.png")
    assert path.read_bytes()[:8] == PNG_MAGIC


def test_figure_with_all_zero_rct(tmp_path) -> None:
    model, images = _cnn(), _images(count=2)
    labels = predict(model, images).argmax(dim=1)
    result = attack_spectra(model, images, labels, {"identity": lambda x, y: x.clone()})
    assert float(result["identity"].rct.abs().max()) == 0.0
    assert result.to_dict()["attacks"]["identity"]["high_low_ratio"] is None  # 0 / 0
    assert save_rct_figure(result, tmp_path / "rct.png").read_bytes()[:8] == PNG_MAGIC


@pytest.mark.parametrize("attacks, kwargs, error", [
    ({}, {}, ValueError),
    ({"x": 3}, {}, TypeError),
    ({"band": BandAttack(1)}, {"high_band": 0}, ValueError),
    ({"band": BandAttack(1)}, {"high_band": 1.5}, TypeError),
])
def test_bad_arguments(attacks, kwargs, error) -> None:
    model, images = _cnn(), _images(count=2)
    labels = torch.zeros(2, dtype=torch.long)
    with pytest.raises(error):
        attack_spectra(model, images, labels, attacks, **kwargs)


def test_bad_inputs() -> None:
    model = _cnn()
    with pytest.raises((ValueError, TypeError)):
        attack_spectra(model, _images()[0], torch.zeros(3, dtype=torch.long), {"band": BandAttack(1)})


def test_attack_spectra_do_not_depend_on_batch_size() -> None:
    model, images = _cnn(), _images()
    labels = predict(model, images).argmax(dim=1)

    def run(batch_size):
        attacks = {"pgd": PGD(model, eps=8 / 255, alpha=2 / 255, steps=3, generator=torch.Generator().manual_seed(0))}
        return attack_spectra(model, images, labels, attacks, batch_size=batch_size)["pgd"]

    small, whole = run(1), run(None)
    torch.testing.assert_close(small.adversarial, whole.adversarial)
    torch.testing.assert_close(small.rct, whole.rct)
