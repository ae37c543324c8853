"""Saliency and Gradient ⊙ Input: closed forms on a linear model, finite differences, streaming."""

from __future__ import annotations

import pytest
import torch

from freqlens.attribution import (
    GradientInput,
    IntegratedGradients,
    Saliency,
    SmoothGrad,
    count_passes,
    input_gradients,
)

from .conftest import SmoothCNN, assert_close, make_images


def test_saliency_of_linear_model_is_the_weight_row(linear_model, linear_images):
    target = torch.tensor([0, 3, 1, 4])
    maps = Saliency(linear_model)(linear_images, target)
    assert maps.shape == linear_images.shape
    assert_close(maps, linear_model.weight_maps()[target])
    # target=None explains the predicted class
    predicted = linear_model(linear_images).argmax(1)
    assert_close(Saliency(linear_model)(linear_images), linear_model.weight_maps()[predicted])
    assert_close(Saliency(linear_model, abs=True)(linear_images, target), linear_model.weight_maps()[target].abs())


@pytest.mark.parametrize("score", ["prob", "log_prob"])
def test_saliency_of_softmax_scores_on_linear_model(linear_model, linear_images, score):
    # ∂ log p_t / ∂x = W_t − Σ_k p_k W_k ; ∂ p_t / ∂x = p_t (W_t − Σ_k p_k W_k)
    target = torch.tensor([2, 2, 0, 1])
    weights = linear_model.weight_maps()
    with torch.no_grad():
        probs = linear_model(linear_images).softmax(1)
    expected = weights[target] - torch.einsum("bk,kchw->bchw", probs, weights)
    if score == "prob":
        expected = expected * probs[torch.arange(4), target].view(-1, 1, 1, 1)
    assert_close(Saliency(linear_model, score=score)(linear_images, target), expected, atol_scale=1e-5)


@pytest.mark.parametrize("score", ["logit", "log_prob"])
def test_input_gradients_is_the_signed_saliency_function(linear_model, linear_images, score):
    target = torch.tensor([0, 3, 1, 4])
    grads = input_gradients(linear_model, linear_images, target, score=score, batch_size=3)
    assert_close(grads, Saliency(linear_model, score=score)(linear_images, target))
    if score == "logit":
        assert_close(grads, linear_model.weight_maps()[target])
    with pytest.raises(TypeError):
        input_gradients(linear_model, linear_images, target, abs=True)  # the signed gradient only


def test_gradient_input_of_linear_model_sums_to_logit_minus_bias(linear_model, linear_images):
    target = torch.tensor([1, 0, 4, 2])
    maps = GradientInput(linear_model)(linear_images, target)
    assert_close(maps, linear_images * linear_model.weight_maps()[target])
    with torch.no_grad():
        logits = linear_model(linear_images)[torch.arange(4), target]
    torch.testing.assert_close(maps.sum((1, 2, 3)), logits - linear_model.linear.bias[target].detach(),
                               rtol=1e-5, atol=1e-4)


def test_saliency_matches_finite_differences_on_smooth_cnn():
    model = SmoothCNN().double().eval()
    x = make_images(batch=2, dtype=torch.float64)
    target = torch.tensor([1, 7])
    grads = Saliency(model)(x, target)
    direction = torch.randn(x.shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    eps = 1e-6
    with torch.no_grad():
        plus = model(x + eps * direction)[torch.arange(2), target]
        minus = model(x - eps * direction)[torch.arange(2), target]
    numeric = (plus - minus) / (2 * eps)
    torch.testing.assert_close((grads * direction).sum((1, 2, 3)), numeric, rtol=1e-6, atol=1e-9)


def test_streams_chunks_of_at_most_batch_size(smooth_cnn):
    x = make_images(batch=7)
    with count_passes(smooth_cnn) as count:
        Saliency(smooth_cnn, batch_size=3)(x, torch.zeros(7, dtype=torch.long))
    assert (count.forward, count.forward_calls, count.backward_calls) == (7, 3, 3)


def test_works_under_no_grad(smooth_cnn, images):
    target = torch.tensor([1, 2, 3, 4])
    expected = Saliency(smooth_cnn)(images, target)
    with torch.no_grad():
        assert_close(Saliency(smooth_cnn)(images, target), expected)


@pytest.mark.parametrize(
    ("inputs", "target", "message"),
    [
        (torch.rand(3, 16, 16), None, "B×C×H×W"),
        (torch.randint(0, 255, (2, 3, 16, 16)), None, "floating"),
        (torch.full((2, 3, 16, 16), float("nan")), None, "NaN"),
        (torch.rand(2, 3, 16, 16), torch.tensor([0, 10]), "out of range"),
        (torch.rand(2, 3, 16, 16), torch.tensor([0, 1, 2]), "shape \\[2\\]"),
    ],
)
@pytest.mark.parametrize("explainer_cls", [Saliency, GradientInput])
def test_bad_inputs_raise_clear_errors(smooth_cnn, explainer_cls, inputs, target, message):
    with pytest.raises(ValueError, match=message):
        explainer_cls(smooth_cnn)(inputs, target)


def test_bad_constructor_arguments(smooth_cnn):
    with pytest.raises(ValueError, match="unknown score"):
        Saliency(smooth_cnn, score="softmax")
    with pytest.raises(ValueError, match="batch_size"):
        GradientInput(smooth_cnn, batch_size=0)
    with pytest.raises(TypeError, match="nn.Module"):
        Saliency(lambda x: x)


def test_model_detached_from_input_is_reported(images):
    class Detached(torch.nn.Module):
        def forward(self, x):
            return torch.zeros(x.shape[0], 3) + x.detach().mean()

    with pytest.raises(ValueError, match="does not depend on its input"):
        Saliency(Detached())(images, 0)


def test_matches_captum(smooth_cnn, images):
    captum_attr = pytest.importorskip("captum.attr")
    target = torch.tensor([3, 1, 4, 1])
    expected = captum_attr.Saliency(smooth_cnn).attribute(images.clone().requires_grad_(), target=target, abs=False)
    assert_close(Saliency(smooth_cnn)(images, target), expected)
    expected = captum_attr.Saliency(smooth_cnn).attribute(images.clone().requires_grad_(), target=target)  # abs by default
    assert_close(Saliency(smooth_cnn, abs=True)(images, target), expected)
    expected = captum_attr.InputXGradient(smooth_cnn).attribute(images.clone().requires_grad_(), target=target)
    assert_close(GradientInput(smooth_cnn)(images, target), expected)


@pytest.mark.parametrize("make", [
    lambda m: Saliency(m), lambda m: GradientInput(m),
    lambda m: IntegratedGradients(m, steps=3), lambda m: SmoothGrad(Saliency(m), n=2),
])
def test_inputs_requiring_grad_give_plain_maps(smooth_cnn, images, make):
    x = images.clone().requires_grad_(True)
    maps = make(smooth_cnn)(x, torch.tensor([0, 1, 2, 3]))
    assert not maps.requires_grad and x.grad is None
