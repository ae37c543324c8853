"""Faithfulness metrics of attribution maps: Deletion, Insertion and MuFidelity.

* **Deletion / Insertion** (Petsiuk et al. 2018, "RISE"): pixels are ranked by the channel-reduced
  attribution map; at ``steps + 1`` evenly spaced fractions ``k / steps`` the top pixels (all channels)
  are replaced by the baseline (Deletion) or revealed over the baseline (Insertion); the area under
  the curve of the target score (trapezoid rule on ``[0, 1]``) is one value per image. Lower Deletion
  and higher Insertion are better.
* **MuFidelity** (Bhatt et al. 2020): the correlation, over random subsets of a ``grid×grid`` cell grid,
  between the sum of the attributions of the removed pixels and the drop of the target score.
* **Global score** of seed 001 (FORGrad, Table 2): ``Insertion + Fidelity − Deletion``.

All metrics stream: the perturbed images (``image × step`` or ``image × sample`` pairs) are generated
chunk by chunk with at most ``batch_size`` images per forward pass, in a fixed order, so the results do
not depend on ``batch_size``. The model is put in eval mode for the call (every module's flag is
restored afterwards) and no gradient is recorded. This module imports nothing of freqlens beyond
the standard library and torch (layering: ``metrics`` may only depend on ``spectral``); the small
helpers below (target resolution, channel reduction, chunking) are shared by the metrics subpackage.
"""

from __future__ import annotations

import math
import warnings
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from freqlens.utils.tensors import (
    REDUCTIONS,
    check_images,
    chunks,
    eval_mode,
    reduce_channels,
    resolve_target,
)

__all__ = [
    "REDUCTIONS",
    "SCORES",
    "deletion",
    "global_score",
    "insertion",
    "mufidelity",
]

#: Target scores the metrics can read from the model output.
SCORES = ("prob", "logit")
#: Correlations of :func:`mufidelity`.
CORRELATIONS = ("pearson", "spearman")

Baseline = float | Tensor | Literal["blur"]


# --------------------------------------------------------------------------------------------------
# Shared private helpers (used by every metric of this subpackage)
# --------------------------------------------------------------------------------------------------
def _check_model(model: object) -> nn.Module:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    return model


def _check_batch_size(batch_size: int | None, default: int) -> int:
    """``None`` → ``default``; otherwise a positive int."""
    if batch_size is None:
        return max(int(default), 1)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
        raise ValueError(f"batch_size must be a positive integer or None, got {batch_size!r}")
    return batch_size


def _check_score(score: str) -> str:
    if score not in SCORES:
        raise ValueError(f"unknown score {score!r}; expected one of {', '.join(SCORES)}")
    return score


def _logits(model: nn.Module, batch: Tensor) -> Tensor:
    out = model(batch)
    if not isinstance(out, Tensor) or out.dim() != 2 or out.shape[0] != batch.shape[0]:
        shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise ValueError(f"the model must return logits of shape [batch, classes], got {shape}")
    return out


def _target_score(logits: Tensor, target: Tensor, score: str) -> Tensor:
    """Score of ``target`` per row: softmax probability (``"prob"``) or raw logit (``"logit"``)."""
    if int(target.max()) >= logits.shape[1]:
        raise ValueError(
            f"target class {int(target.max())} is out of range for a model with {logits.shape[1]} outputs"
        )
    values = logits.float() if logits.dtype in (torch.float16, torch.bfloat16) else logits
    if score == "prob":
        values = values.softmax(dim=1)
    return values.gather(1, target[:, None])[:, 0]


def _check_attributions(attributions: object, inputs: Tensor, reduce: str) -> Tensor:
    """Validate maps against ``inputs`` and return the channel-reduced ``B×H×W`` map.

    Accepted shapes: ``B×C×H×W`` (C = the inputs' channels), ``B×1×H×W`` or ``B×H×W``.
    """
    if not isinstance(attributions, Tensor):
        raise TypeError(f"attributions must be a torch.Tensor, got {type(attributions).__name__}")
    if reduce not in REDUCTIONS:
        raise ValueError(f"unknown channel reduction {reduce!r}; expected one of {', '.join(REDUCTIONS)}")
    batch, channels, height, width = inputs.shape
    maps = attributions.unsqueeze(1) if attributions.dim() == 3 else attributions
    if (
        maps.dim() != 4
        or maps.shape[0] != batch
        or maps.shape[1] not in (1, channels)
        or tuple(maps.shape[-2:]) != (height, width)
    ):
        raise ValueError(
            f"attributions of shape {tuple(attributions.shape)} do not match inputs of shape "
            f"{tuple(inputs.shape)}; expected {batch}×{channels}×{height}×{width}, "
            f"{batch}×1×{height}×{width} or {batch}×{height}×{width}"
        )
    if not (maps.is_floating_point() or maps.dtype in (torch.int32, torch.int64, torch.uint8, torch.bool)):
        raise ValueError(f"attributions must be a real tensor, got dtype {attributions.dtype}")
    maps = maps.to(device=inputs.device)
    if not maps.is_floating_point():
        maps = maps.to(inputs.dtype)
    if not bool(torch.isfinite(maps).all()):
        raise ValueError("attributions contain NaN or infinite values")
    return reduce_channels(maps.detach(), reduce)


