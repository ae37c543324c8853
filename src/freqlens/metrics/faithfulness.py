"""Faithfulness metrics of attribution maps: Deletion, Insertion and MuFidelity.

* **Deletion / Insertion** (Petsiuk et al. 2018, "RISE"): pixels are ranked by the channel-reduced
  attribution map; at ``steps + 1`` evenly spaced fractions ``k / steps`` the top pixels (all channels)
  are replaced by the baseline (Deletion) or revealed over the baseline (Insertion); the area under
  the curve of the target score (trapezoid rule on ``[0, 1]``) is one value per image. Lower Deletion
  and higher Insertion are better.
* **MuFidelity** (Bhatt et al. 2020): the correlation, over random subsets of a ``grid×grid`` cell grid,
  between the sum of the attributions of the removed pixels and the drop of the target score.
* **Global score** of seed 001 (FORGrad, Table 2): ``Insertion + Fidelity − Deletion``.

All metrics stream through the perturbation core (:func:`freqlens.utils.perturb.score_perturbations`):
the perturbed images (``image × step`` or ``image × sample`` pairs) are generated chunk by chunk with at
most ``batch_size`` images per forward pass, in a fixed order, so the results do not depend on
``batch_size``. Baselines (a number, a tensor, ``"zeros"``, ``"blur"``, ``"mean"``) and scores (logit,
probability, log-probability) have the one meaning of :func:`~freqlens.utils.perturb.resolve_baseline`
and :func:`~freqlens.utils.scores.select_score`. The model is put in eval mode for the call (every
module's flag is restored afterwards) and no gradient is recorded. :func:`check_attributions` and
:func:`row_correlation` are shared by the metrics subpackage.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import Tensor, nn

from freqlens.utils.perturb import Baseline, clean_scores, resolve_baseline, score_perturbations
from freqlens.utils.scores import SCORES, check_score
from freqlens.utils.signatures import forwards_options
from freqlens.utils.tensors import (
    REDUCTIONS,
    check_model_and_images,
    eval_mode,
    reduce_channels,
    resolve_target,
    result_dtype,
)

__all__ = [
    "REDUCTIONS",
    "SCORES",
    "check_attributions",
    "deletion",
    "global_score",
    "insertion",
    "mufidelity",
    "row_correlation",
]

#: Correlations of :func:`mufidelity`.
CORRELATIONS = ("pearson", "spearman")

def check_attributions(attributions: object, inputs: Tensor, reduce: str) -> Tensor:
    """Validate maps against ``inputs`` and return the channel-reduced map.

    Args:
        attributions: ``B×C×H×W`` (C = the inputs' channels), ``B×1×H×W`` or ``B×H×W`` real, finite
            maps (integer and bool maps are converted to the inputs' dtype).
        inputs: the ``B×C×H×W`` images the maps explain.
        reduce: the channel reduction, one of :data:`REDUCTIONS`.

    Returns:
        ``B×H×W`` detached maps on the inputs' device.

    Raises:
        TypeError: ``attributions`` is not a tensor.
        ValueError: an unknown ``reduce``, a shape that does not match ``inputs``, a complex dtype, or
            NaN / infinite values.
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


def _perturbed_inputs(
    model: nn.Module,
    inputs: Tensor,
    attributions: Tensor,
    score: str,
    *,
    baseline: Baseline = 0.0,
    batch_size: int | None = None,
    reduce: str = "sum",
    blur_sigma: float | None = None,
) -> tuple[Tensor, int, Tensor, Tensor]:
    """What every perturbation metric checks and prepares first, with the settings they share.

    Args:
        model, inputs, batch_size: the classifier, the ``B×C×H×W`` images and the most perturbed images per
            forward pass (:func:`~freqlens.utils.tensors.check_model_and_images`).
        attributions, reduce: the maps and their channel reduction (:func:`check_attributions`).
        score: the target score (:data:`SCORES`).
        baseline, blur_sigma: what perturbed pixels become (:func:`~freqlens.utils.perturb.resolve_baseline`).

    Returns:
        The checked images, the chunk size, the ``B×H×W`` reduced maps and the baseline images.

    Raises:
        ValueError: any of the checks.
    """
    inputs, chunk = check_model_and_images(model, inputs, batch_size)
    check_score(score)
    saliency = check_attributions(attributions, inputs, reduce)
    return inputs, chunk, saliency, resolve_baseline(baseline, inputs, blur_sigma)


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
@forwards_options(_perturbed_inputs, skip=("model", "inputs", "attributions"))
def _perturbation_curve(
    mode: str,
    model: nn.Module,
    inputs: Tensor,
    target: Tensor | int | None,
    attributions: Tensor,
    steps: int = 20,
    score: str = "prob",
    *,
    return_curves: bool = False,
    progress: bool = False,
    **options: Any,
) -> Tensor | tuple[Tensor, Tensor]:
    """The curve of :func:`deletion` (``mode="deletion"``) or :func:`insertion`; the settings and their
    defaults of both are these (with those of every perturbation metric, ``options``)."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    inputs, chunk, saliency, fill = _perturbed_inputs(model, inputs, attributions, score, **options)
    batch, _, height, width = inputs.shape
    pixels = height * width

    # Rank of every pixel in the (stable, descending) order of the map: rank 0 = most important;
    # ties keep the pixel index order, so the order is deterministic.
    order = torch.sort(saliency.reshape(batch, pixels), dim=1, descending=True, stable=True).indices
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(pixels, device=order.device).expand(batch, pixels))
    counts = _pixel_counts(steps, pixels, inputs.device)

    def keep(image: Tensor, step: Tensor) -> Tensor:
        selected = (ranks[image] < counts[step, None]).view(-1, 1, height, width)
        return ~selected if mode == "deletion" else selected

    with eval_mode(model):
        target = resolve_target(model, inputs, target, chunk)
        curves = score_perturbations(model, inputs, fill, target, steps + 1, keep, score, chunk,
                                     dtype=result_dtype(inputs), progress=progress, desc=mode)
    auc = _trapezoid(curves)
    return (auc, curves) if return_curves else auc


@forwards_options(_perturbation_curve, skip=("mode",))
def deletion(
    model: nn.Module, inputs: Tensor, target: Tensor | int | None, attributions: Tensor, **options: Any
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
        baseline: a number, a tensor broadcastable to ``inputs``, ``"zeros"``, ``"mean"`` (each image's
            per-channel mean) or ``"blur"`` (a Gaussian-blurred copy
            of each image, std ``blur_sigma`` pixels, default ``min(H, W) / 16``).
        score: ``"prob"`` (softmax probability of the target), ``"logit"`` or ``"log_prob"``.
        batch_size: most perturbed images per forward pass (default ``None`` = ``B``, the memory of one
            forward pass of ``inputs``); the result does not depend on it.
        reduce: the channel reduction of ``attributions`` (``"sum"``, ``"mean"``, ``"abs_sum"``,
            ``"abs_mean"``, ``"max_abs"``).
        blur_sigma: std in pixels of the ``"blur"`` baseline (``None``: ``min(H, W) / 16``).
        return_curves: also return the curves ``[B, steps + 1]``.
        progress: show a tqdm bar on stderr.

    Returns:
        ``Tensor[B]`` (trapezoid AUC over ``[0, 1]``), or ``(auc, curves)``. Exactly ``B·(steps + 1)``
            images go through the model (plus ``B`` when ``target`` is ``None``).

    Raises:
        ValueError: ``steps < 1``, an unknown ``score`` / ``reduce`` / baseline, or maps that do not
            match ``inputs``.
        InputError: images outside the pixel range or non-finite logits.
    """
    return _perturbation_curve("deletion", model, inputs, target, attributions, **options)


@forwards_options(_perturbation_curve, skip=("mode",))
def insertion(
    model: nn.Module, inputs: Tensor, target: Tensor | int | None, attributions: Tensor, **options: Any
) -> Tensor | tuple[Tensor, Tensor]:
    """Insertion AUC (RISE, Petsiuk et al. 2018), one value per image — higher is better.

    Starts from the baseline (``0.0`` by default; ``"blur"`` is the canonical RISE choice) and reveals
    the top ``round(k·H·W / steps)`` pixels of the original image at point ``k``. Arguments, return
    value and errors as :func:`deletion`.

    Args:
        model, inputs, target, attributions, steps, baseline, score, batch_size: as :func:`deletion`
            (``baseline``: what the unrevealed pixels are).
        reduce, blur_sigma, return_curves, progress: as :func:`deletion`.

    Returns:
        ``Tensor[B]`` (trapezoid AUC over ``[0, 1]``), or ``(auc, curves)``.
    """
    return _perturbation_curve("insertion", model, inputs, target, attributions, **options)


# --------------------------------------------------------------------------------------------------
# MuFidelity
# --------------------------------------------------------------------------------------------------
def _average_ranks(values: Tensor) -> Tensor:
    """Row-wise ranks (0-based) with ties given their average rank (as ``scipy.stats.rankdata``)."""
    ordered = values.sort(dim=1).values
    below = torch.searchsorted(ordered, values, right=False)
    up_to = torch.searchsorted(ordered, values, right=True)
    return (below + up_to - 1).to(values.dtype) / 2


def row_correlation(a: Tensor, b: Tensor, method: str,
                     warning: str = "mufidelity: {n} image(s) with a constant attribution sum or score drop over "
                                    "the samples; their correlation is undefined and set to 0") -> Tensor:
    """Pearson or Spearman correlation of each row of ``a`` with the same row of ``b``.

    Rows where either vector is constant have no defined correlation: they get 0 and a ``RuntimeWarning``,
    attributed to the caller's caller.

    Args:
        a: ``[B, n]`` values.
        b: ``[B, n]`` values, paired with ``a`` row by row.
        method: ``"pearson"``, or ``"spearman"`` (Pearson of average ranks, ties as
            ``scipy.stats.rankdata``).
        warning: the warning's message, formatted with ``n``, the number of constant rows.

    Returns:
        ``Tensor[B]`` (float64) in ``[−1, 1]``.
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
@forwards_options(_perturbed_inputs, skip=("model", "inputs", "attributions"))
def mufidelity(
    model: nn.Module,
    inputs: Tensor,
    target: Tensor | int | None,
    attributions: Tensor,
    grid: int = 9,
    subset: float = 0.2,
    samples: int = 128,
    corr: str = "pearson",
    score: str = "logit",
    generator: torch.Generator | None = None,
    *,
    progress: bool = False,
    **options: Any,
) -> Tensor:
    """MuFidelity (Bhatt et al. 2020), one correlation in ``[−1, 1]`` per image — higher is better.

    For each image, ``samples`` random subsets of the ``grid×grid`` cells (pixel ``(i, j)`` belongs to
    cell ``(⌊i·grid/H⌋, ⌊j·grid/W⌋)``) are drawn, each cell removed (all channels set to the baseline)
    independently with probability ``subset``. The metric is the ``corr`` correlation, over the
    samples, between the sum of the channel-reduced attributions of the removed pixels and the drop
    ``f(x) − f(x_masked)`` of the target score. An image whose attribution sums or score drops are
    constant over the samples has no defined correlation: it gets 0 and a ``RuntimeWarning`` is issued.

    The masks are drawn at once, before any forward pass, as
    ``torch.rand((B, samples, grid, grid), generator=generator) < subset`` (``True`` = removed), so
    they do not depend on ``batch_size``. ``B·(samples + 1)`` images go through the model (the predicted
    class, when ``target`` is ``None``, comes from the clean pass).

    Args:
        model: classifier returning logits; in eval mode during the call (restored).
        inputs: ``B×C×H×W`` images in [0, 1].
        target: ``LongTensor[B]``, an int, or ``None`` = the predicted class on ``inputs``.
        attributions: ``B×C×H×W``, ``B×1×H×W`` or ``B×H×W`` maps.
        grid: cells per side of the grid (≥ 1).
        subset: probability of removing each cell, strictly between 0 and 1.
        samples: random subsets per image (≥ 2: a correlation needs two points).
        corr: ``"pearson"`` or ``"spearman"`` (average ranks for ties).
        baseline: what removed pixels become: a number, a tensor, ``"zeros"``, ``"mean"`` or ``"blur"``.
        score: ``"logit"`` (default), ``"prob"`` or ``"log_prob"``.
        batch_size: the ``B·samples`` masked images are streamed ``batch_size`` at a time (default
            ``None`` = ``B``).
        generator: source of the masks, on its own device; ``None``: the global CPU RNG.
        reduce: the channel reduction of ``attributions``, as in :func:`deletion`.
        blur_sigma: std in pixels of the ``"blur"`` baseline (``None``: ``min(H, W) / 16``).
        progress: show a tqdm bar on stderr.

    Returns:
        ``Tensor[B]`` of correlations in ``[−1, 1]``.

    Raises:
        ValueError: an unknown ``corr`` / ``score``, a bad ``grid``, ``samples`` or ``subset``, or maps
            that do not match ``inputs``.
    """
    if corr not in CORRELATIONS:
        raise ValueError(f"unknown correlation {corr!r}; expected one of {', '.join(CORRELATIONS)}")
    if isinstance(grid, bool) or not isinstance(grid, int) or grid < 1:
        raise ValueError(f"grid must be an integer >= 1, got {grid!r}")
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 2:
        raise ValueError(f"samples must be an integer >= 2 (a correlation needs two points), got {samples!r}")
    if not isinstance(subset, (int, float)) or isinstance(subset, bool) or not 0.0 < float(subset) < 1.0:
        raise ValueError(f"subset must be a probability strictly between 0 and 1, got {subset!r}")
    inputs, chunk, saliency, fill = _perturbed_inputs(model, inputs, attributions, score, **options)
    batch, _, height, width = inputs.shape
    cells = grid * grid
    rand_device = generator.device if generator is not None else torch.device("cpu")
    removed = torch.rand((batch, samples, cells), generator=generator, device=rand_device) < float(subset)
    removed = removed.to(inputs.device)
    cell_of_pixel = _cell_index(height, width, grid, inputs.device)

    # Attribution mass of each cell, then of each removed subset: [B, samples].
    cell_mass = torch.zeros(batch, cells, dtype=torch.float64, device=inputs.device)
    cell_mass.index_add_(1, cell_of_pixel, saliency.reshape(batch, -1).double())
    removed_mass = (removed.double() * cell_mass[:, None, :]).sum(dim=2)

    def keep(image: Tensor, sample: Tensor) -> Tensor:
        return ~flat_removed[image * samples + sample][:, cell_of_pixel].view(-1, 1, height, width)

    flat_removed = removed.view(batch * samples, cells)
    with eval_mode(model):
        target, clean = clean_scores(model, inputs, target, score, chunk)
        masked = score_perturbations(model, inputs, fill, target, samples, keep, score, chunk,
                                     dtype=torch.float64, progress=progress, desc="mufidelity")
    drop = clean[:, None].double() - masked
    return row_correlation(removed_mass, drop, corr).to(result_dtype(inputs))


# --------------------------------------------------------------------------------------------------
# Global score
# --------------------------------------------------------------------------------------------------
def global_score(deletion: Tensor | float, insertion: Tensor | float, fidelity: Tensor | float) -> Tensor | float:
    """Global faithfulness score of seed 001 (Table 2): ``Insertion + Fidelity − Deletion``.

    Works element-wise on numbers or tensors (e.g. per-image or per-method means).

    Args:
        deletion: Deletion AUC (lower is better).
        insertion: Insertion AUC (higher is better).
        fidelity: MuFidelity (higher is better).

    Returns:
        ``insertion + fidelity − deletion``, a number or a tensor.
    """
    return insertion + fidelity - deletion
