"""Checkpoints shared by the command tests: a LeNet trained one epoch on 1,000 demo digits, and an
untrained MLP (a model without convolutions, for the GradCAM error paths)."""

from __future__ import annotations

import pytest
import torch

from freqlens.data import load_dataset
from freqlens.models import build, save_model
from freqlens.training import train


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("checkpoints")
    data = load_dataset("demo-mnist", "train").subset(range(0, 2000, 2))  # 1,000 images, every class
    torch.manual_seed(0)
    lenet = build("lenet", in_channels=1, num_classes=10)
    train(lenet, data, epochs=1, out_dir=root / "lenet", progress=False)
    mlp = build("mlp", in_channels=1, num_classes=10)
    save_model(mlp, root / "mlp.pt")
    return {"lenet": root / "lenet" / "best.pt", "mlp": root / "mlp.pt"}