def _gaussian_blur(inputs: Tensor, sigma: float, truncate: float = 4.0) -> Tensor:
    """Separable Gaussian blur of ``B×C×H×W`` images (std ``sigma`` pixels, mirror padding).

    The kernel has radius ``int(truncate·σ + 0.5)`` (as ``scipy.ndimage.gaussian_filter``), clipped to
    ``size − 1`` per axis so that the mirror padding exists; weights are normalised to sum 1.
    """
    if not (sigma > 0 and math.isfinite(sigma)):
        raise ValueError(f"blur_sigma must be a positive number of pixels, got {sigma}")
    batch, channels, height, width = inputs.shape
    out = inputs.reshape(batch * channels, 1, height, width)
    for axis, size in ((2, height), (3, width)):
        radius = min(int(truncate * sigma + 0.5), size - 1)
        if radius == 0:
            continue
        offsets = torch.arange(-radius, radius + 1, device=inputs.device, dtype=torch.float64)
        kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
        kernel = (kernel / kernel.sum()).to(inputs.dtype)
        if axis == 2:
            out = F.conv2d(F.pad(out, (0, 0, radius, radius), mode="reflect"), kernel.view(1, 1, -1, 1))
        else:
            out = F.conv2d(F.pad(out, (radius, radius, 0, 0), mode="reflect"), kernel.view(1, 1, 1, -1))
    return out.reshape(batch, channels, height, width)


def _resolve_baseline(baseline: Baseline, inputs: Tensor, blur_sigma: float | None) -> Tensor:
    """The baseline as a tensor broadcast (a view, no copy) to the inputs' shape."""
    if isinstance(baseline, str):
        if baseline != "blur":
            raise ValueError(f"unknown baseline {baseline!r}; expected a number, a tensor or 'blur'")
        sigma = min(inputs.shape[-2:]) / 16.0 if blur_sigma is None else float(blur_sigma)
        return _gaussian_blur(inputs, sigma)
    if isinstance(baseline, bool):
        raise TypeError("baseline must be a number, a tensor or 'blur', got a bool")
    if isinstance(baseline, (int, float)):
        if not math.isfinite(baseline):
            raise ValueError(f"baseline must be finite, got {baseline}")
        return torch.full((), float(baseline), dtype=inputs.dtype, device=inputs.device).expand(inputs.shape)
    if not isinstance(baseline, Tensor):
        raise TypeError(f"baseline must be a number, a tensor or 'blur', got {type(baseline).__name__}")
    if not bool(torch.isfinite(baseline).all()):
        raise ValueError("baseline contains NaN or infinite values")
    try:
        return torch.broadcast_to(baseline.to(device=inputs.device, dtype=inputs.dtype), inputs.shape)
    except RuntimeError as err:
        raise ValueError(
            f"baseline of shape {tuple(baseline.shape)} cannot be broadcast to inputs of shape {tuple(inputs.shape)}"
        ) from err


def _result_dtype(inputs: Tensor) -> torch.dtype:
    """Scores are returned in float64 for float64 inputs, float32 otherwise."""
    return torch.float64 if inputs.dtype == torch.float64 else torch.float32


def _progress(total: int, desc: str, enabled: bool) -> tqdm:
    return tqdm(total=total, desc=desc, unit="img", leave=False, disable=not enabled)


# --------------------------------------------------------------------------------------------------
# Deletion / Insertion
# --------------------------------------------------------------------------------------------------
def _trapezoid(curves: Tensor) -> Tensor:
    """Trapezoid AUC of ``[B, steps + 1]`` curves sampled at ``k / steps`` on ``[0, 1]``."""
    steps = curves.shape[1] - 1
    return (curves.sum(dim=1) - 0.5 * (curves[:, 0] + curves[:, -1])) / steps


