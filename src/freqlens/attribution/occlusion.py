"""Occlusion (Zeiler & Fergus 2014) and the perturbation machinery shared by the black-box explainers.

``Occlusion`` slides a ``patch`` over the image with a ``stride``, replaces the pixels under it (all
channels) by a ``baseline`` and records the drop of the target score ``f_c(x) - f_c(x_occluded)``. The
map of a pixel is the **average drop over the patches that cover it** (``B×1×H×W``). The last patch of
each row/column is aligned with the border, so sizes that are not a multiple of the stride are
covered completely. By default the window follows the image size (:func:`occlusion_window`): a patch of
about 1/8 of the side and half of it as stride, i.e. about 15 positions per side and ~226 forward passes
per image whatever the size (4-px patches, stride 2 at 32 px; 28-px patches, stride 14 at 224 px).

Baselines, clean scores and the streamed perturb-and-score loop are the perturbation core of
:mod:`freqlens.utils.perturb`, shared with :mod:`.rise`, :mod:`.sobol`, :mod:`.hsic` and the faithfulness
metrics; :func:`pair`, :func:`count_for_size` and :class:`SizeScaledCount` are shared with the other black-box explainers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from freqlens.attribution.base import Call, Explainer, Family, PassCount, check_score
from freqlens.utils.perturb import check_baseline, clean_scores, resolve_baseline, score_perturbations
from freqlens.utils.tensors import check_positive_int


# ---------------------------------------------------------------------------------------------- helpers
def count_for_size(reference: int, height: int, width: int, minimum: int, reference_side: int = 32) -> int:
    """A sample count that shrinks with the image area.

    Keeps the cost of a Monte-Carlo explainer (passes × pixels per pass) near its 32-px cost up to the
    size where the ``minimum`` takes over (e.g. RISE: 8,000 masks at 32 px, 2,000 at 64 px, 500 from
    128 px on).

    Args:
        reference: the count at ``reference_side²`` pixels and below.
        height: image height ``H`` in pixels.
        width: image width ``W`` in pixels.
        minimum: the smallest count returned.
        reference_side: the side of the reference size, in pixels.

    Returns:
        ``reference · reference_side² / (H·W)`` rounded half up, at most ``reference`` and never under
            ``minimum``.
    """
    scaled = math.floor(reference * reference_side * reference_side / (height * width) + 0.5)
    return int(min(reference, max(minimum, scaled)))


@dataclass(frozen=True)
class SizeScaledCount:
    """The default sample count of a Monte-Carlo explainer: :func:`count_for_size` with fixed ``reference``
    and ``minimum``, called as ``count(height, width)``.

    Attributes:
        reference: the count at 32×32 px and below.
        minimum: the smallest count (that of large images).
    """

    reference: int
    minimum: int

    def __call__(self, height: int, width: int) -> int:
        """``min(reference, max(minimum, ⌊reference · 32² / (H·W) + ½⌋))`` for ``height×width`` images."""
        return count_for_size(self.reference, height, width, self.minimum)


def pair(value: int | tuple[int, int], name: str) -> tuple[int, int]:
    """``int`` or ``(h, w)`` -> ``(h, w)`` of positive ints.

    Args:
        value: a positive int (both sides) or a pair ``(h, w)``.
        name: how the error message calls it.

    Returns:
        ``(h, w)``.

    Raises:
        ValueError: not a positive int nor a pair of them.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value, value)
    try:
        first, second = value  # type: ignore[misc]
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a positive int or a pair (h, w), got {value!r}") from None
    return check_positive_int(name, first), check_positive_int(name, second)


# ---------------------------------------------------------------------------------------------- Occlusion
#: The default patch is about ``1 / OCCLUSION_FRACTION`` of the image side.
OCCLUSION_FRACTION = 8


