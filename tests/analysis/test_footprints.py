"""Tests for freqlens.analysis.footprints (seed 001, Figs. 2–3)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from freqlens.analysis.footprints import HF_MEASURES, Footprints, method_footprints
from freqlens.attribution.base import Explainer
from freqlens.report.figures import save_footprint_figures

SIZE = 16
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class FixedMap(Explainer):
    """Returns the same ``1×H×W`` pattern for every image (plus a tiny per-image offset)."""

    per_channel = False

    def __init__(self, model: nn.Module, pattern: torch.Tensor, name: str, family: str) -> None:
        super().__init__(model)
        self.pattern, self.name, self.family = pattern, name, family

    def attribute(self, inputs, target=None):
        scale = torch.arange(1, inputs.shape[0] + 1, dtype=inputs.dtype)[:, None, None, None]
        return self.pattern.expand(inputs.shape[0], 1, *self.pattern.shape) * scale


def _blob(size: int = SIZE) -> torch.Tensor:
    coords = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    return torch.exp(-(coords[:, None] ** 2 + coords[None, :] ** 2) / (2 * 3.0**2))


def _checkerboard(size: int = SIZE) -> torch.Tensor:
    index = torch.arange(size)
    return ((index[:, None] + index[None, :]) % 2).float() * 2 - 1


def _noise(size: int = SIZE) -> torch.Tensor:
    return torch.rand(size, size, generator=torch.Generator().manual_seed(2))


def _cnn(classes: int = 3) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
                         nn.Linear(16, classes))


@pytest.fixture
def model() -> nn.Module:
    return _cnn()


@pytest.fixture
def images() -> torch.Tensor:
    return torch.rand(3, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))


@pytest.fixture
def smooth_vs_checker(model, images) -> Footprints:
    methods = [FixedMap(model, _blob(), "blob", "black-box"), FixedMap(model, _checkerboard(), "checker", "gradient"),
               FixedMap(model, _noise(), "noise", "cam")]
    return method_footprints(model, images, methods=methods, progress=False)


def test_shapes_names_and_families(smooth_vs_checker: Footprints) -> None:
    fp = smooth_vs_checker
    assert fp.methods == ["blob", "checker", "noise"]
    assert fp.families == ["black-box", "gradient", "cam"]
    assert fp.is_gradient == [False, True, False]
    assert fp.log_spectra.shape == (3, SIZE, SIZE)
    radius = round(math.hypot(SIZE // 2, SIZE // 2)) + 1
    assert fp.radial.shape == (3, radius)
    assert set(fp.measures) == set(HF_MEASURES)
    for values in fp.measures.values():
        assert values.shape == (3, 3)


def test_checkerboard_has_more_high_frequency_than_blob(smooth_vs_checker: Footprints) -> None:
    fp = smooth_vs_checker
    for measure in HF_MEASURES:
        blob, checker, noise = fp.measures[measure]
        assert bool((noise > blob).all()), measure
        # PNG's predictors compress a perfectly periodic checkerboard to almost nothing, so the
        # compression proxy is only compared on noise; the spectral measures see the checkerboard
        if measure != "compression_ratio":
            assert bool((checker > blob).all()), measure
    # the checkerboard's whole power sits at the (Nyquist, Nyquist) corner: radius 8·√2 ≈ 11
    blob_profile, checker_profile, _ = fp.radial
    assert int(checker_profile.argmax()) == round(math.hypot(SIZE // 2, SIZE // 2))
    assert int(blob_profile.argmax()) == 0
    half = fp.radial.shape[1] // 2
    assert checker_profile[half:].sum() > blob_profile[half:].sum()


def test_mean_log_spectrum_matches_numpy(smooth_vs_checker: Footprints) -> None:
    # unit-RMS normalisation makes the per-image scaling irrelevant: the mean equals one image's spectrum
    blob = _blob().double().numpy()
    blob = blob / np.sqrt((blob**2).mean())
    expected = np.log1p(np.abs(np.fft.fftshift(np.fft.fft2(blob))) ** 2)
    np.testing.assert_allclose(smooth_vs_checker.log_spectra[0].numpy(), expected, rtol=1e-4, atol=1e-4)
    # radial profile is of the normalised power: its ring means weighted by ring counts sum to 1
    power = np.abs(np.fft.fftshift(np.fft.fft2(blob))) ** 2
    di = np.arange(SIZE) - SIZE // 2
    rings = np.round(np.hypot(di[:, None], di[None, :])).astype(int)
    counts = np.bincount(rings.ravel())
    np.testing.assert_allclose((smooth_vs_checker.radial[0].numpy() * counts).sum(), 1.0, rtol=1e-5)
    np.testing.assert_allclose(smooth_vs_checker.radial[0].numpy(),
                               np.bincount(rings.ravel(), power.ravel()) / counts / power.sum(), rtol=1e-4, atol=1e-10)


def test_to_dict_is_json_able(smooth_vs_checker: Footprints) -> None:
    summary = json.loads(json.dumps(smooth_vs_checker.to_dict(), allow_nan=False))
    assert summary["methods"]["checker"]["family"] == "gradient"
    assert summary["methods"]["blob"]["gradient_based"] is False
    expected = float(smooth_vs_checker.measures["laplacian_energy"][1].mean())
    assert summary["methods"]["checker"]["laplacian_energy"]["mean"] == pytest.approx(expected)
    assert summary["n_images"] == 3 and summary["size"] == [SIZE, SIZE]


def test_figures_written(smooth_vs_checker: Footprints, tmp_path) -> None:
    paths = save_footprint_figures(smooth_vs_checker, tmp_path / "figs")
    assert sorted(p.name for p in paths) == ["footprints_hf.png", "footprints_radial.png", "footprints_spectra.png"]
    for path in paths:
        assert path.read_bytes()[:8] == PNG_MAGIC
    assert not [p for p in (tmp_path / "figs").iterdir() if not p.name.endswith(".png")]  # no temp files left


def test_real_methods_on_small_cnn(model, images) -> None:
    fp = method_footprints(model, images, methods=("saliency", "occlusion"), batch_size=8, progress=False,
                           generator=torch.Generator().manual_seed(0))
    assert fp.methods == ["saliency", "occlusion"]
    assert fp.families == ["gradient", "black-box"]
    assert bool(torch.isfinite(fp.log_spectra).all()) and bool(torch.isfinite(fp.radial).all())
    for values in fp.measures.values():
        assert values.shape == (2, 3) and bool(torch.isfinite(values).all())


def test_duplicate_names_are_suffixed(model, images) -> None:
    methods = [FixedMap(model, _blob(), "same", "gradient"), FixedMap(model, _blob(), "same", "gradient")]
    assert method_footprints(model, images, methods=methods, progress=False).methods == ["same", "same_2"]


@pytest.mark.parametrize("methods, error", [(("nope",), ValueError), ((), ValueError), ((3,), TypeError)])
def test_bad_methods(model, images, methods, error) -> None:
    with pytest.raises(error):
        method_footprints(model, images, methods=methods, progress=False)


def test_bad_maps_and_inputs(model, images) -> None:
    wrong = FixedMap(model, torch.ones(SIZE - 1, SIZE), "wrong", "gradient")
    with pytest.raises(ValueError, match="shape"):
        method_footprints(model, images, methods=[wrong], progress=False)
    with pytest.raises(ValueError):
        method_footprints(model, images[0], methods=["saliency"], progress=False)
    with pytest.raises(ValueError):
        method_footprints(model, images, methods=["saliency"], hf_cutoff=-1.0, progress=False)


def test_footprints_do_not_depend_on_batch_size(model, images) -> None:
    def run(batch_size):
        return method_footprints(model, images, methods=("saliency", "rise"), batch_size=batch_size, progress=False,
                                 generator=torch.Generator().manual_seed(3))

    small, whole = run(1), run(None)
    torch.testing.assert_close(small.log_spectra, whole.log_spectra, rtol=1e-5, atol=1e-6)
    for name in whole.measures:
        torch.testing.assert_close(small.measures[name], whole.measures[name], rtol=1e-5, atol=1e-6)