def _pixel_counts(steps: int, pixels: int, device: torch.device | str | None = None) -> Tensor:
    """Number of perturbed pixels at each step: ``round(k · pixels / steps)`` (halves up), ``k = 0..steps``."""
    k = torch.arange(steps + 1, device=device, dtype=torch.long)
    return torch.div(2 * k * pixels + steps, 2 * steps, rounding_mode="floor")


@torch.no_grad()
def _perturbation_curve(
    mode: str,
    model: nn.Module,
    inputs: Tensor,
    target: Tensor | int | None,
    attributions: Tensor,
    steps: int,
    baseline: Baseline,
    score: str,
    batch_size: int | None,
    reduce: str,
    blur_sigma: float | None,
    return_curves: bool,
    progress: bool,
) -> Tensor | tuple[Tensor, Tensor]:
    model = _check_model(model)
    inputs = check_images(inputs)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    score = _check_score(score)
    batch, _, height, width = inputs.shape
    chunk = _check_batch_size(batch_size, batch)
    saliency = _check_attributions(attributions, inputs, reduce)
    fill = _resolve_baseline(baseline, inputs, blur_sigma)
    pixels = height * width

    # Rank of every pixel in the (stable, descending) order of the map: rank 0 = most important;
    # ties keep the pixel index order, so the order is deterministic.
    order = torch.sort(saliency.reshape(batch, pixels), dim=1, descending=True, stable=True).indices
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(pixels, device=order.device).expand(batch, pixels))
    counts = _pixel_counts(steps, pixels, inputs.device)

    per_image = steps + 1
    with eval_mode(model):
        target = resolve_target(model, inputs, target, chunk)
        curves = torch.empty(batch * per_image, dtype=_result_dtype(inputs), device=inputs.device)
        with _progress(batch * per_image, mode, progress) as bar:
            for part in chunks(batch * per_image, chunk):
                pair = torch.arange(part.start, part.stop, device=inputs.device)
                image, step = pair // per_image, pair % per_image
                selected = (ranks[image] < counts[step, None]).view(-1, 1, height, width)
                if mode == "deletion":
                    perturbed = torch.where(selected, fill[image], inputs[image])
                else:
                    perturbed = torch.where(selected, inputs[image], fill[image])
                curves[part] = _target_score(_logits(model, perturbed), target[image], score).to(curves.dtype)
                bar.update(part.stop - part.start)
    curves = curves.view(batch, per_image)
    auc = _trapezoid(curves)
    return (auc, curves) if return_curves else auc


