"""FORGrad: both pipelines (magnitude = the published one, signed = Prop. 3.1), identity at and above
Nyquist, removal of high frequencies, an independent numpy filter, and a cross-check against the seed
authors' reference implementation (Xplique's ``forgrad``, re-implemented here in numpy from its source)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from freqlens.attribution import RISE, FORGrad, Saliency, SmoothGrad, forgrad_filter
from freqlens.spectral import lowpass_mask, nyquist_sigma

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
    assert torch.equal(FORGrad(Saliency(smooth_cnn), sigma, shape, mode="signed")(images, target), base)
    # magnitude: no low-pass either, the map is exactly |channel mean| (one map per image)
    magnitude = FORGrad(Saliency(smooth_cnn), sigma, shape)(images, target)
    assert torch.equal(magnitude, base.mean(dim=1, keepdim=True).abs())


def test_just_below_nyquist_filters(smooth_cnn, images):
    target = torch.tensor([0, 1, 2, 3])
    base = Saliency(smooth_cnn)(images, target)
    assert not torch.allclose(FORGrad(Saliency(smooth_cnn), 7, mode="signed")(images, target), base)
    reduced = base.mean(dim=1, keepdim=True).abs()
    assert not torch.allclose(FORGrad(Saliency(smooth_cnn), 7)(images, target), reduced)


def test_small_sigma_removes_a_checkerboard():
    h = w = 16
    i, j = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij")
    smooth = torch.cos(2 * math.pi * i / h) + 0.5 * torch.sin(2 * math.pi * 2 * j / w)  # ≤ 2 cycles
    checker = (-1.0) ** (i + j)
    maps = (smooth + 0.8 * checker).to(torch.float64).expand(2, 3, h, w).clone()
    filtered = FORGrad(FixedMaps(maps), sigma=2, mode="signed")(torch.rand(2, 3, h, w), 0)
    torch.testing.assert_close(filtered, smooth.to(torch.float64).expand(2, 3, h, w), rtol=0, atol=1e-12)
    # σ = 1 also drops the 2-cycle sine but keeps the 1-cycle cosine
    filtered = FORGrad(FixedMaps(maps), sigma=1, mode="signed")(torch.rand(2, 3, h, w), 0)
    expected = torch.cos(2 * math.pi * i / h).to(torch.float64).expand(2, 3, h, w)
    torch.testing.assert_close(filtered, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize(("size", "sigma"), [((16, 16), 3), ((15, 12), 4.5), ((9, 9), 0)])
def test_matches_independent_numpy_filter(size, sigma):
    maps = torch.randn(2, 3, *size, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    filtered = FORGrad(FixedMaps(maps), sigma, mode="signed")(torch.rand(2, 3, *size), 0)
    np.testing.assert_allclose(filtered.numpy(), _numpy_box_lowpass(maps.numpy(), sigma), atol=1e-12)
    # magnitude with the paper's box: |box(|mean_c φ|)| (the same filter, the published pipeline)
    magnitude = FORGrad(FixedMaps(maps), sigma)(torch.rand(2, 3, *size), 0)
    expected = np.abs(_numpy_box_lowpass(np.abs(maps.numpy().mean(axis=1, keepdims=True)), sigma))
    np.testing.assert_allclose(magnitude.numpy(), expected, atol=1e-12)


def test_filtering_is_signed_and_per_channel():
    maps = torch.zeros(1, 3, 8, 8, dtype=torch.float64)
    maps[0, 1] = -2.0  # a constant negative map on one channel only: pure DC, kept as is
    filtered = FORGrad(FixedMaps(maps), sigma=0, mode="signed")(torch.rand(1, 3, 8, 8), 0)
    torch.testing.assert_close(filtered, maps)


def test_follows_wrapped_explainer(smooth_cnn):
    saliency = Saliency(smooth_cnn)
    forgrad = FORGrad(saliency, 3.0, shape="disk")
    assert forgrad.explainer is saliency and forgrad.sigma == 3.0 and forgrad.shape == "disk"
    assert forgrad.mode == "magnitude"  # the published pipeline is the default
    assert forgrad.model is smooth_cnn and not forgrad.per_channel and not forgrad.stochastic
    signed = FORGrad(saliency, 3.0, mode="signed")
    assert signed.per_channel and signed.family == "gradient"
    rise = FORGrad(RISE(smooth_cnn, n_masks=8, progress=False), 2, mode="signed")
    assert not rise.per_channel and rise.family == "black-box" and rise.stochastic
    assert "FORGrad" in repr(forgrad) and "mode='magnitude'" in repr(forgrad)


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


def test_bad_mode_and_reduction(smooth_cnn):
    with pytest.raises(ValueError, match="unknown FORGrad mode"):
        FORGrad(Saliency(smooth_cnn), 2, mode="absolute")
    with pytest.raises(ValueError, match="channel reduction"):
        FORGrad(Saliency(smooth_cnn), 2, channel_reduction="median")
    with pytest.raises(ValueError, match="unknown FORGrad mode"):
        forgrad_filter(torch.zeros(1, 1, 4, 4), 1.0, mode="abs")
    with pytest.raises(ValueError, match="B×C×H×W"):
        forgrad_filter(torch.zeros(4, 4), 1.0)


def test_rejects_non_explainer():
    with pytest.raises(TypeError, match="attribute"):
        FORGrad(object(), 2)


# --- the magnitude pipeline on maps with a known spectrum -------------------------------------------------

def _grid(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.meshgrid(torch.arange(n, dtype=torch.float64), torch.arange(n, dtype=torch.float64), indexing="ij")


def _blob(n: int = 16) -> torch.Tensor:
    """A smooth positive blob centred at (5, 9): a product of raised cosines, frequencies |k| ≤ 1 only."""
    i, j = _grid(n)
    return 0.2 + (1 + torch.cos(2 * math.pi * (i - 5) / n)) * (1 + torch.cos(2 * math.pi * (j - 9) / n))


def _sinusoid(n: int = 16, k: int = 6) -> torch.Tensor:
    """A high-frequency sinusoid (frequencies (±k, ±k)), amplitude 0.15 < the blob's minimum 0.2."""
    i, j = _grid(n)
    return 0.15 * torch.cos(2 * math.pi * k * i / n) * torch.cos(2 * math.pi * k * j / n)


