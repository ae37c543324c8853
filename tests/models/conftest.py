"""Fixtures of the model tests: a cache of built zoo models (building vgg16/resnet18 takes time)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

from freqlens.models import build

CONV_NETS = ("fcnn", "lenet", "vgg11", "vgg16", "resnet18", "resnet_small", "convnext_tiny")
FIXED_SIZE = ("mlp", "vit_tiny")
SHAPES = ((1, 28), (3, 32))


@pytest.fixture(scope="session")
def zoo() -> Callable[..., nn.Module]:
    """``zoo(name, in_channels, num_classes=7)``: a cached model in eval mode (do not modify it)."""
    cache: dict[tuple, nn.Module] = {}

    def get(name: str, in_channels: int = 3, num_classes: int = 7, **kwargs) -> nn.Module:
        key = (name, in_channels, num_classes, tuple(sorted(kwargs.items())))
        if key not in cache:
            with torch.random.fork_rng():
                torch.manual_seed(len(cache))
                cache[key] = build(name, in_channels, num_classes, **kwargs)
        return cache[key].eval()

    return get
