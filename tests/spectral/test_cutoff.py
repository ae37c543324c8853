"""Per-image cutoff from a map's own spectrum (noise_floor_sigma) and per-map low-pass (lowpass_each)."""

from __future__ import annotations

import pytest
import torch

from freqlens.spectral import lowpass, lowpass_each, noise_floor_sigma, ring_profile


def _band_limited(k0: int, batch: int = 6, size: int = 32, shape: str = "box", seed: int = 0) -> torch.Tensor:
    """Random maps whose spectrum is exactly the rings 0..k0 of ``shape`` (unit variance)."""
    field = torch.randn(batch, size, size, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    signal = lowpass(field, k0, shape)
    return signal / signal.std(dim=(-2, -1), keepdim=True)


@pytest.mark.parametrize("k0", [2, 5, 9])
@pytest.mark.parametrize("shape", ["box", "disk"])
def test_a_band_limited_blob_plus_white_noise_gives_its_band(k0, shape):
    """Signal on rings 0..k0 (unit variance) + white noise (std 0.3): σ = k0 for most maps; the first noise
    ring k0 + 1 passes the z = 3 test by chance now and then (its mean power is a noisy estimate), so k0 + 1
    is tolerated, never less than k0 (box rings are exact; a disk ring is a rounded Euclidean radius, so
    k0 ± 1 there)."""
    noise = 0.3 * torch.randn(12, 32, 32, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    sigma = noise_floor_sigma(_band_limited(k0, batch=12, shape=shape) + noise, shape)
    low = k0 if shape == "box" else k0 - 1
    assert bool(((sigma >= low) & (sigma <= k0 + 1)).all())
    assert int((sigma == k0).sum()) >= 9


def test_pure_white_noise_and_noise_free_maps():
    """White noise has no band above its floor (σ = 1, the smallest); a noise-free band-limited map is
    not cut below its band by rounding error."""
    white = torch.randn(8, 32, 32, generator=torch.Generator().manual_seed(2))
    assert noise_floor_sigma(white).tolist() == [1.0] * 8
    assert noise_floor_sigma(_band_limited(7)).tolist() == [7.0] * 6


def test_channels_and_batch_do_not_change_a_map_s_sigma():
    maps = _band_limited(4, batch=4) + 0.2 * torch.randn(4, 32, 32, generator=torch.Generator().manual_seed(3),
                                                          dtype=torch.float64)
    alone = torch.cat([noise_floor_sigma(maps[i:i + 1]) for i in range(4)])
    torch.testing.assert_close(noise_floor_sigma(maps), alone)
    torch.testing.assert_close(noise_floor_sigma(maps[:, None].expand(4, 3, 32, 32)), alone)  # power summed


def test_ring_profile_sums_to_the_total_power():
    """Parseval: Σ_r profile_r · n_r = Σ|F|² = H·W·Σ m²."""
    maps = torch.randn(3, 2, 12, 10, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    for shape in ("box", "disk"):
        profile, counts = ring_profile(maps, shape)
        torch.testing.assert_close((profile * counts).sum(dim=1), 120 * maps.square().sum(dim=(1, 2, 3)))


def test_lowpass_each_filters_each_map_at_its_own_sigma():
    maps = torch.randn(5, 2, 16, 16, generator=torch.Generator().manual_seed(5))
    sigmas = torch.tensor([1.0, 3.0, 1.0, 8.0, 2.0])
    out = lowpass_each(maps, sigmas, "box")
    for index, sigma in enumerate(sigmas.tolist()):
        torch.testing.assert_close(out[index], lowpass(maps[index], sigma, "box"))
    with pytest.raises(ValueError, match="one σ per map"):
        lowpass_each(maps, sigmas[:3])


def test_bad_arguments():
    maps = torch.randn(2, 16, 16)
    with pytest.raises(ValueError, match="z must be"):
        noise_floor_sigma(maps, z=-1)
    with pytest.raises(ValueError, match="floor_from"):
        noise_floor_sigma(maps, floor_from=1.0)
    with pytest.raises(ValueError, match="shape"):
        noise_floor_sigma(maps, "triangle")
    with pytest.raises(ValueError, match="B×H×W"):
        noise_floor_sigma(torch.randn(1, 1, 1, 16, 16))
