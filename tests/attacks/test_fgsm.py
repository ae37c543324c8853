"""FGSM against an independently computed gradient, on a closed-form linear model and the trained CNN."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from freqlens.attacks import FGSM


def _independent_fgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, sign: float) -> torch.Tensor:
    model.eval()
    x = x.clone().requires_grad_(True)
    F.cross_entropy(model(x), y, reduction="sum").backward()
    return (x.detach() + sign * eps * x.grad.sign()).clamp(0, 1)


@pytest.mark.parametrize("targeted", [False, True])
def test_fgsm_equals_clipped_signed_gradient_step(mnist_cnn, digits, targeted):
    x, y = digits[0][:10], digits[1][:10]
    labels = (y + 1) % 10 if targeted else y
    expected = _independent_fgsm(mnist_cnn, x, labels, 0.1, -1.0 if targeted else 1.0)
    for parameter in mnist_cnn.parameters():
        parameter.grad = None
    mnist_cnn.train()
    assert torch.equal(FGSM(mnist_cnn, eps=0.1, targeted=targeted)(x, labels), expected)


def test_fgsm_on_a_linear_model_closed_form():
    """Two classes, logits (w·x, 0): ∂CE/∂x = −(1 − p₀)·w for label 0, so x' = clip(x − ε·sign(w))."""
    torch.manual_seed(0)
    linear = nn.Linear(16, 2, bias=False)
    with torch.no_grad():
        linear.weight[1] = 0
    model = nn.Sequential(nn.Flatten(), linear)
    x = torch.rand(5, 1, 4, 4)
    y = torch.zeros(5, dtype=torch.long)
    w = linear.weight[0].detach().view(1, 1, 4, 4)
    torch.testing.assert_close(FGSM(model, eps=0.05)(x, y), (x - 0.05 * w.sign()).clamp(0, 1), atol=0, rtol=0)
    # targeted at class 0 moves the other way: up along sign(w)
    torch.testing.assert_close(FGSM(model, eps=0.05, targeted=True)(x, y), (x + 0.05 * w.sign()).clamp(0, 1),
                               atol=0, rtol=0)


def test_fgsm_eps_zero_is_identity(mnist_cnn, digits):
    x, y = digits[0][:4], digits[1][:4]
    assert torch.equal(FGSM(mnist_cnn, eps=0.0)(x, y), x)
