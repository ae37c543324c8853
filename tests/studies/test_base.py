"""Study helpers: random subsets that do not follow the class order of image folders."""

from __future__ import annotations

import pytest
import torch

from freqlens.errors import FreqlensError
from freqlens.studies.base import pick_indices


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
