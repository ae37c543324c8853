"""FORGrad: identity at and above Nyquist, removal of high frequencies, an independent numpy filter."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from freqlens.attribution import RISE, FORGrad, Saliency, SmoothGrad

from .conftest import SmoothCNN, make_images


class FixedMaps:
    """An explainer returning given maps (whatever the inputs)."""

    per_channel = True
    family = "gradient"

    def __init__(self, maps: torch.Tensor) -> None:
        self.maps = maps

    def attribute(self, inputs, target=None):
        return self.maps.clone()


def _numpy_box_lowpass(maps: np.ndarray, sigma: float) -> np.ndarray:
    """The paper's filter written independently: centred spectrum × 1[|i−H/2| ≤ σ]·1[|j−W/2| ≤ σ]."""
    h, w = maps.shape[-2:]
    rows = np.abs(np.arange(h) - h // 2)[:, None] <= sigma
    cols = np.abs(np.arange(w) - w // 2)[None, :] <= sigma
    spectrum = np.fft.fftshift(np.fft.fft2(maps), axes=(-2, -1)) * (rows & cols)
    return np.fft.ifft2(np.fft.ifftshift(spectrum, axes=(-2, -1))).real


@pytest.mark.parametrize(("shape", "sigma"), [("box", 8), ("box", 100.0), ("disk", math.sqrt(128) + 1e-9),
                                               ("gaussian", math.inf)])
def test_at_or_above_nyquist_returns_base_maps_exactly(smooth_cnn, images, shape, sigma):
    target = torch.tensor([0, 1, 2, 3])
    base = Saliency(smooth_cnn)(images, target)
    assert torch.equal(FORGrad(Saliency(smooth_cnn), sigma, shape)(images, target), base)


def test_just_below_nyquist_filters(smooth_cnn, images):
    target = torch.tensor([0, 1, 2, 3])
    base = Saliency(smooth_cnn)(images, target)
    assert not torch.allclose(FORGrad(Saliency(smooth_cnn), 7)(images, target), base)


def test_small_sigma_removes_a_checkerboard():
    h = w = 16
    i, j = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij")
    smooth = torch.cos(2 * math.pi * i / h) + 0.5 * torch.sin(2 * math.pi * 2 * j / w)  # ≤ 2 cycles
    checker = (-1.0) ** (i + j)
    maps = (smooth + 0.8 * checker).to(torch.float64).expand(2, 3, h, w).clone()
    filtered = FORGrad(FixedMaps(maps), sigma=2)(torch.rand(2, 3, h, w), 0)
    torch.testing.assert_close(filtered, smooth.to(torch.float64).expand(2, 3, h, w), rtol=0, atol=1e-12)
    # σ = 1 also drops the 2-cycle sine but keeps the 1-cycle cosine
    filtered = FORGrad(FixedMaps(maps), sigma=1)(torch.rand(2, 3, h, w), 0)
    expected = torch.cos(2 * math.pi * i / h).to(torch.float64).expand(2, 3, h, w)
    torch.testing.assert_close(filtered, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize(("size", "sigma"), [((16, 16), 3), ((15, 12), 4.5), ((9, 9), 0)])
def test_matches_independent_numpy_filter(size, sigma):
    maps = torch.randn(2, 3, *size, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    filtered = FORGrad(FixedMaps(maps), sigma)(torch.rand(2, 3, *size), 0)
    np.testing.assert_allclose(filtered.numpy(), _numpy_box_lowpass(maps.numpy(), sigma), atol=1e-12)


def test_filtering_is_signed_and_per_channel():
    maps = torch.zeros(1, 3, 8, 8, dtype=torch.float64)
    maps[0, 1] = -2.0  # a constant negative map on one channel only: pure DC, kept as is
    filtered = FORGrad(FixedMaps(maps), sigma=0)(torch.rand(1, 3, 8, 8), 0)
    torch.testing.assert_close(filtered, maps)


def test_follows_wrapped_explainer(smooth_cnn):
    saliency = Saliency(smooth_cnn)
    forgrad = FORGrad(saliency, 3.0, shape="disk")
    assert forgrad.explainer is saliency and forgrad.sigma == 3.0 and forgrad.shape == "disk"
    assert forgrad.model is smooth_cnn and forgrad.per_channel and not forgrad.stochastic
    rise = FORGrad(RISE(smooth_cnn, n_masks=8, progress=False), 2)
    assert not rise.per_channel and rise.family == "black-box" and rise.stochastic
    assert "FORGrad" in repr(forgrad)


def test_passes_generator_to_stochastic_explainer(smooth_cnn):
    x = make_images(batch=2)
    target = torch.tensor([1, 2])
    forgrad = FORGrad(SmoothGrad(Saliency(smooth_cnn), n=2), 3)
    first = forgrad(x, target, generator=torch.Generator().manual_seed(0))
    again = forgrad(x, target, generator=torch.Generator().manual_seed(0))
    other = forgrad(x, target, generator=torch.Generator().manual_seed(1))
    assert torch.equal(first, again) and not torch.allclose(first, other)
    # inside a noise tunnel, a stochastic FORGrad gets one child generator per sample
    tunnel = [SmoothGrad(forgrad, n=2, batch_size=bs, generator=torch.Generator().manual_seed(3))(x, target)
              for bs in (1, None)]
    torch.testing.assert_close(tunnel[0], tunnel[1])


def test_deterministic_explainer_ignores_generator():
    model = SmoothCNN().eval()
    x = make_images(batch=1)
    forgrad = FORGrad(Saliency(model), 4)
    torch.testing.assert_close(forgrad(x, 0, generator=torch.Generator().manual_seed(0)), forgrad(x, 0))


@pytest.mark.parametrize(("sigma", "shape", "error", "message"), [
    (-1, "box", ValueError, "sigma"), (float("nan"), "box", ValueError, "sigma"), ([1, 2], "box", ValueError, "sigma"),
    (True, "box", ValueError, "sigma"), (2, "triangle", ValueError, "unknown low-pass shape"),
])
def test_bad_arguments(smooth_cnn, sigma, shape, error, message):
    with pytest.raises(error, match=message):
        FORGrad(Saliency(smooth_cnn), sigma, shape)


def test_rejects_non_explainer():
    with pytest.raises(TypeError, match="attribute"):
        FORGrad(object(), 2)