def test_magnitude_keeps_the_blob_and_removes_the_sinusoid():
    blob, wave = _blob(), _sinusoid()
    # three signed channels whose mean is blob + wave; the ±d parts cancel in the channel mean only
    d = 3.0 * torch.randn(16, 16, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    maps = torch.stack([blob + wave, blob + wave + d, blob + wave - d])[None]
    for sigma in (1, 3, 5):  # the blob lives at |k| ≤ 1, the sinusoid at |k| = 6
        out = FORGrad(FixedMaps(maps), sigma)(torch.rand(1, 3, 16, 16), 0)
        assert out.shape == (1, 1, 16, 16)
        torch.testing.assert_close(out[0, 0], blob, rtol=0, atol=1e-12)
    # above the sinusoid's frequency nothing is removed: |mean_c φ| = blob + wave
    kept = FORGrad(FixedMaps(maps), 6)(torch.rand(1, 3, 16, 16), 0)
    torch.testing.assert_close(kept[0, 0], blob + wave, rtol=0, atol=1e-12)
    # abs before the FFT: the sign of the map does not matter in magnitude mode, it does in signed mode
    negated = FORGrad(FixedMaps(-maps), 3)(torch.rand(1, 3, 16, 16), 0)
    torch.testing.assert_close(negated[0, 0], blob, rtol=0, atol=1e-12)
    signed = FORGrad(FixedMaps(-maps), 3, mode="signed")(torch.rand(1, 3, 16, 16), 0)
    torch.testing.assert_close(signed[0, 0], -blob, rtol=0, atol=1e-12)


def test_magnitude_takes_the_absolute_value_before_the_filter():
    """A zero-mean sinusoid: the signed DC is 0, the magnitude DC is mean |sinusoid| > 0."""
    wave = _sinusoid()[None, None]
    magnitude = FORGrad(FixedMaps(wave), 0)(torch.rand(1, 1, 16, 16), 0)  # σ = 0 keeps the DC only
    torch.testing.assert_close(magnitude, wave.abs().mean().expand(1, 1, 16, 16), rtol=0, atol=1e-12)
    assert float(wave.abs().mean()) > 0.05
    signed = FORGrad(FixedMaps(wave), 0, mode="signed")(torch.rand(1, 1, 16, 16), 0)
    torch.testing.assert_close(signed, torch.zeros_like(wave), rtol=0, atol=1e-12)


@pytest.mark.parametrize("shape", ["box", "disk", "gaussian"])
def test_signed_and_magnitude_agree_for_non_negative_maps(shape):
    generator = torch.Generator().manual_seed(4)
    single = torch.rand(3, 1, 12, 12, generator=generator, dtype=torch.float64)  # non-negative, one channel
    for sigma in (0.0, 1.5, 3.0, 100.0):
        magnitude = forgrad_filter(single, sigma, shape, "magnitude")
        signed = forgrad_filter(single, sigma, shape, "signed")
        torch.testing.assert_close(magnitude, signed.abs(), rtol=0, atol=1e-12)
    # several non-negative channels: the same up to the channel reduction (the filter is linear)
    multi = torch.rand(3, 4, 12, 12, generator=generator, dtype=torch.float64)
    magnitude = forgrad_filter(multi, 2.0, shape, "magnitude")
    signed = forgrad_filter(multi, 2.0, shape, "signed")
    torch.testing.assert_close(magnitude, signed.mean(dim=1, keepdim=True).abs(), rtol=0, atol=1e-12)


@pytest.mark.parametrize(("size", "shape"), [((16, 16), "box"), ((15, 12), "box"), ((9, 9), "disk"),
                                             ((16, 16), "gaussian")])
@pytest.mark.parametrize("reduction", ["mean", "sum", "max_abs"])
def test_magnitude_at_or_above_nyquist_is_the_reduced_map_exactly(size, shape, reduction):
    maps = torch.randn(2, 3, *size, generator=torch.Generator().manual_seed(2))
    expected = {"mean": maps.mean(dim=1), "sum": maps.sum(dim=1), "max_abs": maps.abs().amax(dim=1)}[reduction]
    for sigma in (nyquist_sigma(*size, shape), math.inf):
        out = forgrad_filter(maps, sigma, shape, "magnitude", channel_reduction=reduction)
        assert torch.equal(out, expected.abs().unsqueeze(1))


# --- cross-check against Xplique's forgrad (the seed authors' implementation) ----------------------------
# Re-implemented in numpy from xplique/commons/forgrad.py (deel-ai/xplique, added by the seed's first
# author in July 2023); TensorFlow ops replaced by their numpy equivalents (tf.signal.fftshift ==
# np.fft.fftshift, rfft2d/irfft2d == np.fft.rfft2/irfft2 over the last two axes). Channels last.

def _xplique_mask(size: int, bandwidth: float) -> np.ndarray:
    center = (int(size / 2), int(size / 2))
    y_grid, x_grid = np.ogrid[:size, :size]
    dist_from_center = np.sqrt((x_grid - center[0]) ** 2 + (y_grid - center[1]) ** 2)
    mask = dist_from_center <= bandwidth
    mask = np.fft.fftshift(mask)  # "un-center the mask"
    return mask.astype(np.float64)[:, : size // 2 + 1]  # the unique components of a real signal's rfft


def _xplique_forgrad(explanations: np.ndarray, sigma: float) -> np.ndarray:
    """Xplique's ``forgrad`` for square maps ``(B, H, W)`` or ``(B, H, W, C)`` (even sizes: no resize)."""
    image_size = explanations.shape[1]
    assert image_size == explanations.shape[2] and 0 < sigma <= image_size and image_size % 2 == 0
    if explanations.ndim == 4:
        explanations = explanations.mean(axis=-1)
    explanations = np.abs(explanations)
    spectrums = np.fft.rfft2(explanations)
    filtered = np.fft.irfft2(spectrums * _xplique_mask(explanations.shape[1], sigma))
    return np.abs(filtered)


@pytest.mark.parametrize("size", [16, 28, 32])
@pytest.mark.parametrize("sigma", [1, 2.5, 5, 11, 15])
@pytest.mark.parametrize("channels", [None, 1, 3])
def test_matches_xplique_forgrad_with_the_disk_mask(size, sigma, channels):
    generator = torch.Generator().manual_seed(size + channels if channels else size)
    shape = (2, size, size) if channels is None else (2, size, size, channels)
    channels_last = torch.randn(*shape, generator=generator, dtype=torch.float64)
    expected = _xplique_forgrad(channels_last.numpy(), sigma)  # (B, H, W)
    ours_input = channels_last.unsqueeze(1) if channels is None else channels_last.permute(0, 3, 1, 2)
    ours = FORGrad(FixedMaps(ours_input), sigma, shape="disk")(torch.rand(2, 1, size, size), 0)
    assert ours.shape == (2, 1, size, size)
    np.testing.assert_allclose(ours[:, 0].numpy(), expected, rtol=0, atol=1e-5)
    # float32 maps (Xplique computes in float32) agree as well
    ours32 = forgrad_filter(ours_input.float(), sigma, "disk")
    np.testing.assert_allclose(ours32[:, 0].numpy(), expected, rtol=0, atol=1e-5)


def test_xplique_saliency_reducer_is_reproduced_with_max_abs():
    """Xplique's Saliency reduces channels by max |∇| before forgrad (whose mean over one channel is then a no-op)."""
    grads = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    xplique_saliency = grads.abs().amax(dim=1).unsqueeze(-1).numpy()  # (B, H, W, 1)
    expected = _xplique_forgrad(xplique_saliency, 4)
    ours = FORGrad(FixedMaps(grads), 4, shape="disk", channel_reduction="max_abs")(torch.rand(2, 3, 16, 16), 0)
    np.testing.assert_allclose(ours[:, 0].numpy(), expected, rtol=0, atol=1e-5)


def test_default_box_mask_differs_from_xplique_disk():
    """Deliberate: the default mask is the paper's box K^σ (seed 001, §3.4), not Xplique's disk; the box at σ
    keeps the corner frequencies (|i|, |j| ≤ σ with i² + j² > σ²) that the disk drops."""
    maps = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    xplique = _xplique_forgrad(maps.permute(0, 2, 3, 1).numpy(), 3)
    box = FORGrad(FixedMaps(maps), 3)(torch.rand(2, 3, 16, 16), 0)[:, 0].numpy()
    assert np.abs(box - xplique).max() > 1e-2
    paper = np.abs(_numpy_box_lowpass(np.abs(maps.numpy().mean(axis=1)), 3))
    np.testing.assert_allclose(box, paper, rtol=0, atol=1e-12)


def test_xplique_odd_size_mask_is_not_copied():
    """Deliberate: for odd sizes Xplique un-centres its mask with fftshift (not ifftshift), so the disk sits on
    frequency −1: σ < 1 drops the DC and the mask is not Hermitian; its irfft2d also returns N − 1 columns
    (then resized). freqlens centres the mask on the DC for every size and keeps N×N."""
    n = 9
    full = _xplique_mask_full(n, 0.5)
    assert full[0, 0] == 0 and full[-1, -1] == 1  # DC dropped, frequency (−1, −1) kept
    ours = torch.fft.ifftshift(lowpass_mask(n, n, 0.5, "disk"), dim=(-2, -1))
    assert float(ours[0, 0]) == 1.0 and float(ours.sum()) == 1.0  # only the DC
    for sigma in (0.5, 2.0):  # not Hermitian: mask[k] != mask[−k], so a real map would not stay real
        mask = _xplique_mask_full(n, sigma)
        assert not np.array_equal(mask, np.roll(mask[::-1, ::-1], 1, axis=(0, 1)))
    assert np.fft.irfft2(np.fft.rfft2(np.ones((n, n)))).shape == (n, n - 1)  # Xplique's cut-off pixel
    maps = torch.randn(1, 1, n, n, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    out = forgrad_filter(maps, 0.5, "disk")  # the DC alone: the mean of |φ| everywhere, N×N
    torch.testing.assert_close(out, maps.abs().mean().expand(1, 1, n, n), rtol=0, atol=1e-12)


def _xplique_mask_full(size: int, bandwidth: float) -> np.ndarray:
    """Xplique's mask before the rfft slice (all ``size`` columns)."""
    center = (int(size / 2), int(size / 2))
    y_grid, x_grid = np.ogrid[:size, :size]
    return np.fft.fftshift(np.sqrt((x_grid - center[0]) ** 2 + (y_grid - center[1]) ** 2) <= bandwidth).astype(float)


def test_forgrad_of_a_real_explainer_is_one_map_per_image(smooth_cnn, images):
    target = torch.tensor([0, 1, 2, 3])
    out = FORGrad(Saliency(smooth_cnn), 3)(images, target)
    assert out.shape == (4, 1, 16, 16) and bool((out >= 0).all())
    base = Saliency(smooth_cnn)(images, target)
    torch.testing.assert_close(out, forgrad_filter(base, 3, "box", "magnitude"))


def test_auto_sigma_filters_each_map_at_its_noise_floor_band(smooth_cnn, images):
    """sigma="auto": per image the noise-floor σ of the map the pipeline filters (no model call beyond
    the explainer's own), maps equal to forgrad_filter at those σ one by one, σ recorded."""
    from freqlens.attribution import Saliency, auto_sigma, count_passes

    for mode in ("magnitude", "signed"):
        explainer = FORGrad(Saliency(smooth_cnn), "auto", mode=mode)
        with count_passes(smooth_cnn) as auto_count:
            maps = explainer(images)
        with count_passes(smooth_cnn) as plain_count:
            raw = Saliency(smooth_cnn)(images)
        assert (auto_count.forward, auto_count.backward) == (plain_count.forward, plain_count.backward)
        sigmas = auto_sigma(raw, "box", mode)
        torch.testing.assert_close(explainer.last_sigma, sigmas)
        for index, sigma in enumerate(sigmas.tolist()):
            torch.testing.assert_close(maps[index:index + 1], forgrad_filter(raw[index:index + 1], sigma, "box", mode))
    assert "sigma='auto'" in repr(explainer)
    with pytest.raises(ValueError, match="'auto'"):
        FORGrad(Saliency(smooth_cnn), "often")
    with pytest.raises(ValueError, match="'auto'"):
        forgrad_filter(raw, "often")