def deletion(
    model: nn.Module,
    inputs: Tensor,
    target: Tensor | int | None,
    attributions: Tensor,
    steps: int = 20,
    baseline: Baseline = 0.0,
    score: str = "prob",
    batch_size: int | None = None,
    *,
    reduce: str = "sum",
    blur_sigma: float | None = None,
    return_curves: bool = False,
    progress: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """Deletion AUC (RISE, Petsiuk et al. 2018), one value per image — lower is better.

    Args:
        model: classifier returning logits ``[N, classes]``; in eval mode during the call (restored).
        inputs: ``B×C×H×W`` images in [0, 1].
        target: ``LongTensor[B]``, an int, or ``None`` = the predicted class on ``inputs``.
        attributions: ``B×C×H×W``, ``B×1×H×W`` or ``B×H×W`` maps; reduced over channels by ``reduce``
            (default ``"sum"``: the signed map, the RISE convention) and ranked in decreasing order
            (stable sort: ties go by pixel index, row-major).
        steps: the curve has ``steps + 1`` points ``k / steps``; at point ``k`` the top
            ``round(k·H·W / steps)`` pixels (all channels) are replaced by the baseline.
        baseline: a number, a tensor broadcastable to ``inputs``, or ``"blur"`` (a Gaussian-blurred copy
            of each image, std ``blur_sigma`` pixels, default ``min(H, W) / 16``).
        score: ``"prob"`` (softmax probability of the target) or ``"logit"``.
        batch_size: most perturbed images per forward pass (default ``None`` = ``B``, the memory of one
            forward pass of ``inputs``); the result does not depend on it.
        return_curves: also return the curves ``[B, steps + 1]``.
        progress: show a tqdm bar on stderr.

    Returns:
        ``Tensor[B]`` (trapezoid AUC over ``[0, 1]``), or ``(auc, curves)``. Exactly ``B·(steps + 1)``
        images go through the model (plus ``B`` when ``target`` is ``None``).
    """
    return _perturbation_curve("deletion", model, inputs, target, attributions, steps, baseline, score,
                               batch_size, reduce, blur_sigma, return_curves, progress)


def insertion(
    model: nn.Module,
    inputs: Tensor,
    target: Tensor | int | None,
    attributions: Tensor,
    steps: int = 20,
    baseline: Baseline = 0.0,
    score: str = "prob",
    batch_size: int | None = None,
    *,
    reduce: str = "sum",
    blur_sigma: float | None = None,
    return_curves: bool = False,
    progress: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """Insertion AUC (RISE, Petsiuk et al. 2018), one value per image — higher is better.

    Starts from the baseline (``0.0`` by default; ``"blur"`` is the canonical RISE choice) and reveals
    the top ``round(k·H·W / steps)`` pixels of the original image at point ``k``. Arguments and
    return value as :func:`deletion`.
    """
    return _perturbation_curve("insertion", model, inputs, target, attributions, steps, baseline, score,
                               batch_size, reduce, blur_sigma, return_curves, progress)


# --------------------------------------------------------------------------------------------------
# MuFidelity
# --------------------------------------------------------------------------------------------------
def _average_ranks(values: Tensor) -> Tensor:
    """Row-wise ranks (0-based) with ties given their average rank (as ``scipy.stats.rankdata``)."""
    ordered = values.sort(dim=1).values
    below = torch.searchsorted(ordered, values, right=False)
    up_to = torch.searchsorted(ordered, values, right=True)
    return (below + up_to - 1).to(values.dtype) / 2


def _row_correlation(a: Tensor, b: Tensor, method: str,
                     warning: str = "mufidelity: {n} image(s) with a constant attribution sum or score drop over "
                                    "the samples; their correlation is undefined and set to 0") -> Tensor:
    """Pearson or Spearman correlation of each row of ``a`` with the same row of ``b``.

    Rows where either vector is constant have no defined correlation: they get 0 and a ``RuntimeWarning``
    (``warning`` formatted with ``n``, the number of such rows), attributed to the caller's caller.
    """
    a, b = a.double(), b.double()
    if method == "spearman":
        a, b = _average_ranks(a), _average_ranks(b)
    # A row is constant when its spread is zero up to rounding, relative to its magnitude.
    tolerance = 1e-12 * a.shape[1] ** 0.5
    centred_a = a - a.mean(dim=1, keepdim=True)
    centred_b = b - b.mean(dim=1, keepdim=True)
    norm_a, norm_b = centred_a.norm(dim=1), centred_b.norm(dim=1)
    degenerate = (norm_a <= tolerance * a.abs().amax(dim=1)) | (norm_b <= tolerance * b.abs().amax(dim=1))
    if bool(degenerate.any()):
        warnings.warn(warning.format(n=int(degenerate.sum())), RuntimeWarning, stacklevel=3)
    norm = torch.where(degenerate, torch.ones_like(norm_a), norm_a * norm_b)
    corr = (centred_a * centred_b).sum(dim=1) / norm
    return torch.where(degenerate, torch.zeros_like(corr), corr.clamp(-1.0, 1.0))


def _cell_index(height: int, width: int, grid: int, device: torch.device) -> Tensor:
    """Flat ``[H·W]`` index of the ``grid×grid`` cell of each pixel (nearest-neighbour upsampling)."""
    rows = torch.div(torch.arange(height, device=device) * grid, height, rounding_mode="floor")
    cols = torch.div(torch.arange(width, device=device) * grid, width, rounding_mode="floor")
    return (rows[:, None] * grid + cols[None, :]).reshape(-1)


@torch.no_grad()
def mufidelity(
    model: nn.Module,
    inputs: Tensor,
    target: Tensor | int | None,
    attributions: Tensor,
    grid: int = 9,
    subset: float = 0.2,
    samples: int = 128,
    corr: str = "pearson",
    baseline: Baseline = 0.0,
    score: str = "logit",
    batch_size: int | None = None,
    generator: torch.Generator | None = None,
    *,
    reduce: str = "sum",
    blur_sigma: float | None = None,
    progress: bool = False,
) -> Tensor:
    """MuFidelity (Bhatt et al. 2020), one correlation in ``[−1, 1]`` per image — higher is better.

    For each image, ``samples`` random subsets of the ``grid×grid`` cells (pixel ``(i, j)`` belongs to
    cell ``(⌊i·grid/H⌋, ⌊j·grid/W⌋)``) are drawn, each cell removed (all channels set to the baseline)
    independently with probability ``subset``. The metric is the ``corr`` (``"pearson"`` or
    ``"spearman"``, average ranks for ties) correlation, over the samples, between the sum of the
    channel-reduced attributions (``reduce``, as in :func:`deletion`) of the removed pixels and the drop
    ``f(x) − f(x_masked)`` of the target score (``score``: ``"logit"`` by default, or ``"prob"``).
    An image whose attribution sums or score drops are constant over the samples has no defined
    correlation: it gets 0 and a ``RuntimeWarning`` is issued.

    The masks are drawn at once, before any forward pass, as
    ``torch.rand((B, samples, grid, grid), generator=generator) < subset`` (on the generator's device;
    the global CPU RNG when ``None``; ``True`` = removed), so they do not depend on ``batch_size``; the ``B·samples`` masked images are streamed ``batch_size`` at a time (default
    ``B``). ``B·(samples + 1)`` images go through the model (plus ``B`` when ``target`` is ``None``).
    """
    model = _check_model(model)
    inputs = check_images(inputs)
    score = _check_score(score)
    if corr not in CORRELATIONS:
        raise ValueError(f"unknown correlation {corr!r}; expected one of {', '.join(CORRELATIONS)}")
    if isinstance(grid, bool) or not isinstance(grid, int) or grid < 1:
        raise ValueError(f"grid must be an integer >= 1, got {grid!r}")
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 2:
        raise ValueError(f"samples must be an integer >= 2 (a correlation needs two points), got {samples!r}")
    if not isinstance(subset, (int, float)) or isinstance(subset, bool) or not 0.0 < float(subset) < 1.0:
        raise ValueError(f"subset must be a probability strictly between 0 and 1, got {subset!r}")
    batch, _, height, width = inputs.shape
    chunk = _check_batch_size(batch_size, batch)
    saliency = _check_attributions(attributions, inputs, reduce)
    fill = _resolve_baseline(baseline, inputs, blur_sigma)

    cells = grid * grid
    rand_device = generator.device if generator is not None else torch.device("cpu")
    removed = torch.rand((batch, samples, cells), generator=generator, device=rand_device) < float(subset)
    removed = removed.to(inputs.device)
    cell_of_pixel = _cell_index(height, width, grid, inputs.device)

    # Attribution mass of each cell, then of each removed subset: [B, samples].
    cell_mass = torch.zeros(batch, cells, dtype=torch.float64, device=inputs.device)
    cell_mass.index_add_(1, cell_of_pixel, saliency.reshape(batch, -1).double())
    removed_mass = (removed.double() * cell_mass[:, None, :]).sum(dim=2)

    with eval_mode(model):
        target = resolve_target(model, inputs, target, chunk)
        clean = torch.empty(batch, dtype=torch.float64, device=inputs.device)
        masked = torch.empty(batch * samples, dtype=torch.float64, device=inputs.device)
        flat_removed = removed.view(batch * samples, cells)
        with _progress(batch * (samples + 1), "mufidelity", progress) as bar:
            for part in chunks(batch, chunk):
                clean[part] = _target_score(_logits(model, inputs[part]), target[part], score).double()
                bar.update(part.stop - part.start)
            for part in chunks(batch * samples, chunk):
                pair = torch.arange(part.start, part.stop, device=inputs.device)
                image = pair // samples
                hidden = flat_removed[part][:, cell_of_pixel].view(-1, 1, height, width)
                perturbed = torch.where(hidden, fill[image], inputs[image])
                masked[part] = _target_score(_logits(model, perturbed), target[image], score).double()
                bar.update(part.stop - part.start)
    drop = clean[:, None] - masked.view(batch, samples)
    return _row_correlation(removed_mass, drop, corr).to(_result_dtype(inputs))


# --------------------------------------------------------------------------------------------------
# Global score
# --------------------------------------------------------------------------------------------------
def global_score(deletion: Tensor | float, insertion: Tensor | float, fidelity: Tensor | float) -> Tensor | float:
    """Global faithfulness score of seed 001 (Table 2): ``Insertion + Fidelity − Deletion``.

    Works element-wise on numbers or tensors (e.g. per-image or per-method means).
    """
    return insertion + fidelity - deletion
