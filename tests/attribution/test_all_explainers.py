"""Every explainer of freqlens.attribution on the zoo architectures (mlp, lenet, resnet_small, vit_tiny):
batch 1 and 7, 1 and 3 channels, sizes 28, 32 and 33 — the map has the documented shape and finite
values, the model's mode is untouched, and CAM methods refuse networks they do not apply to.

Cheap methods (one forward/backward) run the full cross product; methods that multiply the batch
(steps, samples, masks) run every (architecture, size) pair with the (batch, channels) pairs cycled, so
each of them still meets every batch size, channel count, size and architecture. Hyper-parameters are
tiny: this is a wiring test, the science lives in the per-method tests.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable

import pytest
import torch
from torch import nn

from freqlens.attribution.gradcam import GradCAM, GradCAMPlusPlus
from freqlens.attribution.gradient import GradientInput, Saliency
from freqlens.attribution.hsic import HSICAttribution
from freqlens.attribution.integrated_gradients import IntegratedGradients
from freqlens.attribution.occlusion import Occlusion
from freqlens.attribution.rise import RISE
from freqlens.attribution.sobol import SobolAttribution
from freqlens.models import build

from .conftest import seeded

MODELS = ("mlp", "lenet", "resnet_small", "vit_tiny")
CONV_NETS = {"lenet", "resnet_small"}
SIZES = (28, 32, 33)
BATCH_CHANNELS = list(itertools.product((1, 7), (1, 3)))


def smoothgrad(model: nn.Module) -> object:
    from freqlens.attribution.noise_tunnel import SmoothGrad

    return SmoothGrad(Saliency(model), n=3, generator=seeded())


def forgrad(model: nn.Module) -> object:
    from freqlens.attribution.forgrad import FORGrad

    return FORGrad(Saliency(model), sigma=4)


CHEAP: dict[str, Callable[[nn.Module], object]] = {
    "saliency": Saliency,
    "gradient_input": GradientInput,
    "gradcam": GradCAM,
    "gradcam_pp": GradCAMPlusPlus,
}
EXPENSIVE: dict[str, Callable[[nn.Module], object]] = {
    "integrated_gradients": lambda model: IntegratedGradients(model, steps=4),
    "smoothgrad_saliency": smoothgrad,
    "forgrad_saliency": forgrad,
    "occlusion": lambda model: Occlusion(model, patch=12, stride=12),
    "rise": lambda model: RISE(model, n_masks=8, grid=4, generator=seeded()),
    "sobol": lambda model: SobolAttribution(model, grid=2, nb_design=4, generator=seeded()),
    "hsic": lambda model: HSICAttribution(model, grid=2, nb_design=8, generator=seeded()),
}
CAM = {"gradcam", "gradcam_pp"}
# Channel-summing methods return one map per image; the others one per input channel. FORGrad's default
# (magnitude) pipeline reduces the channels: one map per image.
PER_CHANNEL = {"saliency", "gradient_input", "integrated_gradients", "smoothgrad_saliency"}


@functools.cache
def zoo_model(name: str, channels: int, size: int) -> nn.Module:
    torch.manual_seed(0)
    return build(name, in_channels=channels, num_classes=10, image_size=size).eval()


CASES = [
    pytest.param(method, model, batch, channels, size, id=f"{method}-{model}-b{batch}-c{channels}-{size}")
    for method in CHEAP
    for model, (batch, channels), size in itertools.product(MODELS, BATCH_CHANNELS, SIZES)
] + [
    pytest.param(method, model, *BATCH_CHANNELS[index % 4], size,
                 id=f"{method}-{model}-b{BATCH_CHANNELS[index % 4][0]}-c{BATCH_CHANNELS[index % 4][1]}-{size}")
    for method in EXPENSIVE
    for index, (model, size) in enumerate(itertools.product(MODELS, SIZES))
]


@pytest.mark.parametrize(("method", "model_name", "batch", "channels", "size"), CASES)
def test_explainer_runs_on_zoo_model(method: str, model_name: str, batch: int, channels: int, size: int) -> None:
    model = zoo_model(model_name, channels, size)
    factory = CHEAP.get(method) or EXPENSIVE[method]
    if method in CAM and model_name not in CONV_NETS:
        with pytest.raises(ValueError, match="no nn.Conv2d|transformer"):
            factory(model)
        return
    explainer = factory(model)
    x = torch.rand(batch, channels, size, size, generator=seeded(batch + size))
    maps = explainer.attribute(x)
    expected_channels = channels if method in PER_CHANNEL else 1
    assert maps.shape == (batch, expected_channels, size, size)
    assert maps.dtype == x.dtype
    assert torch.isfinite(maps).all()
    assert bool(getattr(explainer, "per_channel", True)) == (method in PER_CHANNEL)
    assert not model.training
