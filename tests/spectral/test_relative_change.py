"""RCT map: zero for identical images, closed form for a scaled image, band localisation, guard."""

from __future__ import annotations

import pytest
import torch

from freqlens.spectral import band_mask, dct2, dct_bands, idct2, rct


def test_rct_of_identical_images_is_zero():
    x = torch.rand(4, 3, 8, 8)
    out = rct(x, x.clone())
    assert out.shape == (8, 8)
    assert torch.equal(out, torch.zeros(8, 8))


def test_rct_of_a_scaled_image_is_the_scale_change_everywhere():
    # DCT is linear: DCT(1.1 x) − DCT(x) = 0.1 DCT(x), so every ratio is exactly 0.1.
    x = torch.randn(5, 2, 7, 9, dtype=torch.float64)
    torch.testing.assert_close(rct(x, 1.1 * x), torch.full((7, 9), 0.1, dtype=torch.float64))


@pytest.mark.parametrize("band", [0, 3, 10])
def test_change_confined_to_one_band_shows_in_that_band_only(band):
    x = torch.rand(6, 3, 8, 7, dtype=torch.float64)
    coefficients = dct2(x)
    selected = band_mask(8, 7, band)
    x_adv = idct2(coefficients + 0.05 * torch.randn_like(coefficients) * selected)
    out = rct(x, x_adv)
    assert bool((out[selected] > 1e-6).all())
    assert float(out[~selected].abs().max()) < 1e-9
    assert set(dct_bands(8, 7)[out > 1e-6].tolist()) == {band}


def test_rct_is_the_mean_over_images_and_channels_of_per_image_maps():
    x = torch.rand(4, 3, 6, 6, dtype=torch.float64)
    x_adv = (x + 0.03 * torch.randn_like(x)).clamp(0, 1)
    per_map = torch.stack([rct(x[b, c], x_adv[b, c]) for b in range(4) for c in range(3)])
    torch.testing.assert_close(rct(x, x_adv), per_map.mean(0))
    torch.testing.assert_close(rct(x, x_adv, reduction="median"), per_map.median(0).values)


def test_rct_denominator_guard_is_sign_preserving_and_finite():
    x = torch.zeros(1, 4, 4, dtype=torch.float64)  # every DCT coefficient is 0
    x_adv = x + 1e-3
    out = rct(x, x_adv, eps=1e-4)
    expected = torch.zeros(4, 4, dtype=torch.float64)
    expected[0, 0] = 4 * 1e-3 / 1e-4  # DC of a constant 1e-3 on 4×4 is 1e-3·sqrt(16)
    torch.testing.assert_close(out, expected)
    # a tiny negative coefficient is divided by −eps, not by a positive number of the wrong sign
    y = torch.zeros(1, 1, 2, dtype=torch.float64)
    y_adv = torch.tensor([[[0.0, 1.0]]], dtype=torch.float64)
    assert bool(torch.isfinite(rct(y, y_adv)).all())


@pytest.mark.parametrize("kwargs, error", [({"eps": 0.0}, ValueError), ({"reduction": "sum"}, ValueError)])
def test_rct_bad_arguments(kwargs, error):
    with pytest.raises(error):
        rct(torch.rand(2, 4, 4), torch.rand(2, 4, 4), **kwargs)


def test_rct_shape_mismatch():
    with pytest.raises(ValueError):
        rct(torch.rand(2, 4, 4), torch.rand(2, 4, 5))
