"""Optional VII logging during training (seed 000): the logged value is the VII of the epoch's model."""

from __future__ import annotations

import torch

from freqlens.data import load_dataset
from freqlens.metrics import vii
from freqlens.models import build
from freqlens.training import train


def test_val_vii_is_the_metric_of_the_trained_model():
    data = load_dataset("demo-mnist", "train").subset(range(0, 2000, 10))
    val = load_dataset("demo-mnist", "test").subset(range(0, 500, 5))
    torch.manual_seed(0)
    model = build("lenet", in_channels=1, num_classes=10)
    history = train(model, data, val, epochs=1, log_vii=64, progress=False)
    logged = history[-1]["val_vii"]
    mean_image = data.float_images().mean(dim=0)
    expected = vii(model, val.float_images(range(64)), val.labels[:64], mean_image)
    assert 0.0 <= logged <= 1.0
    assert abs(logged - expected) < 1e-6


def test_vii_is_off_by_default():
    data = load_dataset("demo-mnist", "train").subset(range(0, 2000, 20))
    model = build("mlp", in_channels=1, num_classes=10)
    history = train(model, data, data, epochs=1, progress=False)
    assert history[-1]["val_vii"] is None
