"""pick_indices and mean_image: which images, and their mean image x̄."""

from __future__ import annotations

import pytest
import torch

from freqlens.data import pick_indices
from freqlens.errors import FreqlensError


def test_pick_indices_is_a_seeded_sorted_subset():
    picked = pick_indices(1000, 50, seed=3)
    assert picked == sorted(set(picked)) and len(picked) == 50 and 0 <= picked[0] and picked[-1] < 1000
    assert pick_indices(1000, 50, seed=3) == picked
    assert pick_indices(1000, 50, seed=4) != picked
    assert pick_indices(7, 7, seed=0) == list(range(7))


def test_pick_indices_covers_classes_of_a_class_sorted_folder():
    labels = torch.arange(10).repeat_interleave(100)  # image folders list class 0 first, then 1, ...
    assert set(labels[:100].tolist()) == {0}  # "the first n" would be one class
    assert set(labels[pick_indices(1000, 100, seed=0)].tolist()) == set(range(10))


@pytest.mark.parametrize("n", [0, -1, 11])
def test_pick_indices_rejects_impossible_sizes(n):
    with pytest.raises(FreqlensError, match="cannot pick"):
        pick_indices(10, n, seed=0)


def test_pick_indices_with_skip_gives_disjoint_sets_of_one_permutation():
    evaluated = pick_indices(100, 30, seed=5)
    held_out = pick_indices(100, 20, seed=5, skip=30)
    assert not set(evaluated) & set(held_out) and len(held_out) == 20
    assert sorted(evaluated + pick_indices(100, 70, seed=5, skip=30)) == list(range(100))
    with pytest.raises(FreqlensError, match="after skipping 90"):
        pick_indices(100, 20, seed=5, skip=90)


def test_pick_indices_exclude_keeps_a_later_draw_disjoint():
    held_out = pick_indices(100, 40, seed=0, skip=10)
    for seed in range(1, 6):
        evaluated = pick_indices(100, 30, seed, exclude=held_out)
        assert len(evaluated) == 30 and not set(evaluated) & set(held_out)
    assert pick_indices(100, 30, seed=3, exclude=()) == pick_indices(100, 30, seed=3)  # no exclude: same draw
    assert sorted(pick_indices(100, 60, seed=2, exclude=held_out) + held_out) == list(range(100))
    with pytest.raises(FreqlensError, match="cannot pick 61 of 60"):
        pick_indices(100, 61, seed=2, exclude=held_out)


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_mean_image_matches_a_direct_mean_in_any_chunking(dtype):
    from freqlens.data import mean_image

    images = torch.randint(0, 256, (37, 3, 5, 4), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    data = images if dtype == torch.uint8 else images.float() / 255
    expected = images.double().mean(dim=0) / 255
    for chunk in (1, 8, 4096):
        torch.testing.assert_close(mean_image(data, chunk=chunk).double(), expected, rtol=0, atol=1e-6)
    with pytest.raises(FreqlensError, match="N×C×H×W"):
        mean_image(images[0])
