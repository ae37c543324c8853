"""Occlusion (Zeiler & Fergus 2014) and the perturbation machinery shared by the black-box explainers.

``Occlusion`` slides a ``patch`` over the image with a ``stride``, replaces the pixels under it (all
channels) by a ``baseline`` and records the drop of the target score ``f_c(x) - f_c(x_occluded)``. The
map of a pixel is the **average drop over the patches that cover it** (``B×1×H×W``). The last patch of
each row/column is aligned with the border, so sizes that are not a multiple of the stride are
covered completely. By default the window follows the image size (:func:`occlusion_window`): a patch of
about 1/8 of the side and half of it as stride, i.e. about 15 positions per side and ~226 forward passes
per image whatever the size (4-px patches, stride 2 at 32 px; 28-px patches, stride 14 at 224 px).

The private helpers below (targets and clean scores, baselines, blur, streaming of perturbed copies in
chunks of ``batch_size``) are also used by :mod:`.rise`, :mod:`.sobol` and :mod:`.hsic`.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from freqlens.attribution._batching import check_batch_size, resolve_batch_size
from freqlens.attribution.base import (
    Explainer,
    PassCount,
    check_images,
    check_score,
    check_target_range,
    eval_mode,
    predict,
    progress_bar,
    resolve_target,
    select_score,
)


# ---------------------------------------------------------------------------------------------- helpers
def _check_positive_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def count_for_size(reference: int, height: int, width: int, minimum: int, reference_side: int = 32) -> int:
    """A sample count that shrinks with the image area: ``reference`` at ``reference_side²`` pixels (and
    below), ``reference · reference_side² / (H·W)`` rounded half up above, never under ``minimum``.

    Keeps the cost of a Monte-Carlo explainer (passes × pixels per pass) near its 32-px cost up to the
    size where the ``minimum`` takes over (e.g. RISE: 8,000 masks at 32 px, 2,000 at 64 px, 500 from
    128 px on).
    """
    scaled = math.floor(reference * reference_side * reference_side / (height * width) + 0.5)
    return int(min(reference, max(minimum, scaled)))


def _pair(value: int | tuple[int, int], name: str) -> tuple[int, int]:
    """``int`` or ``(h, w)`` -> ``(h, w)`` of positive ints."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value, value)
    try:
        first, second = value  # type: ignore[misc]
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a positive int or a pair (h, w), got {value!r}") from None
    return _check_positive_int(first, name), _check_positive_int(second, name)


def _clean_scores(model: nn.Module, inputs: Tensor, target: Tensor | int | None, score: str,
                  batch_size: int) -> tuple[Tensor, Tensor]:
    """Target classes (``LongTensor[B]``, ``None`` = predicted) and their scores on the clean inputs."""
    logits = predict(model, inputs, batch_size)
    if logits.dim() != 2:
        raise ValueError(f"the model must return B×num_classes logits, got shape {tuple(logits.shape)}")
    if target is None:
        target = logits.argmax(dim=1)
    else:
        target = resolve_target(model, inputs, target, batch_size)
        check_target_range(target, logits.shape[1])
    return target, select_score(logits, target, score)


def _targets(model: nn.Module, inputs: Tensor, target: Tensor | int | None, batch_size: int) -> Tensor:
    """Target classes (``LongTensor[B]``) for the methods that need no clean score (RISE, Sobol, HSIC):
    one forward pass per image only when ``target`` is ``None`` (the predicted class); a given target is
    checked against the number of classes by the first perturbed pass."""
    if target is None:
        return predict(model, inputs, batch_size).argmax(dim=1)
    return resolve_target(model, inputs, target, batch_size)


