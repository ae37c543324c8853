"""Which images to use: random, seeded subsets instead of "the first n".

Image folders (and the CIFAR-10 archive) list their images class by class, so the first ``n`` images of
a split are one or two classes; every command and study picks its images with :func:`pick_indices`.
"""

from __future__ import annotations

import torch

from freqlens.errors import DataError

__all__ = ["pick_indices"]


def pick_indices(total: int, n: int, seed: int, skip: int = 0) -> list[int]:
    """``n`` distinct indices of ``range(total)`` drawn at random from ``seed``, in increasing order.

    They are entries ``skip .. skip + n`` of one seeded permutation, so calls with the same ``seed`` and
    non-overlapping ``[skip, skip + n)`` give disjoint sets (e.g. evaluated images and held-out
    calibration images: ``pick_indices(N, n, s)`` and ``pick_indices(N, m, s, skip=n)``)."""
    if skip < 0 or not 0 < n <= total - skip:
        raise DataError(f"cannot pick {n} of {total} images after skipping {skip}: expected 1..{total - skip}"
                        if skip else f"cannot pick {n} of {total} images: expected 1..{total}")
    generator = torch.Generator().manual_seed(int(seed))
    return sorted(torch.randperm(total, generator=generator)[skip:skip + n].tolist())
