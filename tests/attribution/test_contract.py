"""The contract every method of the registry keeps (:data:`freqlens.attribution.registry.METHOD_NAMES`,
built with :func:`~freqlens.attribution.registry.make_explainer` and small settings): maps that do not
depend on ``batch_size`` nor on which images share a call, the same maps from the same seed, the model's
train/eval flags restored, no parameter ``.grad`` created or changed, dtype and device of the inputs, and
the documented shape (``B×C×H×W`` per channel, ``B×1×H×W`` otherwise).

The science of each method (closed forms, references, localisation) lives in the per-method tests.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
import torch
from torch import Tensor, nn

from freqlens.attribution.base import is_stochastic
from freqlens.attribution.registry import METHOD_NAMES, make_explainer

from .conftest import SmoothCNN, make_images, seeded

#: Small settings per method, so that the whole contract runs in seconds (the registry's defaults
#: otherwise: Saliency, Gradient ⊙ Input, GradCAM and GradCAM++ have nothing to shrink).
SMALL: dict[str, dict[str, Any]] = {
    "integrated_gradients": {"steps": 4},
    "smoothgrad": {"n": 3},
    "smoothgrad_sq": {"n": 3},
    "vargrad": {"n": 3},
    "occlusion": {"patch": 4, "stride": 2},
    "rise": {"n_masks": 16, "grid": 4},
    "sobol": {"grid": 2, "nb_design": 4},
    "hsic": {"grid": 2, "nb_design": 8},
}

#: The methods that give one map per input channel (``B×C×H×W``); the others give ``B×1×H×W``.
PER_CHANNEL = {"saliency", "gradient_input", "integrated_gradients", "smoothgrad", "smoothgrad_sq", "vargrad"}

#: Methods whose random draws are made for the whole batch at once, so an image explained alone meets
#: other draws than in its batch (its maps differ, whatever the seed); ``batch_size`` still changes nothing.
BATCH_DRAWS = {
    name: "the noise tunnel draws each sample's noise for the whole batch in one randn: an image alone "
          "gets other noise"
    for name in ("smoothgrad", "smoothgrad_sq", "vargrad")
}

TARGET = torch.tensor([1, 4, 6, 8])


def explainer_for(name: str, model: nn.Module, *, seed: int = 0, batch_size: int | None = None,
                  settings: Mapping[str, Any] | None = None) -> Any:
    """``name`` built by the registry around ``model`` with its small settings and a seeded generator."""
    return make_explainer(name, model, batch_size=batch_size, generator=seeded(seed),
                          settings={**SMALL.get(name, {}), **(settings or {})})


def assert_maps_close(actual: Tensor, expected: Tensor) -> None:
    """Equal to 1e-5: relative, and absolute relative to the largest expected magnitude."""
    atol = 1e-5 * float(expected.detach().abs().max()) + 1e-12
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=atol)


def model_flags(model: nn.Module) -> dict[str, bool]:
    return {name: module.training for name, module in model.named_modules()}


@pytest.fixture(scope="module")
def model() -> SmoothCNN:
    """BatchNorm and Dropout: the model's mode changes its output."""
    return SmoothCNN().eval()


@pytest.fixture(scope="module")
def inputs() -> Tensor:
    """Four 3×16×16 images in [0, 1]."""
    return make_images(batch=4, shape=(3, 16, 16))


def test_the_contract_covers_every_method_of_the_registry() -> None:
    assert set(SMALL) | PER_CHANNEL <= set(METHOD_NAMES)
    assert set(BATCH_DRAWS) <= set(METHOD_NAMES)


@pytest.mark.parametrize("name", METHOD_NAMES)
def test_batch_size_does_not_change_the_maps(name: str, model: SmoothCNN, inputs: Tensor) -> None:
    """``batch_size`` (max images per forward pass) only chunks the work: the same maps for 1, 3 and all
    (the same seed for the stochastic methods)."""
    reference = explainer_for(name, model, seed=3)(inputs, TARGET)
    for batch_size in (1, 3):
        maps = explainer_for(name, model, seed=3, batch_size=batch_size)(inputs, TARGET)
        assert_maps_close(maps, reference)


@pytest.mark.parametrize("name", METHOD_NAMES)
def test_a_batch_gives_the_maps_of_its_images_alone_and_in_chunks(name: str, model: SmoothCNN,
                                                                   inputs: Tensor) -> None:
    """The maps of a batch are those of its images explained one at a time, and of its halves (a fresh
    explainer with the same seed per call for the stochastic methods)."""
    if name in BATCH_DRAWS:
        pytest.skip(BATCH_DRAWS[name])
    reference = explainer_for(name, model, seed=3)(inputs, TARGET)
    alone = torch.cat([explainer_for(name, model, seed=3)(inputs[i : i + 1], TARGET[i : i + 1])
                       for i in range(inputs.shape[0])])
    assert_maps_close(alone, reference)
    halves = torch.cat([explainer_for(name, model, seed=3)(inputs[part], TARGET[part])
                        for part in (slice(0, 3), slice(3, 4))])
    assert_maps_close(halves, reference)


@pytest.mark.parametrize("name", METHOD_NAMES)
def test_same_seed_same_maps(name: str, model: SmoothCNN, inputs: Tensor) -> None:
    first = explainer_for(name, model, seed=5)(inputs, TARGET)
    assert torch.equal(explainer_for(name, model, seed=5)(inputs, TARGET), first)
    if is_stochastic(explainer_for(name, model)):  # the generator is really used
        assert not torch.allclose(explainer_for(name, model, seed=6)(inputs, TARGET), first)


@pytest.mark.parametrize("name", METHOD_NAMES)
def test_train_mode_restored_and_eval_mode_maps(name: str, inputs: Tensor) -> None:
    """On a model in train mode (one sub-module in eval: a mixed state), every flag comes back as it
    was, and the maps are those of the model in eval mode (Dropout off, BatchNorm running statistics)."""
    model = SmoothCNN().train()
    model.features[1].eval()
    flags = model_flags(model)
    maps = explainer_for(name, model, seed=2)(inputs, TARGET)
    assert model_flags(model) == flags
    expected = explainer_for(name, model.eval(), seed=2)(inputs, TARGET)
    assert_maps_close(maps, expected)


@pytest.mark.parametrize("name", METHOD_NAMES)
def test_no_parameter_grad_created_or_changed(name: str, inputs: Tensor) -> None:
    model = SmoothCNN().eval()
    parameters = list(model.parameters())
    held = torch.full_like(parameters[0], 0.5)
    parameters[0].grad = held.clone()  # an existing .grad stays as it is, the others stay None
    explainer_for(name, model)(inputs, TARGET)
    assert torch.equal(parameters[0].grad, held)
    assert all(parameter.grad is None for parameter in parameters[1:])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", METHOD_NAMES)
def test_dtype_device_and_shape_follow_the_inputs(name: str, dtype: torch.dtype) -> None:
    model = SmoothCNN().to(dtype).eval()
    x = make_images(batch=2, shape=(3, 16, 16), dtype=dtype)
    explainer = explainer_for(name, model)
    maps = explainer(x, TARGET[:2])
    channels = 3 if name in PER_CHANNEL else 1
    assert maps.shape == (2, channels, 16, 16)
    assert maps.dtype == dtype and maps.device == x.device
    assert bool(getattr(explainer, "per_channel", True)) == (name in PER_CHANNEL)
    assert not maps.requires_grad and bool(torch.isfinite(maps).all())
