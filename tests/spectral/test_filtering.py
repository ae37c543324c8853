"""FORGrad low-pass: exact identity at the Nyquist bound, cosines kept iff k ≤ σ, DC, linearity,
real output, σ sweeps, gradients, a numpy reference implementation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from freqlens.spectral import lowpass, lowpass_mask, nyquist_sigma

SIZES = [(8, 8), (7, 7), (8, 7), (6, 9), (1, 5), (16, 15)]
SHAPES = ["box", "disk", "gaussian"]


def cosine(h: int, w: int, k: int, l: int = 0) -> torch.Tensor:
    i = torch.arange(h, dtype=torch.float64)[:, None]
    j = torch.arange(w, dtype=torch.float64)[None, :]
    return torch.cos(2 * math.pi * (k * i / h + l * j / w))


def numpy_lowpass(maps: np.ndarray, sigma: float, shape: str) -> np.ndarray:
    """Independent reference: numpy FFT, offsets from ``fftfreq``, mask on the centred spectrum."""
    h, w = maps.shape[-2:]
    di = np.fft.fftshift(np.fft.fftfreq(h, 1 / h))[:, None]
    dj = np.fft.fftshift(np.fft.fftfreq(w, 1 / w))[None, :]
    if shape == "box":
        mask = (np.abs(di) <= sigma) & (np.abs(dj) <= sigma)
    elif shape == "disk":
        mask = np.hypot(di, dj) <= sigma
    else:
        with np.errstate(over="ignore"):  # tiny σ: exp(-inf) = 0
            mask = np.exp(-0.5 * (np.hypot(di, dj) / sigma) ** 2)
    spectrum = np.fft.fftshift(np.fft.fft2(maps), axes=(-2, -1)) * mask
    return np.fft.ifft2(np.fft.ifftshift(spectrum, axes=(-2, -1))).real


@pytest.mark.parametrize("h, w, shape, expected", [
    (8, 8, "box", 4.0), (7, 7, "box", 3.0), (8, 5, "box", 4.0), (3, 10, "box", 5.0),
    (8, 6, "disk", 5.0), (7, 7, "disk", math.sqrt(18)), (8, 8, "gaussian", math.inf)])
def test_nyquist_sigma_values(h, w, shape, expected):
    assert nyquist_sigma(h, w, shape) == expected


@pytest.mark.parametrize("h, w", SIZES)
@pytest.mark.parametrize("shape", ["box", "disk"])
def test_nyquist_sigma_is_the_smallest_all_ones_sigma(h, w, shape):
    bound = nyquist_sigma(h, w, shape)
    assert bool((lowpass_mask(h, w, bound, shape) == 1).all())
    if bound > 0:
        assert not bool((lowpass_mask(h, w, bound - 1e-6, shape) == 1).all())


@pytest.mark.parametrize("h, w", [(8, 8), (8, 6), (10, 4)])
def test_box_mask_is_the_papers_formula_for_even_sizes(h, w):
    i = np.arange(h)[:, None]
    j = np.arange(w)[None, :]
    for sigma in (0, 1, 2.5, 3):
        paper = (np.abs(i - h / 2) <= sigma) & (np.abs(j - w / 2) <= sigma)
        np.testing.assert_array_equal(lowpass_mask(h, w, sigma, "box").numpy(), paper.astype(np.float32))


@pytest.mark.parametrize("h, w", SIZES)
@pytest.mark.parametrize("shape", SHAPES)
def test_identity_at_and_beyond_nyquist_is_exact(h, w, shape):
    maps = torch.randn(2, 3, h, w)
    bound = nyquist_sigma(h, w, shape)
    for sigma in (bound, bound + 0.5, math.inf):
        out = lowpass(maps, sigma, shape)
        assert torch.equal(out, maps)
        assert out.data_ptr() != maps.data_ptr()  # a copy, not the input itself


@pytest.mark.parametrize("h, w", [(16, 16), (15, 15), (16, 13)])
@pytest.mark.parametrize("shape", ["box", "disk"])
def test_cosine_kept_iff_frequency_within_sigma(h, w, shape):
    for k in range(h // 2 + 1):
        wave = cosine(h, w, k)
        for sigma in (0, 1, 2.5, 3, 5, 6.9, 7):
            out = lowpass(wave, sigma, shape)
            expected = wave if k <= sigma else torch.zeros_like(wave)
            torch.testing.assert_close(out, expected, atol=1e-10, rtol=0, msg=f"k={k} sigma={sigma}")


def test_diagonal_cosine_separates_box_from_disk():
    wave = cosine(16, 16, 3, 4)  # offset (±3, ±4): Chebyshev radius 4, Euclidean radius 5
    torch.testing.assert_close(lowpass(wave, 4, "box"), wave, atol=1e-10, rtol=0)
    torch.testing.assert_close(lowpass(wave, 3.9, "box"), torch.zeros_like(wave), atol=1e-10, rtol=0)
    torch.testing.assert_close(lowpass(wave, 4.99, "disk"), torch.zeros_like(wave), atol=1e-10, rtol=0)
    torch.testing.assert_close(lowpass(wave, 5, "disk"), wave, atol=1e-10, rtol=0)


@pytest.mark.parametrize("k", [1, 3, 6])
def test_gaussian_halves_a_cosine_at_the_half_power_sigma(k):
    wave = cosine(16, 15, k)
    sigma = k / math.sqrt(2 * math.log(2))  # exp(-k²/(2σ²)) = 1/2
    torch.testing.assert_close(lowpass(wave, sigma, "gaussian"), wave / 2, atol=1e-10, rtol=0)


@pytest.mark.parametrize("h, w", SIZES)
@pytest.mark.parametrize("shape", SHAPES)
def test_dc_is_preserved_and_sigma_zero_gives_the_mean(h, w, shape):
    maps = torch.rand(3, h, w, dtype=torch.float64) + 2.0
    means = maps.mean(dim=(-2, -1), keepdim=True)
    for sigma in (0, 1e-300, 0.5, 1, 2.5):
        torch.testing.assert_close(lowpass(maps, sigma, shape).mean(dim=(-2, -1), keepdim=True), means)
    torch.testing.assert_close(lowpass(maps, 0, shape), means.expand_as(maps))
    torch.testing.assert_close(lowpass(maps, 1e-300, shape), means.expand_as(maps))


@pytest.mark.parametrize("shape", SHAPES)
def test_linearity(shape):
    x, y = torch.randn(2, 2, 9, 8, dtype=torch.float64)
    expected = 2.5 * lowpass(x, 2, shape) - 0.7 * lowpass(y, 2, shape)
    torch.testing.assert_close(lowpass(2.5 * x - 0.7 * y, 2, shape), expected)


@pytest.mark.parametrize("h, w", SIZES)
@pytest.mark.parametrize("shape", SHAPES)
def test_real_input_gives_real_result_before_taking_the_real_part(h, w, shape):
    maps = torch.randn(2, h, w, dtype=torch.float64)
    for sigma in (0.5, 1, 2, 3.5):
        mask = torch.fft.ifftshift(lowpass_mask(h, w, sigma, shape, dtype=torch.float64))
        complex_result = torch.fft.ifft2(torch.fft.fft2(maps) * mask)
        assert complex_result.imag.abs().max() < 1e-12
        torch.testing.assert_close(lowpass(maps, sigma, shape), complex_result.real)
    assert lowpass(maps.float(), 1, shape).dtype == torch.float32


@pytest.mark.parametrize("shape", ["box", "disk"])
def test_box_and_disk_are_projections(shape):
    maps = torch.randn(4, 12, 11, dtype=torch.float64)
    once = lowpass(maps, 3, shape)
    torch.testing.assert_close(lowpass(once, 3, shape), once)
    assert bool((once.square().sum((-2, -1)) <= maps.square().sum((-2, -1)) + 1e-9).all())


@pytest.mark.parametrize("shape", SHAPES)
def test_sigma_sweep_equals_single_calls(shape):
    maps = torch.randn(2, 3, 10, 9)
    sigmas = [0, 1.5, 3, 100.0]
    out = lowpass(maps, sigmas, shape)
    assert out.shape == (4, 2, 3, 10, 9)
    for s, single in zip(sigmas, out):
        torch.testing.assert_close(single, lowpass(maps, s, shape))
    if shape != "gaussian":
        assert torch.equal(out[-1], maps)
    torch.testing.assert_close(lowpass(maps, torch.tensor(sigmas), shape), out)
    assert lowpass(maps, torch.tensor(2.0), shape).shape == maps.shape  # 0-d tensor: a single σ
    assert torch.equal(lowpass(maps, [math.inf, math.inf], "gaussian"), torch.stack([maps, maps]))


def test_gradient_is_the_filtered_upstream_gradient():
    # The filter is a real symmetric linear operator: d<lowpass(x), g>/dx = lowpass(g).
    x = torch.randn(2, 9, 8, dtype=torch.float64, requires_grad=True)
    g = torch.randn(2, 9, 8, dtype=torch.float64)
    (lowpass(x, 2, "disk") * g).sum().backward()
    torch.testing.assert_close(x.grad, lowpass(g, 2, "disk"))
    x.grad = None
    (lowpass(x, 100, "box") * g).sum().backward()  # identity short-circuit keeps the graph
    torch.testing.assert_close(x.grad, g)


def test_complex_input_gives_complex_output():
    z = torch.randn(7, 8, dtype=torch.complex128)
    mask = torch.fft.ifftshift(lowpass_mask(7, 8, 2, "box", dtype=torch.float64))
    torch.testing.assert_close(lowpass(z, 2), torch.fft.ifft2(torch.fft.fft2(z) * mask))


@pytest.mark.parametrize("sigma, shape, error", [
    (-1.0, "box", ValueError), (float("nan"), "box", ValueError), (1.0, "square", ValueError),
    ([1.0, -0.5], "disk", ValueError), ([], "box", ValueError), (torch.ones(2, 2), "box", ValueError),
    ("3", "box", TypeError)])
def test_bad_sigma_or_shape_raises(sigma, shape, error):
    with pytest.raises(error):
        lowpass(torch.randn(8, 8), sigma, shape)


def test_bad_maps_raise():
    with pytest.raises(TypeError):
        lowpass(torch.ones(8, 8, dtype=torch.int32), 2)
    with pytest.raises(ValueError):
        lowpass(torch.ones(8), 2)
    with pytest.raises(ValueError):
        lowpass_mask(8, 8, -1)


@settings(max_examples=40, deadline=None)
@given(h=st.integers(1, 12), w=st.integers(1, 12), sigma=st.floats(0.0, 8.0), shape=st.sampled_from(SHAPES),
       seed=st.integers(0, 2**16))
def test_property_matches_numpy_reference(h, w, sigma, shape, seed):
    if shape == "gaussian" and sigma == 0:
        sigma = 0.25
    maps = torch.randn(2, h, w, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    expected = numpy_lowpass(maps.numpy(), sigma, shape)
    torch.testing.assert_close(lowpass(maps, sigma, shape), torch.from_numpy(expected), atol=1e-10, rtol=0)
