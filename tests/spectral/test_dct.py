"""dct2 / idct2 against scipy, exact inverse, Parseval; DCT bands and band masks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.fft
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from freqlens.spectral import band_mask, dct2, dct_bands, dct_matrix, idct2

SHAPES = [(8, 8), (7, 5), (1, 1), (1, 6), (2, 3, 16, 9), (4, 1, 11, 12), (2, 2, 2, 3, 4)]


def scipy_dct2(x: torch.Tensor) -> torch.Tensor:
    return torch.from_numpy(scipy.fft.dctn(x.double().numpy(), type=2, norm="ortho", axes=(-2, -1)))


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-10), (torch.float32, 1e-5)])
def test_dct2_equals_scipy_dctn_ortho(shape, dtype, tol):
    x = torch.randn(shape, dtype=dtype)
    out = dct2(x)
    assert out.shape == x.shape and out.dtype == dtype
    torch.testing.assert_close(out.double(), scipy_dct2(x), atol=tol, rtol=0)


@pytest.mark.parametrize("shape", SHAPES)
def test_idct2_equals_scipy_idctn_and_inverts(shape):
    coefficients = torch.randn(shape, dtype=torch.float64)
    expected = scipy.fft.idctn(coefficients.numpy(), type=2, norm="ortho", axes=(-2, -1))
    torch.testing.assert_close(idct2(coefficients), torch.from_numpy(expected), atol=1e-10, rtol=0)
    x = torch.randn(shape, dtype=torch.float64)
    torch.testing.assert_close(idct2(dct2(x)), x, atol=1e-12, rtol=0)
    torch.testing.assert_close(dct2(idct2(x)), x, atol=1e-12, rtol=0)


@pytest.mark.parametrize("shape", SHAPES)
def test_parseval_energy_preserved(shape):
    x = torch.randn(shape, dtype=torch.float64)
    torch.testing.assert_close(dct2(x).square().sum(dim=(-2, -1)), x.square().sum(dim=(-2, -1)))


@pytest.mark.parametrize("h, w", [(5, 7), (8, 8)])
def test_constant_image_has_only_dc(h, w):
    x = torch.full((h, w), 0.3, dtype=torch.float64)
    expected = torch.zeros(h, w, dtype=torch.float64)
    expected[0, 0] = 0.3 * math.sqrt(h * w)
    torch.testing.assert_close(dct2(x), expected, atol=1e-12, rtol=0)


def test_dct_matrix_is_orthogonal_and_is_the_1d_dct():
    c = dct_matrix(9)
    torch.testing.assert_close(c @ c.T, torch.eye(9, dtype=torch.float64), atol=1e-13, rtol=0)
    v = np.random.default_rng(0).normal(size=9)
    torch.testing.assert_close(c @ torch.from_numpy(v), torch.from_numpy(scipy.fft.dct(v, norm="ortho")))
    c[0, 0] = 123.0  # returned copy: the cache is not affected
    assert dct_matrix(9)[0, 0] != 123.0


def test_gradient_is_the_inverse_transform():
    # dct2 is orthonormal linear: d<dct2(x), g>/dx = dct2ᵀ g = idct2(g).
    x = torch.randn(2, 6, 5, dtype=torch.float64, requires_grad=True)
    g = torch.randn(2, 6, 5, dtype=torch.float64)
    (dct2(x) * g).sum().backward()
    torch.testing.assert_close(x.grad, idct2(g))


def test_half_precision_computed_in_float32_and_cast_back():
    x = torch.rand(3, 8, 8)
    out = dct2(x.to(torch.bfloat16))
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), dct2(x.to(torch.bfloat16).float()), atol=0.05, rtol=0.02)


@pytest.mark.parametrize("bad, error", [(torch.ones(3, 4, dtype=torch.long), TypeError),
                                        (torch.ones(5), ValueError), ([[1.0]], TypeError),
                                        (torch.ones(2, 0, 3), ValueError)])
def test_bad_inputs_raise(bad, error):
    with pytest.raises(error):
        dct2(bad)
    with pytest.raises(error):
        idct2(bad)


@settings(max_examples=30, deadline=None)
@given(h=st.integers(1, 12), w=st.integers(1, 12), lead=st.integers(1, 3), seed=st.integers(0, 2**16))
def test_property_matches_scipy_and_roundtrips(h, w, lead, seed):
    x = torch.randn(lead, h, w, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    torch.testing.assert_close(dct2(x), scipy_dct2(x), atol=1e-10, rtol=0)
    torch.testing.assert_close(idct2(dct2(x)), x, atol=1e-12, rtol=0)


@pytest.mark.parametrize("h, w", [(4, 4), (5, 3), (1, 7), (32, 28)])
def test_dct_bands_values_and_count(h, w):
    bands = dct_bands(h, w)
    assert bands.shape == (h, w) and bands.dtype == torch.long
    i, j = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    np.testing.assert_array_equal(bands.numpy(), i + j)
    assert bands.unique().numel() == h + w - 1
    assert int(bands[0, 0]) == 0 and int(bands[-1, -1]) == h + w - 2


@pytest.mark.parametrize("bands", [3, range(2, 5), [0, 7], (1,), torch.tensor([4, 2]), np.array([6])])
def test_band_mask_selects_exactly_the_bands(bands):
    h, w = 5, 6
    wanted = [bands] if isinstance(bands, int) else [int(b) for b in bands]
    expected = np.isin(np.add.outer(np.arange(h), np.arange(w)), wanted)
    mask = band_mask(h, w, bands)
    assert mask.dtype == torch.bool
    np.testing.assert_array_equal(mask.numpy(), expected)


def test_band_mask_low_frequency_range_beyond_last_band_selects_all_and_empty_selects_none():
    assert bool(band_mask(4, 4, range(100)).all())
    assert not bool(band_mask(4, 4, []).any())
    assert int(band_mask(4, 4, range(3)).sum()) == 1 + 2 + 3


@pytest.mark.parametrize("bands, error", [(-1, ValueError), ([0, -2], ValueError), (1.5, TypeError),
                                          ([True], TypeError), (torch.tensor([0.5]), TypeError),
                                          ("ab", TypeError)])
def test_band_mask_bad_bands(bands, error):
    with pytest.raises(error):
        band_mask(4, 4, bands)
