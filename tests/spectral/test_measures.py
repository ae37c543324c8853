"""High-frequency measures: closed forms, invariances, scipy / Pillow cross-checks."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import scipy.ndimage
import torch
from PIL import Image

F64 = torch.float64

from freqlens.spectral import compression_ratio, hf_power_ratio, laplacian_energy, quantize_uint8


def cosine(h: int, w: int, k: int, l: int = 0) -> torch.Tensor:
    i = torch.arange(h, dtype=F64)[:, None]
    j = torch.arange(w, dtype=F64)[None, :]
    return torch.cos(2 * math.pi * (k * i / h + l * j / w))


def checkerboard(h: int, w: int) -> torch.Tensor:
    return ((torch.arange(h)[:, None] + torch.arange(w)[None, :]) % 2 * 2 - 1).double()


def ramp(h: int, w: int) -> torch.Tensor:
    return torch.linspace(0, 1, w, dtype=F64).expand(h, w) + torch.linspace(0, 0.5, h, dtype=F64)[:, None]


def blob(h: int, w: int) -> torch.Tensor:
    i = torch.arange(h, dtype=F64)[:, None] - h / 2
    j = torch.arange(w, dtype=F64)[None, :] - w / 2
    return torch.exp(-(i**2 + j**2) / (2 * (h / 5) ** 2))


# ---------------------------------------------------------------- hf_power_ratio
def test_hf_power_ratio_constant_zero_and_checkerboard_one():
    maps = torch.stack([torch.full((16, 16), 0.3, dtype=F64), torch.zeros(16, 16, dtype=F64),
                        checkerboard(16, 16)])
    torch.testing.assert_close(hf_power_ratio(maps), torch.tensor([0.0, 0.0, 1.0], dtype=F64))


def test_hf_power_ratio_closed_form_for_two_cosines():
    # power of a·cos(k1) + b·cos(k2) splits as a² : b² between radius k1 and k2.
    a, b = 2.0, 0.5
    maps = (a * cosine(32, 32, 2) + b * cosine(32, 32, 0, 12)).unsqueeze(0)
    expected = torch.tensor([b**2 / (a**2 + b**2)], dtype=F64)
    torch.testing.assert_close(hf_power_ratio(maps, cutoff=8), expected)
    torch.testing.assert_close(hf_power_ratio(maps, cutoff=12), torch.zeros(1, dtype=F64), atol=1e-12, rtol=0)
    torch.testing.assert_close(hf_power_ratio(maps, cutoff=1.9), torch.ones(1, dtype=F64))


def test_hf_power_ratio_mean_handling_and_default_cutoff():
    c, a = 1.5, 0.5
    maps = (c + a * checkerboard(8, 8)).unsqueeze(0)
    torch.testing.assert_close(hf_power_ratio(maps), torch.tensor([a**2 / (a**2 + c**2)], dtype=F64))
    torch.testing.assert_close(hf_power_ratio(maps, remove_mean=True), torch.ones(1, dtype=F64))
    noise = torch.randn(3, 12, 20, dtype=F64)
    torch.testing.assert_close(hf_power_ratio(noise), hf_power_ratio(noise, cutoff=3.0))


def test_hf_power_ratio_channels_are_averaged_in_the_spectrum_and_batch_is_per_map():
    low, high = cosine(16, 16, 1), cosine(16, 16, 7)
    two_channels = torch.stack([low, high]).unsqueeze(0)  # 1×2×H×W, equal powers
    torch.testing.assert_close(hf_power_ratio(two_channels, cutoff=4), torch.tensor([0.5], dtype=F64))
    batch = torch.randn(5, 16, 16, dtype=F64)
    per_map = torch.cat([hf_power_ratio(m[None], cutoff=5) for m in batch])
    torch.testing.assert_close(hf_power_ratio(batch, cutoff=5), per_map)


def test_hf_power_ratio_orders_smooth_below_noise():
    torch.manual_seed(3)
    maps = torch.stack([blob(28, 28), torch.rand(28, 28, dtype=F64)])
    ratio = hf_power_ratio(maps, remove_mean=True)
    assert ratio[0] < 0.01
    assert 0.5 < ratio[1] < 1


@pytest.mark.parametrize("fn", [hf_power_ratio, laplacian_energy, compression_ratio])
def test_measures_reject_bad_maps(fn):
    with pytest.raises(ValueError):
        fn(torch.ones(8, 8))  # a single map needs a batch dim
    with pytest.raises(ValueError):
        fn(torch.ones(1, 1, 1, 8, 8))
    with pytest.raises(ValueError):
        fn(torch.tensor([[[0.0, float("nan")], [1.0, 2.0]]]))
    with pytest.raises(TypeError):
        fn(torch.ones(1, 8, 8, dtype=torch.uint8))


def test_hf_power_ratio_bad_cutoff():
    with pytest.raises(ValueError):
        hf_power_ratio(torch.rand(1, 8, 8), cutoff=-1)
    with pytest.raises(ValueError):
        hf_power_ratio(torch.rand(1, 8, 8), cutoff=float("nan"))


# ---------------------------------------------------------------- laplacian_energy
def test_laplacian_energy_matches_scipy_with_nearest_borders():
    maps = torch.rand(4, 13, 10, dtype=F64)
    expected = []
    for m in maps.numpy():
        z = (m - m.mean()) / m.std()
        expected.append(scipy.ndimage.laplace(z, mode="nearest").var())
    torch.testing.assert_close(laplacian_energy(maps), torch.tensor(expected, dtype=F64))


def test_laplacian_energy_orders_checkerboard_noise_smooth_and_constant():
    torch.manual_seed(0)
    maps = torch.stack([checkerboard(32, 32), torch.randn(32, 32, dtype=F64), ramp(32, 32),
                        torch.full((32, 32), 0.1, dtype=F64)])
    energy = laplacian_energy(maps)
    assert energy[0] > energy[1] > energy[2] > energy[3]
    assert energy[3] == 0
    assert 40 < energy[0] <= 64  # 64 in the interior, less on the replicate border
    assert 15 < energy[1] < 25  # white noise: (16 + 4)·1


def test_laplacian_energy_affine_invariant_and_channel_mean():
    maps = torch.rand(3, 2, 9, 11, dtype=F64)
    base = laplacian_energy(maps)
    torch.testing.assert_close(laplacian_energy(1e4 * maps - 7.0), base)
    torch.testing.assert_close(laplacian_energy(-0.01 * maps), base)
    torch.testing.assert_close(base, torch.stack([laplacian_energy(maps[:, c]) for c in range(2)]).mean(0))
    assert laplacian_energy(maps.float()).dtype == torch.float32


# ---------------------------------------------------------------- compression_ratio
def test_quantize_uint8_min_max():
    maps = torch.tensor([[[-1.0, 0.0], [0.5, 3.0]], [[2.0, 2.0], [2.0, 2.0]]])
    q = quantize_uint8(maps)
    assert q.dtype == torch.uint8
    assert q[0].min() == 0 and q[0].max() == 255 and int(q[0, 0, 1]) == round(255 / 4)
    assert int(q[1].max()) == 0


def test_compression_ratio_is_png_size_over_raw_size():
    maps = torch.rand(2, 20, 24, dtype=F64)
    expected = []
    for m in maps.numpy():
        q = np.round((m - m.min()) / (m.max() - m.min()) * 255).astype(np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(q).save(buffer, format="PNG", optimize=False, compress_level=6)
        expected.append(len(buffer.getvalue()) / (20 * 24))
    torch.testing.assert_close(compression_ratio(maps), torch.tensor(expected, dtype=F64))


def test_compression_ratio_smooth_below_noise_and_in_range():
    torch.manual_seed(1)
    maps = torch.stack([blob(32, 32), ramp(32, 32), torch.rand(32, 32, dtype=F64),
                        torch.zeros(32, 32, dtype=F64)])
    ratio = compression_ratio(maps)
    assert ratio.shape == (4,) and ratio.dtype == torch.float64
    assert bool(((ratio > 0) & (ratio <= 1.3)).all())
    assert ratio[0] < 0.7 * ratio[2] and ratio[1] < 0.7 * ratio[2]
    assert ratio[3] <= ratio[1]


def test_compression_ratio_scale_invariant_deterministic_and_channel_mean():
    maps = torch.rand(2, 3, 16, 16)
    base = compression_ratio(maps)
    assert torch.equal(compression_ratio(maps), base)
    assert torch.equal(compression_ratio(4.0 * maps), base)  # power-of-two scale: same quantisation
    torch.testing.assert_close(base, torch.stack([compression_ratio(maps[:, c]) for c in range(3)]).mean(0))
