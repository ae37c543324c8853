"""Hostile inputs to the library's entry points: images outside [0, 1], non-finite model outputs,
meaningless attack budgets (issue 12, items 3, 4 and 6).

Every entry point that takes images goes through one check (``freqlens.utils.tensors.check_images``),
so each test asserts the same message everywhere; the opt-out (``freqlens.pixel_range``) is tested too.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import freqlens
from freqlens.errors import FreqlensError, InputError

CLASSES = 4


class TinyCNN(nn.Module):
    """conv → ReLU → conv (stride 2) → pool → linear: every explainer (GradCAM too) can run on it."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.features = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, stride=2, padding=1),
                                      nn.ReLU())
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, CLASSES))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


@pytest.fixture(scope="module")
def model() -> nn.Module:
    return TinyCNN().eval()


def images(scale: float = 1.0) -> torch.Tensor:
    return torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(1)) * scale


def _explainers():
    from freqlens.attribution.registry import METHOD_NAMES

    return METHOD_NAMES


def _cheap(name: str, model: nn.Module):
    """The registry's explainer with small sample counts (the check runs before any sampling)."""
    from freqlens.attribution.registry import make_explainer

    explainer = make_explainer(name, model, generator=torch.Generator().manual_seed(0))
    for attribute, value in (("n", 2), ("n_masks", 8), ("steps", 4)):
        if hasattr(explainer, attribute):
            setattr(explainer, attribute, value)
    return explainer


def _range_error(excinfo: pytest.ExceptionInfo) -> None:
    message = str(excinfo.value)
    assert isinstance(excinfo.value, InputError) and isinstance(excinfo.value, FreqlensError)
    assert "must hold pixels in [0, 1]" in message and "divide them by 255" in message
    assert "freqlens.pixel_range(None)" in message
    assert "\n" not in message


@pytest.mark.parametrize("name", _explainers())
def test_every_explainer_refuses_images_in_0_255(model: nn.Module, name: str) -> None:
    with pytest.raises(InputError) as excinfo:
        _cheap(name, model).attribute(images(255.0))
    _range_error(excinfo)


@pytest.mark.parametrize("name", ["saliency", "smoothgrad", "occlusion"])
def test_opt_out_lets_other_domains_through(model: nn.Module, name: str) -> None:
    with freqlens.pixel_range(None):
        maps = _cheap(name, model).attribute(images(255.0))
    assert torch.isfinite(maps).all()
    with pytest.raises(InputError):  # the block ended: the convention is back
        _cheap(name, model).attribute(images(255.0))


def test_custom_range_is_enforced(model: nn.Module) -> None:
    from freqlens.attribution import Saliency

    with freqlens.pixel_range((0.0, 255.0)):
        Saliency(model).attribute(images(255.0))
        with pytest.raises(InputError, match=r"\[0, 255\]"):
            Saliency(model).attribute(images(255.0) + 300.0)
    previous = freqlens.current_pixel_range()
    try:
        freqlens.set_pixel_range(None)
        Saliency(model).attribute(images(255.0))
    finally:
        freqlens.set_pixel_range(previous)
    assert freqlens.current_pixel_range() == (0.0, 1.0)


def test_tiny_float_overshoot_is_tolerated(model: nn.Module) -> None:
    from freqlens.attribution import Saliency

    x = images()
    x[0, 0, 0, 0], x[1, 0, 0, 0] = 1.0 + 5e-5, -5e-5
    Saliency(model).attribute(x)
    x[0, 0, 0, 0] = 1.0 + 1e-3
    with pytest.raises(InputError):
        Saliency(model).attribute(x)


def test_metrics_refuse_images_in_0_255(model: nn.Module) -> None:
    from freqlens.metrics import deletion, insertion, mufidelity, vii

    x, maps = images(255.0), torch.rand(2, 1, 16, 16)
    target = torch.tensor([0, 1])
    for call in (lambda: deletion(model, x, target, maps),
                 lambda: insertion(model, x, target, maps),
                 lambda: mufidelity(model, x, target, maps, samples=4, generator=torch.Generator().manual_seed(0)),
                 lambda: vii(model, x, target, torch.zeros(3, 16, 16))):
        with pytest.raises(InputError) as excinfo:
            call()
        _range_error(excinfo)


def test_analyses_refuse_images_in_0_255(model: nn.Module) -> None:
    from freqlens.analysis import method_footprints, occluded_frequency, search_sigma
    from freqlens.attribution import Saliency

    x = images(255.0)
    for call in (lambda: method_footprints(model, x, methods=["saliency"], progress=False),
                 lambda: occluded_frequency(model, x),
                 lambda: search_sigma(Saliency(model), model, x, None, sigmas=[2.0, 4.0])):
        with pytest.raises(InputError) as excinfo:
            call()
        _range_error(excinfo)


def test_attacks_keep_0_1_whatever_the_opt_out(model: nn.Module) -> None:
    from freqlens.attacks import PGD

    with freqlens.pixel_range(None), pytest.raises(InputError, match=r"\[0, 1\]"):
        PGD(model, eps=8 / 255, steps=1)(images(255.0), torch.tensor([0, 1]))


class NaNModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(3 * 16 * 16, CLASSES)
        with torch.no_grad():
            self.linear.weight[0, 0] = float("nan")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.flatten(1))


@pytest.mark.parametrize("name", [n for n in _explainers() if not n.startswith("gradcam")])
@pytest.mark.parametrize("target", [None, torch.tensor([0, 1])])
def test_explainers_refuse_non_finite_logits(name: str, target) -> None:
    with pytest.raises(InputError, match="NaN or infinite logits"):
        _cheap(name, NaNModel().eval()).attribute(images(), target)


@pytest.mark.parametrize("eps, norm", [(5.0, "inf"), (8.0, "inf"), (60.0, "2")])
def test_attack_budget_beyond_the_pixel_cube_is_refused(model: nn.Module, eps: float, norm: str) -> None:
    from freqlens.attacks import PGD

    with pytest.raises(InputError, match=r"ε is in pixel units of \[0, 1\] images, e.g. 8/255"):
        PGD(model, eps=eps, alpha=0.1, steps=1, norm=norm)(images(), torch.tensor([0, 1]))


def test_attack_budget_at_the_limit_is_allowed(model: nn.Module) -> None:
    from freqlens.attacks import FGSM, PGD

    FGSM(model, eps=1.0)(images(), torch.tensor([0, 1]))
    PGD(model, eps=(3 * 16 * 16) ** 0.5, alpha=1.0, steps=1, norm="2")(images(), torch.tensor([0, 1]))


def test_adversarial_training_budget_is_checked_at_construction() -> None:
    from freqlens.training import Adversarial

    with pytest.raises(FreqlensError, match="8/255"):
        Adversarial.fast(eps=8.0)
    with pytest.raises(FreqlensError, match="8/255"):
        Adversarial.pgd(eps=8.0, alpha=2 / 255, steps=3)
