"""Tiny models and images shared by the attribution tests (closed forms need simple models).

* ``LinearModel``: ``f(x) = W · flatten(x) + b`` — every gradient method has a closed form.
* ``SmoothCNN``: conv → Softplus → conv (stride 2) → Tanh → pool → linear; smooth, so Integrated
  Gradients converges and finite differences agree with autograd. Contains BatchNorm and Dropout so
  train/eval mode matters (and is checked to be restored).
* ``DummyOcclusion``: a deterministic black-box explainer (``B×1×H×W``), patch-occlusion-like.
* ``IdentityExplainer``: returns its (noisy) input — exposes the noise a tunnel adds.
"""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn


class LinearModel(nn.Module):
    """``f(x) = W · flatten(x) + b`` for ``C×H×W`` inputs and ``classes`` outputs."""

    def __init__(self, shape: tuple[int, int, int] = (3, 8, 8), classes: int = 5, seed: int = 0) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.shape = shape
        self.linear = nn.Linear(shape[0] * shape[1] * shape[2], classes)
        with torch.no_grad():
            self.linear.weight.copy_(torch.randn(self.linear.weight.shape, generator=generator))
            self.linear.bias.copy_(torch.randn(classes, generator=generator))

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(x.flatten(1))

    def weight_maps(self) -> Tensor:
        """``W`` reshaped to ``classes×C×H×W``."""
        return self.linear.weight.detach().reshape(-1, *self.shape)


class SmoothCNN(nn.Module):
    """A small smooth classifier for ``C×H×W`` images (BatchNorm + Dropout make modes matter)."""

    def __init__(self, in_channels: int = 3, classes: int = 10, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 8, 3, padding=1),
            nn.BatchNorm2d(8),
            nn.Softplus(),
            nn.Conv2d(8, 8, 3, stride=2, padding=1),
            nn.Tanh(),
            nn.AdaptiveAvgPool2d(2),
        )
        self.dropout = nn.Dropout(0.5)
        self.classifier = nn.Linear(32, classes)
        with torch.no_grad():  # non-trivial BatchNorm statistics
            self.features[1].running_mean.uniform_(-0.2, 0.2)
            self.features[1].running_var.uniform_(0.5, 1.5)
            self.features[0].weight.mul_(4.0)  # strong curvature along IG paths (Tanh saturates)
            self.features[3].weight.mul_(4.0)
            self.classifier.weight.mul_(3.0)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.dropout(self.features(x).flatten(1)))


class DummyOcclusion:
    """Black-box explainer: score drop when each ``patch×patch`` cell is set to 0 (``B×1×H×W``)."""

    per_channel = False
    family = "black-box"

    def __init__(self, model: nn.Module, patch: int = 4) -> None:
        self.model = model
        self.patch = patch

    @torch.no_grad()
    def attribute(self, inputs: Tensor, target: Tensor | int | None = None) -> Tensor:
        batch, _, height, width = inputs.shape
        target = torch.as_tensor(target).expand(batch) if target is not None else self.model(inputs).argmax(1)
        rows = torch.arange(batch)
        clean = self.model(inputs)[rows, target]
        out = torch.zeros(batch, 1, height, width, dtype=inputs.dtype)
        for top in range(0, height, self.patch):
            for left in range(0, width, self.patch):
                occluded = inputs.clone()
                occluded[:, :, top : top + self.patch, left : left + self.patch] = 0
                drop = clean - self.model(occluded)[rows, target]
                out[:, 0, top : top + self.patch, left : left + self.patch] = drop.view(-1, 1, 1)
        return out


class IdentityExplainer:
    """Returns its input as the 'map' and counts its calls (images per call)."""

    per_channel = True
    family = "gradient"

    def __init__(self) -> None:
        self.calls: list[int] = []

    def attribute(self, inputs: Tensor, target: Tensor | int | None = None) -> Tensor:
        self.calls.append(inputs.shape[0])
        return inputs.clone()


def make_images(batch: int = 4, shape: tuple[int, int, int] = (3, 16, 16), seed: int = 1,
                dtype: torch.dtype = torch.float32) -> Tensor:
    """Images in [0, 1] with different ranges per image (so per-image noise scales differ)."""
    generator = torch.Generator().manual_seed(seed)
    images = torch.rand(batch, *shape, generator=generator, dtype=dtype)
    spans = torch.linspace(0.4, 1.0, batch, dtype=dtype).view(-1, 1, 1, 1)
    return images * spans


class Quadrants(nn.Module):
    """``logit_q = sum of the pixels of quadrant q`` (0 top-left, 1 top-right, 2 bottom-left, 3 bottom-right)."""

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2] // 2, x.shape[-1] // 2
        parts = [x[..., :h, :w], x[..., :h, w:], x[..., h:, :w], x[..., h:, w:]]
        return torch.stack([part.sum(dim=(1, 2, 3)) for part in parts], dim=1)


def quadrant_mask(q: int, height: int, width: int) -> Tensor:
    """Boolean ``height×width`` mask of quadrant ``q`` (numbered as in :class:`Quadrants`)."""
    h, w = height // 2, width // 2
    mask = torch.zeros(height, width, dtype=torch.bool)
    mask[slice(0, h) if q < 2 else slice(h, height), slice(0, w) if q % 2 == 0 else slice(w, width)] = True
    return mask


class SmallReLUCNN(nn.Module):
    """Conv → ReLU → 2×2 average pool → linear, initialised from ``torch.manual_seed(seed)``."""

    def __init__(self, channels: int = 3, classes: int = 5, seed: int = 5) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.body = nn.Sequential(nn.Conv2d(channels, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2),
                                  nn.Flatten(), nn.Linear(16, classes))

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x)


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture(autouse=True)
def _single_thread():
    """Tiny models gain nothing from intra-op threads, and on a busy 2-core machine OpenMP barriers make
    every op above the parallel grain size ~100× slower; run these tests on one thread (restored after)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def linear_model() -> LinearModel:
    return LinearModel().eval()


@pytest.fixture
def smooth_cnn() -> SmoothCNN:
    return SmoothCNN().eval()


@pytest.fixture
def images() -> Tensor:
    """Four 3×16×16 images for ``smooth_cnn``."""
    return make_images()


@pytest.fixture
def linear_images() -> Tensor:
    """Four 3×8×8 images for ``linear_model``."""
    return make_images(shape=(3, 8, 8), seed=2)


def assert_close(actual: Tensor, expected: Tensor, rtol: float = 1e-5, atol_scale: float = 1e-6) -> None:
    """``allclose`` with an absolute tolerance relative to the largest expected magnitude."""
    atol = atol_scale * float(expected.detach().abs().max()) + 1e-12
    torch.testing.assert_close(actual, expected, rtol=rtol, atol=atol)
