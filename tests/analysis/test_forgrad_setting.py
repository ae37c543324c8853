"""The FORGrad σ of the methods of ``freqlens explain`` and ``evaluate``
(:mod:`freqlens.analysis.forgrad_setting`)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from freqlens.analysis import search_sigma
from freqlens.analysis.forgrad_setting import ForgradSetting, forgrad_setting
from freqlens.attribution.registry import make_explainer
from freqlens.errors import FreqlensError


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
                         nn.Linear(16, 3)).eval()


def _images(batch: int = 3) -> torch.Tensor:
    return torch.rand(batch, 3, 8, 8, generator=torch.Generator().manual_seed(1))


def test_none_and_a_fixed_sigma() -> None:
    model = _model()
    assert forgrad_setting(None, ["saliency"], model) == ForgradSetting(sigmas=None, searches={}, source=None)
    fixed = forgrad_setting(2.5, ["saliency", "rise"], model)
    assert fixed.sigmas == {"saliency": 2.5, "rise": 2.5} and fixed.source == "fixed" and fixed.searches == {}
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="positive σ"):
            forgrad_setting(bad, ["saliency"], model)
    with pytest.raises(ValueError, match="calibration"):
        forgrad_setting("auto", ["saliency"], model)


def test_auto_is_the_search_of_each_method_with_its_seed_and_settings() -> None:
    model, calibration = _model(), _images()
    settings = {"rise": {"n_masks": 12, "grid": 2}, "saliency": {}}
    shared: list[list[str]] = []

    def share(methods, search):
        shared.append(list(methods))
        return [search(method) for method in reversed(methods)][::-1]  # any order of work, results in order

    chosen = forgrad_setting("auto", ["saliency", "rise"], model, calibration, seeds={"rise": 7},
                             settings=settings, steps=3, mode="signed", share=share)
    assert shared == [["saliency", "rise"]] and chosen.source == "calibration"
    assert list(chosen.searches) == ["saliency", "rise"]
    for method, seed in (("saliency", 0), ("rise", 7)):
        explainer = make_explainer(method, model, generator=torch.Generator().manual_seed(seed),
                                   settings=settings[method])
        expected = search_sigma(explainer, model, calibration, None, steps=3, mode="signed")
        found = chosen.searches[method]
        assert chosen.sigmas[method] == found.sigma_star == expected.sigma_star
        torch.testing.assert_close(found.scores, expected.scores)
        assert found.base_maps.numel() == 0 and found.mode == "signed"  # light: no maps


def test_a_failing_search_names_its_method() -> None:
    with pytest.raises(FreqlensError, match="^occlusion: patch side 9 is larger than the image side 8"):
        forgrad_setting("auto", ["occlusion"], _model(), _images(), settings={"occlusion": {"patch": 9}},
                        steps=2)
