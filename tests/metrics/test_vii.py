"""VII, seed 000 (freqlens.metrics.vii)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from freqlens.metrics import vii, vii_per_image


def random_cnn(channels: int = 3, classes: int = 4) -> nn.Module:
    torch.manual_seed(2)
    return nn.Sequential(
        nn.Conv2d(channels, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(), nn.Dropout(0.3),
        nn.Conv2d(6, 6, 3, stride=2), nn.ReLU(), nn.Flatten(), nn.LazyLinear(classes),
    )


def reference_vii(model, inputs, target, mean_image):
    """One image at a time, gradient via .backward(), cosine in numpy."""
    model.eval()
    values = []
    for x, y in zip(inputs, target):
        x = x[None].clone().requires_grad_(True)
        F.cross_entropy(model(x), y[None]).backward()
        d = np.sign((x.detach() - mean_image).numpy().ravel()).astype(np.float64)
        g = np.sign(x.grad.numpy().ravel()).astype(np.float64)
        denom = np.linalg.norm(d) * np.linalg.norm(g)
        values.append(abs(d @ g) / denom if denom > 0 else 0.0)
    model.zero_grad(set_to_none=True)
    return np.array(values)


def test_vii_random_cnn_in_unit_interval_and_matches_reference():
    model = random_cnn()
    inputs = torch.rand(6, 3, 10, 10)
    model(inputs)  # materialise the lazy layer
    mean_image = inputs.mean(dim=0)
    target = torch.randint(0, 4, (6,))
    model.train()
    per_image = vii_per_image(model, inputs, target, mean_image)
    assert ((per_image >= 0) & (per_image <= 1)).all()
    value = vii(model, inputs, target, mean_image)
    assert 0.0 <= value <= 1.0
    assert value == pytest.approx(float(per_image.mean()), abs=1e-12)
    assert all(module.training for module in model.modules())  # mode restored
    assert all(p.grad is None for p in model.parameters())  # gradient w.r.t. the input only
    np.testing.assert_allclose(per_image.numpy(), reference_vii(model, inputs, target, mean_image), atol=1e-12)


def test_vii_is_one_when_gradient_sign_matches_input_sign():
    """Two-class linear model with W0 = −d, W1 = d, d = sign(x − x̄): ∂CE/∂x = ±(1 − p_y)·2d."""
    torch.manual_seed(0)
    channels, size = 2, 7
    d = torch.where(torch.rand(channels, size, size) < 0.5, -1.0, 1.0)
    mean_image = torch.full((channels, size, size), 0.5)
    inputs = mean_image + d * (0.05 + 0.4 * torch.rand(5, channels, size, size))
    layer = nn.Linear(d.numel(), 2, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.stack([-d.flatten(), d.flatten()]) * 0.01)
    model = nn.Sequential(nn.Flatten(), layer)
    target = torch.tensor([0, 1, 0, 1, 1])
    assert vii(model, inputs, target, mean_image) == pytest.approx(1.0, abs=1e-12)
    # Flipping the weight pattern of one pixel lowers the score below 1.
    with torch.no_grad():
        layer.weight[:, 0] *= -1
    assert vii(model, inputs, target, mean_image) < 1.0


def test_vii_batch_size_independent_and_target_none():
    model = random_cnn()
    inputs = torch.rand(5, 3, 10, 10)
    model(inputs)
    mean_image = torch.rand(1, 3, 10, 10)
    values = [vii_per_image(model, inputs, None, mean_image, batch_size=b) for b in (1, 2, None)]
    for other in values[1:]:
        torch.testing.assert_close(other, values[0], rtol=0, atol=1e-12)
    model.eval()
    with torch.no_grad():
        predicted = model(inputs).argmax(1)
    torch.testing.assert_close(values[0], vii_per_image(model, inputs, predicted, mean_image))


def test_vii_zero_sign_vector_gives_zero():
    model = random_cnn()
    inputs = torch.rand(2, 3, 10, 10)
    model(inputs)
    per_image = vii_per_image(model, inputs, torch.tensor([0, 1]), inputs[0])  # x0 equals the mean image
    assert per_image[0] == 0.0 and torch.isfinite(per_image).all() and per_image[1] > 0


def test_vii_bad_inputs():
    model = random_cnn()
    inputs = torch.rand(2, 3, 10, 10)
    model(inputs)
    with pytest.raises(ValueError, match="mean_image"):
        vii(model, inputs, None, torch.rand(3, 9, 10))
    with pytest.raises(ValueError, match="NaN"):
        vii(model, inputs, None, torch.full((3, 10, 10), float("nan")))
    with pytest.raises(ValueError, match="target"):
        vii(model, inputs, torch.tensor([0, 1, 2]), torch.rand(3, 10, 10))
    with pytest.raises(ValueError, match="out of range"):
        vii(model, inputs, torch.tensor([0, 7]), torch.rand(3, 10, 10))
    with pytest.raises(ValueError, match="B×C×H×W"):
        vii(model, inputs[0], None, torch.rand(3, 10, 10))