def occlusion_window(size: int) -> tuple[int, int]:
    """The default ``(patch, stride)`` of :class:`Occlusion` along a side of ``size`` pixels.

    ``patch = max(1, ⌊size / 8 + ½⌋)`` (1/8 of the side, rounded half up) and ``stride = max(1,
    ⌊patch / 2⌋)`` (half-overlapping patches, as Captum and Xplique users set them): 15 positions per
    side when ``size`` is a multiple of 16, so ``1 + 15² = 226`` forward passes per square image at any
    size. 28 px: (4, 2); 32 px: (4, 2), as before this rule; 64 px: (8, 4); 224 px: (28, 14).
    """
    patch = max(1, math.floor(size / OCCLUSION_FRACTION + 0.5))
    return patch, max(1, patch // 2)


def _patch_starts(size: int, patch: int, stride: int) -> Tensor:
    """Start offsets ``0, stride, 2·stride, …`` plus a last patch flush with the border when needed."""
    if patch > size:
        raise ValueError(f"patch side {patch} is larger than the image side {size}")
    starts = list(range(0, size - patch + 1, stride))
    if starts[-1] + patch < size:
        starts.append(size - patch)
    return torch.tensor(starts)


class Occlusion(Explainer):
    """Sliding-patch occlusion (Zeiler & Fergus 2014): average score drop of the patches covering a pixel.

    Returns ``B×1×H×W`` maps; costs ``1 + P_h·P_w`` forwards per image (``P = ⌈(side − patch) / stride⌉
    + 1`` positions per side; with the defaults 226 for square sides that are multiples of 16:
    :meth:`planned_passes`).

    Args:
        model: classifier returning ``B×num_classes`` logits.
        patch: patch side (int) or ``(h, w)``; ``None`` (default): from the input size at attribution
            time, ``max(1, ⌊side / 8 + ½⌋)`` per side (:func:`occlusion_window`: 4 at 32 px, 28 at 224 px).
        stride: step between patches (int or ``(h, w)``, at most the patch); ``None`` (default): half the
            patch, ``max(1, ⌊patch / 2⌋)`` (2 at 32 px, 14 at 224 px). The last patch is aligned with
            the border.
        baseline: value of occluded pixels: a number or a tensor broadcastable to the inputs.
        score: ``"logit"`` (default, as Captum), ``"prob"`` or ``"log_prob"`` of the target.
        batch_size: max occluded images per forward pass (``None``: automatic, see ``_batching``).
        progress: show a tqdm bar over the forward chunks.

    Raises:
        ValueError: a bad ``patch`` / ``stride`` (a stride larger than the patch), ``baseline``, ``score``
            or ``batch_size``.
    """

    per_channel = False
    family = Family.BLACK_BOX
    name = "occlusion"
    predicts_target = True

    def __init__(
        self,
        model: nn.Module,
        patch: int | tuple[int, int] | None = None,
        stride: int | tuple[int, int] | None = None,
        baseline: float | Tensor = 0.0,
        score: str = "logit",
        batch_size: int | None = None,
        progress: bool = False,
    ) -> None:
        super().__init__(model, batch_size=batch_size, progress=progress)
        self.patch = None if patch is None else pair(patch, "patch")
        self.stride = None if stride is None else pair(stride, "stride")
        if self.patch is not None and self.stride is not None:
            _check_window(self.patch, self.stride)
        self.baseline = check_baseline(baseline)
        self.score = check_score(score)

    def window(self, height: int, width: int) -> tuple[tuple[int, int], tuple[int, int]]:
        """``(patch, stride)`` as ``(h, w)`` pairs on ``height×width`` images.

        Args:
            height: image height in pixels.
            width: image width in pixels.

        Returns:
            The given ones, or the defaults of :func:`occlusion_window` (a given patch with
                ``stride=None`` gets half of it).

        Raises:
            ValueError: the stride is larger than the patch.
        """
        if self.patch is None:
            patch = (occlusion_window(height)[0], occlusion_window(width)[0])
        else:
            patch = self.patch
        stride = self.stride if self.stride is not None else (max(1, patch[0] // 2), max(1, patch[1] // 2))
        _check_window(patch, stride)
        return patch, stride

    def planned_passes(self, height: int, width: int) -> PassCount:
        """``1 + P_h·P_w`` forward passes per image (the clean image and every patch position).

        Args:
            height: image height in pixels.
            width: image width in pixels.
        """
        (patch_h, patch_w), (stride_h, stride_w) = self.window(height, width)
        positions = len(_patch_starts(height, patch_h, stride_h)) * len(_patch_starts(width, patch_w, stride_w))
        return PassCount(forward=1 + positions, backward=0)

    def _attribute(self, call: Call) -> Tensor:
        inputs = call.inputs
        height, width = inputs.shape[-2:]
        patch, stride = self.window(height, width)
        rows = _patch_starts(height, patch[0], stride[0])
        cols = _patch_starts(width, patch[1], stride[1])
        device = inputs.device
        # cover_rows[p, i] = 1 when row i lies under the p-th vertical patch position (same for columns)
        cover_rows = _cover(rows, patch[0], height).to(device=device, dtype=inputs.dtype)
        cover_cols = _cover(cols, patch[1], width).to(device=device, dtype=inputs.dtype)
        n_cols = cover_cols.shape[0]

        def keep(images: Tensor, ids: Tensor) -> Tensor:
            occluded = cover_rows[ids // n_cols][:, :, None] * cover_cols[ids % n_cols][:, None, :]
            return (1 - occluded)[:, None]

        target, clean = clean_scores(self.model, inputs, call.target, self.score, call.chunk)
        occluded_scores = score_perturbations(
            self.model, inputs, resolve_baseline(self.baseline, inputs), target, cover_rows.shape[0] * n_cols,
            keep, self.score, call.chunk, progress=self.progress, desc="occlusion",
        )
        drops = (clean[:, None] - occluded_scores).view(-1, cover_rows.shape[0], n_cols)
        total = torch.einsum("ph,bpq,qw->bhw", cover_rows, drops, cover_cols)
        count = cover_rows.sum(0)[:, None] * cover_cols.sum(0)[None, :]
        return (total / count)[:, None]


def _check_window(patch: tuple[int, int], stride: tuple[int, int]) -> None:
    if stride[0] > patch[0] or stride[1] > patch[1]:
        raise ValueError(f"stride {stride} is larger than the patch {patch}: some pixels would never be occluded")


def _cover(starts: Tensor, patch: int, size: int) -> Tensor:
    """``len(starts)×size`` indicator of the pixels covered by each patch position."""
    pixels = torch.arange(size)
    return ((pixels[None, :] >= starts[:, None]) & (pixels[None, :] < starts[:, None] + patch)).float()
