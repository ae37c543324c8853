"""vit_tiny: patch grid, padding of sizes that are not multiples of the patch, pooling modes."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from freqlens.models import build, features


def test_size_not_multiple_of_patch_is_zero_padded():
    model = build("vit_tiny", 3, image_size=33, depth=1).eval()
    assert model.grid == (9, 9) and model.pos_embed.shape[1] == 9 * 9 + 1
    x = torch.rand(2, 3, 33, 33)
    assert model(x).shape == (2, 10)
    # equal to a 36×36 ViT with the same weights fed the explicitly zero-padded image
    twin = build("vit_tiny", 3, image_size=36, depth=1).eval()
    twin.load_state_dict(model.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(model(x), twin(F.pad(x, (0, 3, 0, 3))))


def test_padding_pixels_do_not_leak_into_the_gradient_shape():
    model = build("vit_tiny", 1, image_size=(30, 26), depth=1)
    x = torch.rand(2, 1, 30, 26, requires_grad=True)
    model(x).sum().backward()
    assert x.grad.shape == x.shape


@pytest.mark.parametrize("pool", ["cls", "mean"])
def test_pool_modes(pool):
    model = build("vit_tiny", 3, pool=pool, depth=1, dim=32, heads=2).eval()
    assert (model.cls_token is not None) == (pool == "cls")
    x = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        assert features(model, x).shape == (3, 32)
        assert model(x).shape == (3, 10)


def test_patch_size_changes_the_grid():
    model = build("vit_tiny", 1, patch_size=7, depth=1)
    assert model.grid == (4, 4)
    assert model(torch.rand(1, 1, 28, 28)).shape == (1, 10)
