"""Method settings by name (``make_explainer(..., settings=...)``, the ``--method-args`` of the commands),
defaults that follow the image size (closed forms at 32 and 224 px) and the planned passes, which equal
the passes :func:`count_passes` counts."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor, nn

from freqlens.attribution import (
    RISE,
    HSICAttribution,
    IntegratedGradients,
    Occlusion,
    PassCount,
    Saliency,
    SmoothGrad,
    SobolAttribution,
    count_passes,
)
from freqlens.attribution.base import planned_passes
from freqlens.attribution.hsic import hsic_designs
from freqlens.attribution.occlusion import count_for_size, occlusion_window
from freqlens.attribution.registry import METHOD_NAMES, make_explainer, method_settings, split_settings
from freqlens.attribution.rise import rise_masks
from freqlens.errors import FreqlensError
from freqlens.utils.keyvalue import parse_key_values

from .conftest import seeded


class TinyConvNet(nn.Module):
    """A cheap CNN for any size: strided conv, ReLU, global average pool, linear."""

    def __init__(self, classes: int = 4) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.features = nn.Sequential(nn.Conv2d(3, 4, 3, stride=2, padding=1), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4, classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.pool(self.features(x)).flatten(1))


def _images(size: int, batch: int = 2) -> Tensor:
    return torch.rand(batch, 3, size, size, generator=seeded(1))


# ------------------------------------------------------------------------------------ scaled defaults
def test_occlusion_window_closed_form_at_32_and_224_px():
    for size in (7, 28, 32, 33, 64, 100, 224, 225):
        patch = max(1, math.floor(size / 8 + 0.5))
        assert occlusion_window(size) == (patch, max(1, patch // 2))
    assert occlusion_window(32) == (4, 2)  # the previous fixed default
    assert occlusion_window(28) == (4, 2)
    assert occlusion_window(224) == (28, 14)
    model = TinyConvNet()
    assert Occlusion(model).window(32, 32) == ((4, 4), (2, 2))
    assert Occlusion(model).window(224, 160) == ((28, 20), (14, 10))
    # a given patch keeps a half stride, a given stride a size-dependent patch
    assert Occlusion(model, patch=6).window(224, 224) == ((6, 6), (3, 3))
    assert Occlusion(model, stride=7).window(224, 224) == ((28, 28), (7, 7))
    with pytest.raises(ValueError, match="larger than the patch"):
        Occlusion(model, stride=8).window(32, 32)
    # 15 positions per side: 1 + 15² forwards at 32 and at 224 px (12,322 at 224 px before)
    assert Occlusion(model).planned_passes(32, 32) == PassCount(forward=226, backward=0)
    assert Occlusion(model).planned_passes(224, 224) == PassCount(forward=226, backward=0)
    assert Occlusion(model).planned_passes(28, 28) == PassCount(forward=1 + 13 * 13, backward=0)
    assert Occlusion(model, patch=4, stride=2).planned_passes(224, 224).forward == 1 + 111 * 111


def test_sample_counts_closed_form_at_32_and_224_px():
    for height, width in ((28, 28), (32, 32), (48, 40), (64, 64), (128, 128), (224, 224)):
        area = height * width
        assert rise_masks(height, width) == min(8000, max(500, math.floor(8000 * 1024 / area + 0.5)))
        assert hsic_designs(height, width) == min(2000, max(500, math.floor(2000 * 1024 / area + 0.5)))
        assert count_for_size(100, height, width, 7) == min(100, max(7, math.floor(100 * 1024 / area + 0.5)))
    assert (rise_masks(32, 32), rise_masks(64, 64), rise_masks(224, 224)) == (8000, 2000, 500)
    assert (hsic_designs(32, 32), hsic_designs(224, 224)) == (2000, 500)
    model = TinyConvNet()
    assert RISE(model).planned_passes(224, 224) == PassCount(forward=500, backward=0)
    assert RISE(model).planned_passes(32, 32).forward == 8000
    assert RISE(model, n_masks=40).planned_passes(224, 224).forward == 40
    assert HSICAttribution(model).planned_passes(224, 224).forward == 500
    assert HSICAttribution(model).planned_passes(32, 32).forward == 2000
    # Sobol's cost is N·(grid² + 2) at every size: its estimator needs the d + 2 design blocks
    for size in (32, 224):
        assert SobolAttribution(model).planned_passes(size, size).forward == 32 * (64 + 2)


def test_scaled_defaults_are_what_runs_at_224_px():
    model = TinyConvNet().eval()
    x = _images(224, batch=1)
    target = torch.tensor([1])
    for explainer in (Occlusion(model), RISE(model, generator=seeded()), HSICAttribution(model, generator=seeded())):
        with count_passes(model) as count:
            maps = explainer(x, target)
        assert maps.shape == (1, 1, 224, 224) and bool(torch.isfinite(maps).all())
        plan = explainer.planned_passes(224, 224)
        assert (count.forward, count.backward) == (plan.forward, plan.backward) == (plan.forward, 0)
        assert plan.forward <= 500
    assert RISE(model).masks_for_size(224, 224) == 500


@pytest.mark.parametrize("name", METHOD_NAMES)
def test_planned_passes_equal_the_counted_ones(name):
    model = TinyConvNet().eval()
    x = _images(32)
    target = torch.tensor([0, 3])
    explainer = make_explainer(name, model, generator=seeded())
    plan = planned_passes(explainer, 32, 32)
    with count_passes(model) as count:
        explainer(x, target)
    assert plan is not None
    assert (count.forward, count.backward) == (2 * plan.forward, 2 * plan.backward)


def test_black_box_methods_predict_the_target_only_when_not_given():
    model = TinyConvNet().eval()
    x = _images(16)
    for explainer in (RISE(model, n_masks=12, generator=seeded()), SobolAttribution(model, grid=2, nb_design=4),
                      HSICAttribution(model, grid=2, nb_design=10), Occlusion(model)):
        plan = explainer.planned_passes(16, 16)
        with count_passes(model) as given:
            maps = explainer(x, torch.tensor([0, 1]))
        with count_passes(model) as predicted:
            explainer(x)
        assert given.forward == 2 * plan.forward
        assert predicted.forward == given.forward + (2 if not isinstance(explainer, Occlusion) else 0)
        assert bool(torch.isfinite(maps).all())
    with pytest.raises(ValueError, match="out of range"):
        RISE(model, n_masks=3)(x, torch.tensor([0, 9]))


def test_noise_tunnel_plans_n_times_the_wrapped_passes():
    model = TinyConvNet()
    assert SmoothGrad(Saliency(model), n=7).planned_passes(32, 32) == PassCount(forward=7, backward=7)
    assert SmoothGrad(Occlusion(model), n=3).planned_passes(32, 32) == PassCount(forward=3 * 226, backward=0)
    assert planned_passes(object(), 32, 32) is None
    assert IntegratedGradients(model, steps=9).planned_passes(224, 224) == PassCount(forward=9, backward=9)


# ------------------------------------------------------------------------------------ settings by name
def test_settings_reach_the_explainer():
    model = TinyConvNet().eval()
    x = _images(32)
    target = torch.tensor([1, 2])
    built = make_explainer("occlusion", model, settings={"patch": 8, "stride": 4})
    torch.testing.assert_close(built(x, target), Occlusion(model, patch=8, stride=4)(x, target))
    assert built.planned_passes(32, 32).forward == 1 + 7 * 7
    ig = make_explainer("ig", model, settings={"steps": 7, "method": "riemann_middle"})
    torch.testing.assert_close(ig(x, target), IntegratedGradients(model, steps=7, method="riemann_middle")(x, target))
    rise = make_explainer("rise", model, generator=seeded(4), settings={"n_masks": 30, "grid": 4})
    torch.testing.assert_close(rise(x, target), RISE(model, n_masks=30, grid=4, generator=seeded(4))(x, target))
    # a noise tunnel: its own settings and those of the explainer it wraps
    smooth = make_explainer("smoothgrad", model, generator=seeded(2), settings={"n": 3, "noise_level": 0.3,
                                                                                "abs": True})
    expected = SmoothGrad(Saliency(model, abs=True), n=3, noise_level=0.3, generator=seeded(2))(x, target)
    torch.testing.assert_close(smooth(x, target), expected)
    assert smooth.n == 3 and smooth.explainer.abs
    cam = make_explainer("gradcam", model, settings={"layer": "features.0"})
    assert cam.layer is model.features[0]


def test_settings_are_read_from_the_constructors():
    assert list(method_settings("occlusion")) == ["patch", "stride", "baseline", "score"]
    assert method_settings("integrated_gradients")["steps"] == 50  # the registry's default
    assert method_settings("rise")["n_masks"] is None  # chosen from the input size
    assert {"n", "noise_level", "sigma", "abs", "score"} <= set(method_settings("smoothgrad"))
    assert "unbiased" in method_settings("vargrad")
    assert method_settings("gradcam") == {"layer": None}
    for name in METHOD_NAMES:  # what the caller supplies is never a setting
        assert not {"model", "batch_size", "generator", "progress", "explainer"} & set(method_settings(name))


def test_unknown_or_bad_settings_raise_clearly():
    model = TinyConvNet()
    with pytest.raises(ValueError, match=r"occlusion does not take the setting 'n_masks'; its settings: patch, "
                                         r"stride, baseline, score"):
        make_explainer("occlusion", model, settings={"n_masks": 5})
    with pytest.raises(ValueError, match="n_masks must be a positive int"):
        make_explainer("rise", model, settings={"n_masks": 2.5})
    with pytest.raises(ValueError, match="occlusion: baseline must be a number"):
        make_explainer("occlusion", model, settings={"baseline": [1, 2]})


def test_split_settings_plain_and_per_method():
    methods = ["rise", "ig", "occlusion", "sobol"]
    split = split_settings({"score": "prob", "rise.n_masks": 2000, "ig.steps": 8, "grid": 4, "sobol.grid": 5},
                           methods)
    assert split == {
        "rise": {"score": "prob", "grid": 4, "n_masks": 2000},
        "integrated_gradients": {"score": "prob", "steps": 8},
        "occlusion": {"score": "prob"},
        "sobol": {"score": "prob", "grid": 5},  # the per-method form wins over the plain one
    }
    with pytest.raises(ValueError, match=r"no method among rise, integrated_gradients takes the setting 'patch'; "
                                         r"their settings: rise: n_masks, grid"):
        split_settings({"patch": 3}, ["rise", "ig"])
    with pytest.raises(ValueError, match="rise does not take the setting 'patch'; its settings: n_masks"):
        split_settings({"rise.patch": 3}, ["rise", "ig"])
    with pytest.raises(ValueError, match="'hsic.grid' is for hsic, which is not among the methods"):
        split_settings({"hsic.grid": 3}, ["rise"])
    with pytest.raises(ValueError, match="unknown attribution method 'nope'"):
        split_settings({"nope.grid": 3}, ["rise"])
    with pytest.raises(ValueError, match="occlusion does not take the setting 'steps'; its settings: patch"):
        split_settings({"steps": 3}, ["occlusion"])


def test_key_values_are_read_sensibly():
    parsed = parse_key_values(["patch=8", "noise_level=0.1", "abs=true", "unbiased=False", "layer=layer4",
                               "stride=(4, 2)", "sigma=none", "rise.n_masks=2000", "gradcam++.layer=body.3"],
                              scoped=True)
    assert parsed == {"patch": 8, "noise_level": 0.1, "abs": True, "unbiased": False, "layer": "layer4",
                      "stride": (4, 2), "sigma": None, "rise.n_masks": 2000, "gradcam++.layer": "body.3"}
    assert isinstance(parsed["patch"], int) and isinstance(parsed["noise_level"], float)
    with pytest.raises(FreqlensError, match="is not KEY=VALUE or METHOD.KEY=VALUE"):
        parse_key_values(["patch"], scoped=True)
    with pytest.raises(FreqlensError, match="is not KEY=VALUE"):
        parse_key_values(["rise.n_masks=3"])
    with pytest.raises(FreqlensError, match="given twice"):
        parse_key_values(["a=1", "a=2"])
