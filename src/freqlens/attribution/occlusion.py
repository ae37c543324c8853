"""Occlusion (Zeiler & Fergus 2014) and the perturbation machinery shared by the black-box explainers.

``Occlusion`` slides a ``patch`` over the image with a ``stride``, replaces the pixels under it (all
channels) by a ``baseline`` and records the drop of the target score ``f_c(x) - f_c(x_occluded)``. The
map of a pixel is the **average drop over the patches that cover it** (``B×1×H×W``). The last patch of
each row/column is aligned with the border, so sizes that are not a multiple of the stride are
covered completely.

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
        patch: patch side (int) or ``(h, w)``.
        stride: step between patches (int or ``(h, w)``, at most the patch); the last patch is aligned
            with the border.
        baseline: value of occluded pixels: a number or a tensor broadcastable to the inputs.
        score: ``"logit"`` (default, as Captum), ``"prob"`` or ``"log_prob"`` of the target.
        batch_size: max occluded images per forward pass (``None``: automatic, see ``_batching``).
        progress: show a tqdm bar over the forward chunks.

    Returns ``B×1×H×W`` maps; costs ``1 + P_h·P_w`` forwards per image.
    """

    per_channel = False
    family = "black-box"

    def __init__(
        self,
        model: nn.Module,
        patch: int | tuple[int, int] = 4,
        stride: int | tuple[int, int] = 2,
        baseline: float | Tensor = 0.0,
        score: str = "logit",
        batch_size: int | None = None,
        progress: bool = False,
    ) -> None:
        super().__init__(model)
        self.patch = _pair(patch, "patch")
        self.stride = _pair(stride, "stride")
        if self.stride[0] > self.patch[0] or self.stride[1] > self.patch[1]:
            raise ValueError(
                f"stride {self.stride} is larger than the patch {self.patch}: some pixels would never be occluded"
            )
        if not isinstance(baseline, Tensor):
            _baseline_tensor(baseline, torch.zeros(1, 1, 1, 1))  # validate numbers early
        self.baseline = baseline
        self.score = check_score(score)
        self.batch_size = check_batch_size(batch_size)
        self.progress = progress

    def attribute(self, inputs: Tensor, target: Tensor | int | None = None) -> Tensor:
        inputs = check_images(inputs).detach()
        height, width = inputs.shape[-2:]
        rows = _patch_starts(height, self.patch[0], self.stride[0])
        cols = _patch_starts(width, self.patch[1], self.stride[1])
        device = inputs.device
        # cover_rows[p, i] = 1 when row i lies under the p-th vertical patch position (same for columns)
        cover_rows = _cover(rows, self.patch[0], height).to(device=device, dtype=inputs.dtype)
        cover_cols = _cover(cols, self.patch[1], width).to(device=device, dtype=inputs.dtype)
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
        return f"Occlusion(patch={self.patch}, stride={self.stride}, score={self.score!r})"


def _cover(starts: Tensor, patch: int, size: int) -> Tensor:
    """``len(starts)×size`` indicator of the pixels covered by each patch position."""
    pixels = torch.arange(size)
    return ((pixels[None, :] >= starts[:, None]) & (pixels[None, :] < starts[:, None] + patch)).float()
