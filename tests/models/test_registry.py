"""build / MODEL_NAMES / model_spec / features / num_parameters, and properties every zoo model has."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from freqlens.errors import ModelError
from freqlens.models import MODEL_NAMES, Normalized, build, features, model_spec, num_parameters

from .conftest import SHAPES

EXPECTED_NAMES = {"mlp", "fcnn", "lenet", "vgg11", "vgg16", "resnet18", "resnet_small", "vit_tiny",
                  "convnext_tiny"}


def test_model_names_are_the_documented_ones():
    assert set(MODEL_NAMES) == EXPECTED_NAMES
    assert len(MODEL_NAMES) == len(EXPECTED_NAMES)


@pytest.mark.parametrize("name", MODEL_NAMES)
@pytest.mark.parametrize("in_channels,size", SHAPES)
def test_forward_shape_finite_and_gradient_reaches_input(zoo, name, in_channels, size):
    model = zoo(name, in_channels)
    x = torch.rand(2, in_channels, size, size, requires_grad=True)
    logits = model(x)
    assert logits.shape == (2, 7)
    assert torch.isfinite(logits).all()
    logits[:, 3].sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    # every image gets its own non-zero gradient
    assert (x.grad.flatten(1).abs().sum(dim=1) > 0).all()


@pytest.mark.parametrize("name", MODEL_NAMES)
@pytest.mark.parametrize("in_channels,size", SHAPES)
def test_features_are_the_input_of_the_final_layer(zoo, name, in_channels, size):
    """logits == classifier(features): the features really are the penultimate activations."""
    model = zoo(name, in_channels)
    x = torch.rand(2, in_channels, size, size)
    with torch.no_grad():
        feats = features(model, x)
        logits = model(x)
    weight = model.classifier.weight.reshape(7, -1)  # Linear, or the 1×1 conv of fcnn
    assert feats.dim() == 2 and feats.shape == (2, weight.shape[1])
    torch.testing.assert_close(feats @ weight.T + model.classifier.bias, logits, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_batch_size_invariance_in_eval_mode(zoo, name):
    model = zoo(name, 3)
    x = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        together = model(x)
        alone = torch.cat([model(x[i : i + 1]) for i in range(3)])
    torch.testing.assert_close(together, alone, rtol=1e-4, atol=1e-5)


def test_unknown_name_lists_valid_names():
    with pytest.raises(ModelError) as info:
        build("resnet1000")
    for name in MODEL_NAMES:
        assert name in str(info.value)


@pytest.mark.parametrize(
    "kwargs,fragment",
    [
        ({"depth_multiplier": 2}, "depth_multiplier"),
        ({"in_channels": 0}, "in_channels"),
        ({"num_classes": 2.5}, "num_classes"),
        ({"image_size": (28,)}, "image_size"),
        ({"image_size": -1}, "image_size"),
        ({"mean": [0.5, 0.5, 0.5]}, "both mean and std"),
        ({"mean": [0.5, 0.5], "std": [0.2, 0.2]}, "one value per input channel"),
        ({"mean": [0.5] * 3, "std": [0.2, 0.0, 0.2]}, "positive"),
        ({"pooling": "median"}, "pooling"),
        ({"widths": [32, 64]}, "widths"),  # blocks has 3 entries
        ({"widths": torch.tensor([32, 64, 128])}, "plain Python"),
    ],
)
def test_bad_arguments_raise_model_error(kwargs, fragment):
    with pytest.raises(ModelError, match=fragment):
        build("resnet_small", **kwargs)


def test_model_specific_bad_arguments():
    with pytest.raises(ModelError, match="multiple of heads"):
        build("vit_tiny", dim=130, heads=4)
    with pytest.raises(ModelError, match="hidden"):
        build("mlp", hidden=[])
    with pytest.raises(ModelError, match="unknown argument"):
        build("lenet", width=3)  # lenet has no architecture arguments


def _is_plain(value) -> bool:
    if value is None or isinstance(value, (bool, int, float, str)):
        return True
    if isinstance(value, list):
        return all(_is_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_plain(v) for k, v in value.items())
    return False


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_spec_holds_every_argument_as_plain_python_and_rebuilds_the_same_model(name):
    model = build(name, 1, 5)
    spec = model_spec(model)
    assert spec["name"] == name
    assert _is_plain(spec)
    kwargs = spec["kwargs"]
    assert {"in_channels", "num_classes", "image_size", "mean", "std", "pooling"} <= set(kwargs)
    assert (kwargs["in_channels"], kwargs["num_classes"], kwargs["image_size"]) == (1, 5, [28, 28])
    rebuilt = build(spec["name"], **kwargs)
    assert model_spec(rebuilt) == spec
    shapes = {k: v.shape for k, v in model.state_dict().items()}
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == shapes
    # the spec is a copy: editing it does not change the model's
    spec["kwargs"]["num_classes"] = 99
    assert model_spec(model)["kwargs"]["num_classes"] == 5


def test_spec_records_architecture_arguments_and_defaults():
    default = model_spec(build("resnet_small"))["kwargs"]
    assert default["widths"] == [32, 64, 128] and default["blocks"] == [1, 1, 2]
    small = build("resnet_small", widths=(8, 16, 32))
    assert model_spec(small)["kwargs"]["widths"] == [8, 16, 32]
    assert num_parameters(small) < num_parameters(build("resnet_small"))
    vit = model_spec(build("vit_tiny", dim=64, depth=2))["kwargs"]
    assert (vit["dim"], vit["depth"], vit["heads"], vit["patch_size"]) == (64, 2, 4, 4)


@pytest.mark.parametrize(
    "in_channels,image_size,expected",
    [(1, None, [28, 28]), (3, None, [32, 32]), (3, 28, [28, 28]), (1, (30, 26), [30, 26]), (2, [33, 33], [33, 33])],
)
def test_image_size_default_and_forms(in_channels, image_size, expected):
    model = build("mlp", in_channels, image_size=image_size)
    assert model_spec(model)["kwargs"]["image_size"] == expected
    assert model(torch.rand(1, in_channels, *expected)).shape == (1, 10)


def test_name_is_case_insensitive_and_canonical():
    assert model_spec(build(" LeNet "))["name"] == "lenet"


def test_mean_std_wrap_in_normalized_and_record_floats():
    model = build("lenet", 3, mean=[0.5, 0.4, 0.3], std=(0.25, 0.2, 0.1))
    assert isinstance(model, Normalized)
    kwargs = model_spec(model)["kwargs"]
    assert kwargs["mean"] == [0.5, 0.4, 0.3] and kwargs["std"] == [0.25, 0.2, 0.1]
    x = torch.rand(2, 3, 32, 32)
    manual = (x - torch.tensor([0.5, 0.4, 0.3]).view(1, 3, 1, 1)) / torch.tensor([0.25, 0.2, 0.1]).view(1, 3, 1, 1)
    torch.testing.assert_close(model.eval()(x), model.model.eval()(manual))
    # a scalar mean/std is broadcast to every channel
    assert model_spec(build("lenet", 3, mean=0.5, std=0.25))["kwargs"]["mean"] == [0.5, 0.5, 0.5]


def test_pooling_avg_is_applied_at_build_time_and_recorded():
    model = build("lenet", pooling="avg")
    assert model_spec(model)["kwargs"]["pooling"] == "avg"
    assert not any(isinstance(m, nn.MaxPool2d) for m in model.modules())
    assert sum(isinstance(m, nn.AvgPool2d) for m in model.modules()) == 2


def test_user_wrapped_normalized_gets_a_derived_spec():
    inner = build("fcnn", 1)
    wrapped = Normalized(inner, [0.25], [0.5])
    spec = model_spec(wrapped)
    assert spec["kwargs"]["mean"] == [0.25] and spec["kwargs"]["std"] == [0.5]
    rebuilt = build(spec["name"], **spec["kwargs"])
    assert rebuilt.state_dict().keys() == wrapped.state_dict().keys()


def test_model_spec_of_a_foreign_model_raises():
    with pytest.raises(ModelError, match="not built by freqlens.models.build"):
        model_spec(nn.Linear(3, 2))


def test_features_on_normalized_equals_features_of_normalized_input(zoo):
    inner = zoo("resnet_small", 3)
    wrapped = Normalized(inner, [0.4, 0.5, 0.6], [0.2, 0.3, 0.4])
    x = torch.rand(2, 3, 32, 32)
    normalized = (x - torch.tensor([0.4, 0.5, 0.6]).view(1, 3, 1, 1)) / torch.tensor([0.2, 0.3, 0.4]).view(1, 3, 1, 1)
    with torch.no_grad():
        torch.testing.assert_close(features(wrapped, x), inner.forward_features(normalized))


def test_features_fallback_hooks_the_last_linear_of_a_foreign_model():
    torch.manual_seed(1)
    body = nn.Sequential(nn.Flatten(), nn.Linear(12, 6), nn.Tanh())
    model = nn.Sequential(body, nn.Linear(6, 3))
    x = torch.rand(4, 3, 2, 2)
    with torch.no_grad():
        torch.testing.assert_close(features(model, x), body(x))
    # hooks are removed afterwards
    assert not model[1]._forward_pre_hooks
    with pytest.raises(ModelError, match="penultimate"):
        features(nn.Sequential(nn.Conv2d(3, 2, 1)), x)


def test_num_parameters_counts_elements():
    model = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2, bias=False))
    assert num_parameters(model) == 4 * 3 + 3 + 3 * 2
    model[0].weight.requires_grad_(False)
    assert num_parameters(model, trainable_only=True) == 3 + 3 * 2


def test_resnet_small_size_is_cpu_friendly():
    count = num_parameters(build("resnet_small"))
    assert 300_000 <= count <= 800_000
    assert num_parameters(build("resnet18")) > 10 * count  # the real ResNet-18 (11.2 M)