def _baseline_tensor(baseline: float | Tensor, inputs: Tensor) -> Tensor:
    """A baseline (number, ``C×H×W``, ``1×C×H×W`` or ``B×C×H×W`` tensor) expanded to ``inputs``."""
    if isinstance(baseline, bool):
        raise TypeError(f"baseline must be a number or a tensor, got {baseline!r}")
    if isinstance(baseline, (int, float)):
        if not math.isfinite(baseline):
            raise ValueError(f"baseline must be finite, got {baseline}")
        return torch.full_like(inputs, float(baseline))
    if not isinstance(baseline, Tensor):
        raise TypeError(f"baseline must be a number or a tensor, got {type(baseline).__name__}")
    if not torch.isfinite(baseline).all():
        raise ValueError("baseline contains NaN or infinite values")
    baseline = baseline.to(device=inputs.device, dtype=inputs.dtype)
    try:
        return torch.broadcast_to(baseline, inputs.shape)
    except RuntimeError:
        raise ValueError(
            f"baseline of shape {tuple(baseline.shape)} cannot be broadcast to the inputs {tuple(inputs.shape)}"
        ) from None


def _gaussian_blur(inputs: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian blur (std ``sigma`` pixels, replicate padding) of a ``B×C×H×W`` batch."""
    if sigma <= 0:
        return inputs.clone()
    radius = max(1, math.ceil(3 * sigma))
    offsets = torch.arange(-radius, radius + 1, device=inputs.device, dtype=inputs.dtype)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    kernel = kernel / kernel.sum()
    channels = inputs.shape[1]
    out = inputs
    for dim in (2, 3):  # rows then columns; replicate padding repeated as needed for tiny images
        size = out.shape[dim]
        index = torch.arange(-radius, size + radius, device=inputs.device).clamp(0, size - 1)
        padded = out.index_select(dim, index)
        weight = kernel.view(1, 1, -1, 1) if dim == 2 else kernel.view(1, 1, 1, -1)
        out = F.conv2d(padded, weight.expand(channels, 1, *weight.shape[2:]), groups=channels)
    return out


def _references(perturbation: str, inputs: Tensor, baseline: float | Tensor, blur_sigma: float | None) -> Tensor:
    """What masked-out pixels become: the baseline (``"inpainting"``) or a blurred copy (``"blur"``)."""
    if perturbation == "inpainting":
        return _baseline_tensor(baseline, inputs)
    if perturbation == "blur":
        sigma = max(inputs.shape[-2:]) / 16 if blur_sigma is None else float(blur_sigma)
        return _gaussian_blur(inputs, sigma)
    raise ValueError(f"perturbation must be 'inpainting' or 'blur', got {perturbation!r}")


def _stream_scores(
    model: nn.Module,
    inputs: Tensor,
    references: Tensor,
    target: Tensor,
    n: int,
    masks_for: Callable[[Tensor], Tensor],
    score: str,
    batch_size: int,
    on_chunk: Callable[[Tensor, Tensor, Tensor], None] | None = None,
    progress: bool = False,
    desc: str = "perturbations",
) -> Tensor:
    """Scores ``B×n`` of the ``n`` perturbations of every image, streamed in chunks of ``batch_size``.

    Perturbation ``j`` of image ``b`` is ``x_b ⊙ m_j + r_b ⊙ (1 − m_j)`` with ``m_j = masks_for(j)``
    (``k×1×H×W``, 1 = keep) and ``r`` the ``references``. The ``B·n`` (image, mask) pairs are enumerated
    in one flat order and cut into chunks, so at most ``batch_size`` perturbed images exist at once and
    the result does not depend on ``batch_size``. ``on_chunk(images, scores, masks)`` lets a caller
    accumulate statistics (RISE) without keeping the masks.
    """
    batch = inputs.shape[0]
    total = batch * n
    scores = inputs.new_empty(batch * n)
    starts = range(0, total, batch_size)
    with torch.no_grad(), eval_mode(model):
        for start in progress_bar(starts, len(starts), progress, desc):
            flat = torch.arange(start, min(start + batch_size, total), device=inputs.device)
            images, ids = flat // n, flat % n
            masks = masks_for(ids).to(dtype=inputs.dtype)
            perturbed = torch.lerp(references[images], inputs[images], masks)  # r + m (x − r)
            chunk_scores = select_score(model(perturbed), target[images], score)
            scores[flat] = chunk_scores
            if on_chunk is not None:
                on_chunk(images, chunk_scores, masks)
    return scores.view(batch, n)


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

    Returns ``B×1×H×W`` maps; costs ``1 + P_h·P_w`` forwards per image (``P = ⌈(side − patch) / stride⌉
    + 1`` positions per side; with the defaults 226 for square sides that are multiples of 16:
    :meth:`planned_passes`).
    """

    per_channel = False
    family = "black-box"

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
        super().__init__(model)
        self.patch = None if patch is None else _pair(patch, "patch")
        self.stride = None if stride is None else _pair(stride, "stride")
        if self.patch is not None and self.stride is not None:
            _check_window(self.patch, self.stride)
        if not isinstance(baseline, Tensor):
            _baseline_tensor(baseline, torch.zeros(1, 1, 1, 1))  # validate numbers early
        self.baseline = baseline
        self.score = check_score(score)
        self.batch_size = check_batch_size(batch_size)
        self.progress = progress

    def window(self, height: int, width: int) -> tuple[tuple[int, int], tuple[int, int]]:
        """``(patch, stride)`` as ``(h, w)`` pairs on ``height×width`` images: the given ones, or the
        defaults of :func:`occlusion_window` (a given patch with ``stride=None`` gets half of it)."""
        if self.patch is None:
            patch = (occlusion_window(height)[0], occlusion_window(width)[0])
        else:
            patch = self.patch
        stride = self.stride if self.stride is not None else (max(1, patch[0] // 2), max(1, patch[1] // 2))
        _check_window(patch, stride)
        return patch, stride

    def planned_passes(self, height: int, width: int) -> PassCount:
        """``1 + P_h·P_w`` forward passes per image (the clean image and every patch position)."""
        (patch_h, patch_w), (stride_h, stride_w) = self.window(height, width)
        positions = len(_patch_starts(height, patch_h, stride_h)) * len(_patch_starts(width, patch_w, stride_w))
        return PassCount(forward=1 + positions, backward=0)

    def attribute(self, inputs: Tensor, target: Tensor | int | None = None) -> Tensor:
        inputs = check_images(inputs).detach()
        height, width = inputs.shape[-2:]
        patch, stride = self.window(height, width)
        rows = _patch_starts(height, patch[0], stride[0])
        cols = _patch_starts(width, patch[1], stride[1])
        device = inputs.device
        # cover_rows[p, i] = 1 when row i lies under the p-th vertical patch position (same for columns)
        cover_rows = _cover(rows, patch[0], height).to(device=device, dtype=inputs.dtype)
        cover_cols = _cover(cols, patch[1], width).to(device=device, dtype=inputs.dtype)
        n_cols = cover_cols.shape[0]

        def masks_for(ids: Tensor) -> Tensor:
            occluded = cover_rows[ids // n_cols][:, :, None] * cover_cols[ids % n_cols][:, None, :]
            return (1 - occluded)[:, None]

        chunk = resolve_batch_size(self.batch_size, self.model, inputs, backward=False)
        target, clean = _clean_scores(self.model, inputs, target, self.score, chunk)
        references = _baseline_tensor(self.baseline, inputs)
        occluded_scores = _stream_scores(
            self.model, inputs, references, target, cover_rows.shape[0] * n_cols, masks_for, self.score,
            chunk, progress=self.progress, desc="occlusion",
        )
        drops = (clean[:, None] - occluded_scores).view(-1, cover_rows.shape[0], n_cols)
        total = torch.einsum("ph,bpq,qw->bhw", cover_rows, drops, cover_cols)
        count = cover_rows.sum(0)[:, None] * cover_cols.sum(0)[None, :]
        return (total / count)[:, None]

    def __repr__(self) -> str:
        patch = "auto" if self.patch is None else self.patch
        stride = "auto" if self.stride is None else self.stride
        return f"Occlusion(patch={patch}, stride={stride}, score={self.score!r})"


def _check_window(patch: tuple[int, int], stride: tuple[int, int]) -> None:
    if stride[0] > patch[0] or stride[1] > patch[1]:
        raise ValueError(f"stride {stride} is larger than the patch {patch}: some pixels would never be occluded")


def _cover(starts: Tensor, patch: int, size: int) -> Tensor:
    """``len(starts)×size`` indicator of the pixels covered by each patch position."""
    pixels = torch.arange(size)
    return ((pixels[None, :] >= starts[:, None]) & (pixels[None, :] < starts[:, None] + patch)).float()
