"""Which images to use: random, seeded subsets instead of "the first n".

Image folders (and the CIFAR-10 archive) list their images class by class, so the first ``n`` images of
a split are one or two classes; every command and study picks its images with :func:`pick_indices` (the
commands with :func:`pick_images`, which loads them).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from freqlens.errors import DataError

if TYPE_CHECKING:
    from freqlens.data.dataset import ImageDataset

__all__ = ["pick_images", "pick_indices"]


def pick_indices(total: int, n: int, seed: int, skip: int = 0, exclude: Iterable[int] = ()) -> list[int]:
    """``n`` distinct indices of ``range(total)`` drawn at random from ``seed``, in increasing order.

    They are entries ``skip .. skip + n`` of one seeded permutation from which the indices of ``exclude``
    were removed, so calls with the same ``seed`` and non-overlapping ``[skip, skip + n)`` give disjoint
    sets (e.g. evaluated images and held-out calibration images: ``pick_indices(N, n, s)`` and
    ``pick_indices(N, m, s, skip=n)``), and ``exclude=held_out`` keeps a draw of another seed disjoint from
    a set drawn before (without ``exclude`` the draw is the same as before).

    Args:
        total: The number of items to draw from.
        n: How many.
        seed: Seeds the permutation.
        skip: The first entry of the permutation taken.
        exclude: Indices never drawn.

    Returns:
        The indices, sorted.

    Raises:
        DataError: Fewer than ``skip + n`` items are left to draw from, or ``n < 1``.
    """
    excluded = {int(i) for i in exclude}
    available = total - len({i for i in excluded if 0 <= i < total})
    if skip < 0 or not 0 < n <= available - skip:
        raise DataError(f"cannot pick {n} of {available} images after skipping {skip}: expected 1..{available - skip}"
                        if skip or excluded else f"cannot pick {n} of {total} images: expected 1..{total}")
    generator = torch.Generator().manual_seed(int(seed))
    order = torch.randperm(total, generator=generator)
    if excluded:
        keep = torch.ones(total, dtype=torch.bool)
        keep[torch.tensor(sorted(i for i in excluded if 0 <= i < total), dtype=torch.long)] = False
        order = order[keep[order]]
    return sorted(order[skip:skip + n].tolist())


def pick_images(dataset: ImageDataset, count: int, seed: int, device: torch.device | str,
                skip: int = 0) -> tuple[Tensor, Tensor]:
    """``count`` images of ``dataset`` drawn at random from ``seed``, not the first ``count`` (image folders
    list their images class by class).

    Args:
        dataset: The dataset.
        count: How many images.
        seed: Seeds the draw (:func:`pick_indices`).
        device: Where the images and labels go.
        skip: Take entries ``skip ..`` of the seeded permutation (a draw disjoint from one with ``skip=0``).

    Returns:
        ``(images, labels)``: float ``B×C×H×W`` in [0, 1] and the labels, on ``device``.
    """
    chosen = pick_indices(len(dataset), count, seed, skip=skip)
    return dataset.float_images(chosen).to(device), dataset.labels[chosen].to(device)
