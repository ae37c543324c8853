"""``freqlens.report.overlay``: an attribution map blended over its image (notebooks)."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest
import torch

from freqlens.attribution import reduce_channels
from freqlens.report import overlay
from freqlens.report.figures import MAGNITUDE_CMAP, SIGNED_CMAP


@pytest.fixture
def image():
    return torch.rand(3, 12, 10, generator=torch.Generator().manual_seed(0))


def _colour(cmap: str, value: float) -> np.ndarray:
    return np.asarray(matplotlib.colormaps[cmap](value)[:3])


def test_shape_range_and_layouts(image):
    attribution = torch.randn(3, 12, 10, generator=torch.Generator().manual_seed(1))
    result = overlay(image, attribution)
    assert isinstance(result, np.ndarray) and result.shape == (12, 10, 3) and result.dtype == np.float64
    assert result.min() >= 0 and result.max() <= 1
    # H×W×C arrays, a batch of one and an H×W map reduced beforehand give the same picture
    reduced = reduce_channels(attribution[None], "sum")[0]
    np.testing.assert_allclose(overlay(image.permute(1, 2, 0).numpy(), reduced.numpy()), result)
    np.testing.assert_allclose(overlay(image[None], attribution[None]), result)
    gray = overlay(image[0], reduced, alpha=0)  # an H×W gray image is replicated to RGB
    np.testing.assert_allclose(gray, image[0, :, :, None].expand(-1, -1, 3).double().numpy())


def test_alpha_zero_returns_the_image_and_one_the_map(image):
    attribution = torch.randn(12, 10)
    np.testing.assert_allclose(overlay(image, attribution, alpha=0.0), image.permute(1, 2, 0).double().numpy())
    top = overlay(image, attribution, alpha=1.0, clip_percentile=None)
    np.testing.assert_allclose(top[np.unravel_index(int(attribution.abs().argmax()), (12, 10))],
                               _colour(MAGNITUDE_CMAP, 1.0))


@pytest.mark.parametrize("percentile", [90.0, 75.0])
def test_percentile_clipping_saturates_the_top_pixels(image, percentile):
    values = torch.randperm(120, generator=torch.Generator().manual_seed(2)).float().reshape(12, 10) + 1
    result = overlay(image, values, alpha=1.0, clip_percentile=percentile)
    saturated = np.isclose(result, _colour(MAGNITUDE_CMAP, 1.0)).all(axis=-1).sum()
    expected = 120 * (100 - percentile) / 100
    assert abs(saturated - expected) <= 1
    # without clipping only the largest value reaches the end of the colour map
    unclipped = overlay(image, values, alpha=1.0, clip_percentile=None)
    assert np.isclose(unclipped, _colour(MAGNITUDE_CMAP, 1.0)).all(axis=-1).sum() == 1


def test_signed_uses_a_diverging_map_centred_at_zero(image):
    values = torch.zeros(12, 10)
    values[0, 0], values[0, 1] = 1.0, -1.0
    result = overlay(image, values, alpha=1.0, signed=True, clip_percentile=None)
    np.testing.assert_allclose(result[0, 0], _colour(SIGNED_CMAP, 1.0))
    np.testing.assert_allclose(result[0, 1], _colour(SIGNED_CMAP, 0.0))
    np.testing.assert_allclose(result[5, 5], _colour(SIGNED_CMAP, 0.5))
    custom = overlay(image, values, alpha=1.0, cmap="jet", clip_percentile=None)
    np.testing.assert_allclose(custom[0, 0], _colour("jet", 1.0))


@pytest.mark.parametrize("constant", [0.0, 3.0])
@pytest.mark.parametrize("signed", [False, True])
def test_a_constant_map_does_not_crash(image, constant, signed):
    result = overlay(image, torch.full((12, 10), constant), signed=signed)
    assert np.isfinite(result).all() and result.min() >= 0 and result.max() <= 1
    colours = overlay(image, torch.full((12, 10), constant), signed=signed, alpha=1.0)
    value = (0.5 if signed else 0.0) if constant == 0 else 1.0  # zero: the map's zero; else saturated
    np.testing.assert_allclose(colours, np.broadcast_to(_colour(SIGNED_CMAP if signed else MAGNITUDE_CMAP, value),
                                                        colours.shape))


def test_draws_into_an_axis(image):
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    try:
        result = overlay(image, torch.randn(12, 10), ax=ax)
        assert len(ax.images) == 1
        np.testing.assert_allclose(ax.images[0].get_array(), result)
    finally:
        plt.close(fig)


def test_bad_arguments(image):
    with pytest.raises(ValueError, match="alpha"):
        overlay(image, torch.zeros(12, 10), alpha=1.5)
    with pytest.raises(ValueError, match="clip_percentile"):
        overlay(image, torch.zeros(12, 10), clip_percentile=0)
    with pytest.raises(ValueError, match="size"):
        overlay(image, torch.zeros(8, 8))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        overlay(image * 255, torch.zeros(12, 10))
    with pytest.raises(ValueError, match="shape"):
        overlay(torch.rand(5, 12, 10), torch.zeros(12, 10))
