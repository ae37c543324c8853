"""The perturbation core: what removed pixels become, and one streamed perturb-and-score loop.

Shared by the black-box explainers (Occlusion, RISE, Sobol, HSIC), Integrated Gradients' baseline and the
faithfulness metrics (Deletion, Insertion, MuFidelity), so that a baseline and a blur mean one thing
everywhere:

* :func:`resolve_baseline`: a number, a tensor broadcastable to the images, ``"zeros"``, ``"blur"`` (a
  Gaussian-blurred copy of each image) or ``"mean"`` (each image's per-channel mean) → a ``B×C×H×W``
  tensor (a broadcast view where possible).
* :func:`gaussian_blur`: the one Gaussian blur (std ``σ`` pixels, kernel radius ``⌊4σ + ½⌋`` as
  ``scipy.ndimage.gaussian_filter``, clipped to ``side − 1``, mirror padding without repeating the edge,
  i.e. ``torch``'s ``"reflect"``); :func:`default_blur_sigma` = ``min(H, W) / 16``.
* :func:`score_perturbations`: the scores of ``n`` perturbations ``r + m ⊙ (x − r)`` of every image,
  streamed in chunks of at most ``batch_size`` images in one flat (image, perturbation) order, so the
  result does not depend on ``batch_size``.

Imports torch and :mod:`freqlens.utils` only (bottom floor).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from freqlens.utils.progress import progress_bar
from freqlens.utils.scores import select_score
from freqlens.utils.tensors import eval_mode, predict, resolve_target

__all__ = [
    "BASELINES",
    "Baseline",
    "check_baseline",
    "check_blur_sigma",
    "clean_scores",
    "default_blur_sigma",
    "gaussian_blur",
    "resolve_baseline",
    "score_perturbations",
]

#: The named baselines of :func:`resolve_baseline` (besides numbers and tensors).
BASELINES = ("zeros", "blur", "mean")
#: Blur std as a fraction of the shorter image side (:func:`default_blur_sigma`).
BLUR_FRACTION = 16

Baseline = float | Tensor | Literal["zeros", "blur", "mean"]


def default_blur_sigma(height: int, width: int) -> float:
    """The blur std of the ``"blur"`` baseline when none is given.

    Args:
        height: image height ``H`` in pixels.
        width: image width ``W`` in pixels.

    Returns:
        ``min(H, W) / 16`` pixels (2 at 32 px).
    """
    return min(height, width) / BLUR_FRACTION


def check_blur_sigma(sigma: object) -> float | None:
    """Return ``sigma`` if it is ``None`` (the default blur) or a positive finite number of pixels.

    Args:
        sigma: the std of a Gaussian blur, in pixels.

    Returns:
        ``sigma`` unchanged.

    Raises:
        ValueError: not ``None`` and not a positive finite number (bools refused).
    """
    if sigma is not None and (isinstance(sigma, bool) or not isinstance(sigma, (int, float))
                              or not (sigma > 0 and math.isfinite(sigma))):
        raise ValueError(f"blur_sigma must be a positive number of pixels, got {sigma!r}")
    return sigma


def gaussian_blur(images: Tensor, sigma: float, truncate: float = 4.0) -> Tensor:
    """Separable Gaussian blur of ``B×C×H×W`` images, each channel on its own.

    Args:
        images: ``B×C×H×W`` floating batch.
        sigma: std in pixels (> 0, finite).
        truncate: kernel radius ``⌊truncate·σ + ½⌋`` per axis (as ``scipy.ndimage.gaussian_filter``),
            clipped to ``side − 1`` so that the mirror padding (``"reflect"``: ``c b | a b c``) exists.

    Returns:
        ``B×C×H×W``; kernel weights computed in float64 and normalised to sum 1.

    Raises:
        ValueError: ``sigma`` is not a positive finite number.
    """
    check_blur_sigma(sigma)
    batch, channels, height, width = images.shape
    out = images.reshape(batch * channels, 1, height, width)
    for axis, size in ((2, height), (3, width)):
        radius = min(int(truncate * sigma + 0.5), size - 1)
        if radius == 0:
            continue
        offsets = torch.arange(-radius, radius + 1, device=images.device, dtype=torch.float64)
        kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
        kernel = (kernel / kernel.sum()).to(images.dtype)
        if axis == 2:
            out = F.conv2d(F.pad(out, (0, 0, radius, radius), mode="reflect"), kernel.view(1, 1, -1, 1))
        else:
            out = F.conv2d(F.pad(out, (radius, radius, 0, 0), mode="reflect"), kernel.view(1, 1, 1, -1))
    return out.reshape(batch, channels, height, width)


def check_baseline(baseline: object) -> Baseline:
    """Validate a baseline without images (numbers finite, tensors floating and finite, names known).

    Returns:
        The baseline, with ``"zeros"`` (or ``"zero"``) as ``0.0`` and numbers as ``float``.

    Raises:
        TypeError: not a number, a tensor or a name.
        ValueError: NaN / infinite values, a bool or complex tensor, or an unknown name.
    """
    expected = "a number, a tensor, 'zeros', 'blur' or 'mean'"
    if isinstance(baseline, str):
        if baseline not in BASELINES and baseline != "zero":
            raise ValueError(f"unknown baseline {baseline!r}; expected {expected}")
        return 0.0 if baseline in ("zeros", "zero") else baseline  # type: ignore[return-value]
    if isinstance(baseline, bool) or not isinstance(baseline, (int, float, Tensor)):
        raise TypeError(f"baseline must be {expected}, got {type(baseline).__name__}")
    if isinstance(baseline, Tensor):
        if not baseline.is_floating_point():  # integer pixels (0–255?) are not in the [0, 1] convention
            raise ValueError(f"baseline must be a floating tensor, got dtype {baseline.dtype}")
        if not bool(torch.isfinite(baseline).all()):
            raise ValueError("baseline contains NaN or infinite values")
        return baseline
    if not math.isfinite(baseline):
        raise ValueError(f"baseline must be finite, got {baseline}")
    return float(baseline)


def resolve_baseline(baseline: Baseline, inputs: Tensor, blur_sigma: float | None = None) -> Tensor:
    """What removed pixels become, as a ``B×C×H×W`` tensor for ``inputs``.

    Args:
        baseline: a number (every pixel), a tensor broadcastable to ``inputs`` (``C×H×W``, ``1×C×H×W``,
            ``B×C×H×W``...), ``"zeros"`` (= 0), ``"blur"`` (:func:`gaussian_blur` of each image, std
            ``blur_sigma``, default :func:`default_blur_sigma`) or ``"mean"`` (each image's mean per channel).
        inputs: ``B×C×H×W`` images.
        blur_sigma: std in pixels of the ``"blur"`` baseline; ignored by the others.

    Returns:
        ``B×C×H×W`` on the inputs' device and dtype; a broadcast view (no copy) for numbers and tensors.

    Raises:
        TypeError: see :func:`check_baseline`.
        ValueError: see :func:`check_baseline`, or a tensor that cannot be broadcast to ``inputs``.
    """
    baseline = check_baseline(baseline)
    if baseline == "blur":
        sigma = default_blur_sigma(*inputs.shape[-2:]) if blur_sigma is None else blur_sigma
        return gaussian_blur(inputs.detach(), sigma)
    if baseline == "mean":
        return inputs.detach().mean(dim=(2, 3), keepdim=True).expand(inputs.shape)
    if isinstance(baseline, float):
        return torch.full((), baseline, dtype=inputs.dtype, device=inputs.device).expand(inputs.shape)
    try:
        return torch.broadcast_to(baseline.detach().to(device=inputs.device, dtype=inputs.dtype), inputs.shape)
    except RuntimeError:
        raise ValueError(
            f"baseline of shape {tuple(baseline.shape)} does not broadcast to the inputs' shape {tuple(inputs.shape)}"
        ) from None


def clean_scores(
    model: Callable[[Tensor], Tensor], inputs: Tensor, target: Tensor | int | None, score: str,
    batch_size: int | None,
) -> tuple[Tensor, Tensor]:
    """The target classes and their scores on the unperturbed ``inputs``, from one forward pass per image.

    Args:
        model: classifier returning ``B×K`` logits (run in eval mode, without gradients).
        inputs: ``B×C×H×W`` images.
        target: ``LongTensor[B]``, an int, or ``None`` = the predicted class (from the same pass).
        score: see :func:`~freqlens.utils.scores.select_score`.
        batch_size: most images per forward pass (``None``: all).

    Returns:
        ``(target LongTensor[B], scores Tensor[B])``.
    """
    logits = predict(model, inputs, batch_size)  # type: ignore[arg-type]
    target = logits.argmax(dim=1) if target is None else resolve_target(model, inputs, target, batch_size)  # type: ignore[arg-type]
    return target, select_score(logits, target, score)


def score_perturbations(
    model: Callable[[Tensor], Tensor],
    inputs: Tensor,
    references: Tensor,
    target: Tensor,
    n: int,
    keep: Callable[[Tensor, Tensor], Tensor],
    score: str,
    batch_size: int,
    *,
    dtype: torch.dtype | None = None,
    on_chunk: Callable[[Tensor, Tensor, Tensor], None] | None = None,
    progress: bool = False,
    desc: str = "perturbations",
) -> Tensor:
    """Target scores of ``n`` perturbations of every image, streamed ``batch_size`` images at a time.

    Perturbation ``j`` of image ``b`` is ``r_b + m ⊙ (x_b − r_b)`` with ``m = keep(images, ids)`` for the
    chunk's ``(b, j)`` pairs (``k×1×H×W`` or ``k×C×H×W``; 1 / ``True`` = keep the pixel, 0 / ``False`` =
    take the reference). Boolean masks select exactly (``torch.where``); float masks blend
    (``torch.lerp``, exact at 0 and 1). The ``B·n`` pairs are enumerated in one flat order (``b·n + j``) and
    cut into chunks, so at most ``batch_size`` perturbed images exist at once and the result does not
    depend on ``batch_size``. Runs under ``torch.no_grad()``, a module ``model`` in eval mode (restored).

    Args:
        model: classifier returning ``B×K`` logits.
        inputs: ``B×C×H×W`` images.
        references: ``B×C×H×W`` (from :func:`resolve_baseline`).
        target: ``LongTensor[B]``.
        n: perturbations per image.
        keep: ``(images: LongTensor[k], ids: LongTensor[k]) → mask`` for the chunk's pairs.
        score: see :func:`~freqlens.utils.scores.select_score`.
        batch_size: most perturbed images per forward pass.
        dtype: of the returned scores (default: the inputs').
        on_chunk: ``(images, scores, masks)`` after every chunk, to accumulate statistics (RISE).
        progress: show a tqdm bar over the chunks, labelled ``desc``.
        desc: the bar's label.

    Returns:
        ``B×n`` scores.
    """
    batch = inputs.shape[0]
    total = batch * n
    scores = torch.empty(total, dtype=dtype or inputs.dtype, device=inputs.device)
    starts = range(0, total, batch_size)
    with torch.no_grad(), _eval_mode_of(model):
        for start in progress_bar(starts, len(starts), progress, desc):
            flat = torch.arange(start, min(start + batch_size, total), device=inputs.device)
            images, ids = flat // n, flat % n
            masks = keep(images, ids)
            if masks.dtype == torch.bool:
                perturbed = torch.where(masks, inputs[images], references[images])
            else:
                masks = masks.to(dtype=inputs.dtype)
                perturbed = torch.lerp(references[images], inputs[images], masks)
            chunk_scores = select_score(model(perturbed), target[images], score)
            scores[start:start + flat.numel()] = chunk_scores.to(scores.dtype)
            if on_chunk is not None:
                on_chunk(images, chunk_scores, masks)
    return scores.view(batch, n)


def _eval_mode_of(model: Callable[[Tensor], Tensor]) -> contextlib.AbstractContextManager:
    """:func:`~freqlens.utils.tensors.eval_mode` for a module; nothing for another callable (its caller
    sets the mode of the modules it wraps)."""
    return eval_mode(model) if isinstance(model, nn.Module) else contextlib.nullcontext()
