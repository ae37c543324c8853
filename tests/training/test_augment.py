"""Batch augmentation: flip / crop with 4-px zero padding, checked against a per-image reference."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from freqlens.training import TrainingConfigError, augment_batch
from freqlens.training.augment import parse_augment


def _candidates(image: torch.Tensor, padding: int, flips: bool, shifts: bool) -> list[torch.Tensor]:
    """Every image the augmentation may produce from ``image`` (independent loop implementation)."""
    _, height, width = image.shape
    sources = [image, image.flip(-1)] if flips else [image]
    out = []
    for source in sources:
        if not shifts:
            out.append(source)
            continue
        padded = F.pad(source, (padding,) * 4)
        for dy in range(2 * padding + 1):
            for dx in range(2 * padding + 1):
                out.append(padded[:, dy:dy + height, dx:dx + width])
    return out


@pytest.mark.parametrize("kind", ["flip", "crop", "flip+crop", True])
def test_augmentation_is_a_flip_or_shift_of_each_image(kind):
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(16, 3, 10, 12) * 0.9 + 0.05  # no zeros, so zero padding is visible
    out = augment_batch(x, kind, generator)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    assert not torch.equal(out, x)
    name = parse_augment(kind)
    for i in range(x.shape[0]):
        options = _candidates(x[i], 4, "flip" in name, "crop" in name)
        assert any(torch.equal(out[i], option) for option in options), f"image {i} is no flip/shift"


def test_flip_alone_mirrors_about_half_and_keeps_the_rest():
    x = torch.rand(200, 1, 6, 6)
    out = augment_batch(x, "flip", torch.Generator().manual_seed(3))
    flipped = torch.tensor([torch.equal(o, i.flip(-1)) for o, i in zip(out, x)])
    kept = torch.tensor([torch.equal(o, i) for o, i in zip(out, x)])
    assert bool((flipped | kept).all())
    assert 60 < int(flipped.sum()) < 140


def test_crop_uses_all_offsets_and_zero_fill():
    x = torch.ones(400, 1, 8, 8)
    out = augment_batch(x, "crop", torch.Generator().manual_seed(0))
    # number of zero rows on top / left of each shifted all-ones image reveals the offset
    zero_rows = (out[:, 0].sum(dim=2) == 0).sum(dim=1)
    zero_cols = (out[:, 0].sum(dim=1) == 0).sum(dim=1)
    assert int(zero_rows.max()) == 4 and int(zero_cols.max()) == 4
    assert int((zero_rows == 0).sum()) > 0  # the centred crop happens too
    assert set(torch.unique(out).tolist()) <= {0.0, 1.0}


def test_same_generator_seed_same_augmentation():
    x = torch.rand(8, 3, 12, 12)
    a = augment_batch(x, "flip+crop", torch.Generator().manual_seed(5))
    b = augment_batch(x, "flip+crop", torch.Generator().manual_seed(5))
    c = augment_batch(x, "flip+crop", torch.Generator().manual_seed(6))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


@pytest.mark.parametrize("kind", [None, False, "none"])
def test_no_augmentation_returns_input(kind):
    x = torch.rand(2, 1, 5, 5)
    assert augment_batch(x, kind) is x


@pytest.mark.parametrize("kind", ["rotate", "flip+blur", 3])
def test_unknown_augmentation_is_a_clear_error(kind):
    with pytest.raises(TrainingConfigError, match="augment must be"):
        augment_batch(torch.rand(1, 1, 5, 5), kind)
