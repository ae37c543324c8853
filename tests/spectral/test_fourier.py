"""power_spectrum (centring, numpy cross-check, closed forms) and radial_profile."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from freqlens.spectral import frequency_offsets, num_radial_bins, power_spectrum, radial_profile

SIZES = [(8, 8), (7, 7), (8, 7), (5, 6), (1, 4), (32, 28)]


def cosine(h: int, w: int, k: int, l: int = 0, dtype=torch.float64) -> torch.Tensor:
    i = torch.arange(h, dtype=torch.float64)[:, None]
    j = torch.arange(w, dtype=torch.float64)[None, :]
    return torch.cos(2 * math.pi * (k * i / h + l * j / w)).to(dtype)


def test_frequency_offsets_follow_fftshift():
    for n in (1, 2, 7, 8):
        np.testing.assert_array_equal(frequency_offsets(n).numpy(), np.fft.fftshift(np.fft.fftfreq(n, 1 / n)))


@pytest.mark.parametrize("h, w", SIZES)
def test_constant_map_is_a_single_dc_peak_at_the_centre(h, w):
    power = power_spectrum(torch.full((h, w), 0.5, dtype=torch.float64))
    expected = torch.zeros(h, w, dtype=torch.float64)
    expected[h // 2, w // 2] = (0.5 * h * w) ** 2
    torch.testing.assert_close(power, expected, atol=1e-9, rtol=0)


@pytest.mark.parametrize("h, w", SIZES)
def test_delta_has_a_flat_spectrum(h, w):
    delta = torch.zeros(2, h, w, dtype=torch.float64)
    delta[0, 0, 0] = 1.0
    delta[1, h // 3, w - 1] = 1.0  # any position: only the phase changes
    torch.testing.assert_close(power_spectrum(delta), torch.ones(2, h, w, dtype=torch.float64))


@pytest.mark.parametrize("h, w", SIZES)
def test_matches_numpy_and_averages_channels(h, w):
    maps = torch.randn(3, 2, h, w, dtype=torch.float64)
    reference = np.abs(np.fft.fftshift(np.fft.fft2(maps.numpy()), axes=(-2, -1))) ** 2
    torch.testing.assert_close(power_spectrum(maps), torch.from_numpy(reference.mean(axis=1)))
    torch.testing.assert_close(power_spectrum(maps, average_channels=False), torch.from_numpy(reference))
    # non-4-D ranks keep their shape
    assert power_spectrum(maps[0]).shape == (2, h, w)
    assert power_spectrum(maps[0, 0]).shape == (h, w)


@pytest.mark.parametrize("h, w, k", [(8, 8, 3), (9, 8, 4), (16, 15, 2)])
def test_cosine_peaks_at_plus_minus_k(h, w, k):
    power = power_spectrum(cosine(h, w, k))
    expected = torch.zeros(h, w, dtype=torch.float64)
    expected[h // 2 + k, w // 2] = expected[h // 2 - k, w // 2] = (h * w / 2) ** 2
    torch.testing.assert_close(power, expected, atol=1e-8, rtol=0)


def test_power_spectrum_float32_and_rejects_integers():
    assert power_spectrum(torch.rand(2, 1, 6, 6)).dtype == torch.float32
    with pytest.raises(TypeError):
        power_spectrum(torch.ones(4, 4, dtype=torch.int64))
    with pytest.raises(ValueError):
        power_spectrum(torch.ones(4))


def _numpy_radial_profile(spectrum: np.ndarray) -> np.ndarray:
    h, w = spectrum.shape[-2:]
    di, dj = np.meshgrid(np.arange(h) - h // 2, np.arange(w) - w // 2, indexing="ij")
    r = np.rint(np.hypot(di, dj)).astype(int)
    return np.stack([spectrum[..., r == b].mean(axis=-1) for b in range(r.max() + 1)], axis=-1)


@pytest.mark.parametrize("h, w", SIZES + [(2, 32), (33, 32), (1, 1)])
def test_radial_profile_matches_reference_and_all_bins_are_present(h, w):
    spectrum = torch.rand(2, 3, h, w, dtype=torch.float64)
    profile = radial_profile(spectrum)
    assert profile.shape == (2, 3, num_radial_bins(h, w))
    torch.testing.assert_close(profile, torch.from_numpy(_numpy_radial_profile(spectrum.numpy())))
    # every bin holds at least one entry: the profile of ones is ones
    torch.testing.assert_close(radial_profile(torch.ones(h, w)), torch.ones(num_radial_bins(h, w)))


@pytest.mark.parametrize("h, w", [(16, 16), (15, 16)])
def test_radial_profile_of_a_ring_and_of_a_radial_function(h, w):
    di = torch.arange(h)[:, None] - h // 2
    dj = torch.arange(w)[None, :] - w // 2
    radius_bin = torch.round(torch.sqrt((di**2 + dj**2).double())).long()
    n_bins = num_radial_bins(h, w)
    ring = (radius_bin == 5).double()
    expected = torch.zeros(n_bins, dtype=torch.float64)
    expected[5] = 1.0
    torch.testing.assert_close(radial_profile(ring), expected)
    values = torch.rand(n_bins, dtype=torch.float64)  # any function of the integer radius
    torch.testing.assert_close(radial_profile(values[radius_bin]), values)


def test_radial_profile_of_white_noise_power_is_flat_on_average():
    maps = torch.randn(200, 16, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    profile = radial_profile(power_spectrum(maps).mean(0))
    # E|F(noise)|² = H·W at every frequency
    torch.testing.assert_close(profile[1:9], torch.full((8,), 256.0, dtype=torch.float64), rtol=0.25, atol=0)


def test_radial_profile_is_differentiable():
    spectrum = torch.rand(5, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(radial_profile, (spectrum,))
    maps = torch.rand(1, 2, 5, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda m: radial_profile(power_spectrum(m)), (maps,))
