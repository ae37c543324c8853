"""Robust / non-robust dataset generation (Ilyas et al. 2019; seed 003, Experiment II, eq. 9).

``x_r = argmin ‖g(x_r) − g(x)‖₂`` over images ``x_r ∈ [0, 1]``, starting from ``init`` (in the paper a
randomly chosen *other* image), where ``g`` is the model's penultimate representation
(:func:`freqlens.models.features`). Each step moves every image by ``step_size`` along its own
L2-normalised negative gradient, then projects back to ``[0, 1]``:

``x_r ← clip(x_r − step_size · ∇ / ‖∇‖₂, 0, 1)``.

With a standard model ``g`` this yields the "non-robust" dataset, with an adversarially trained one
the "robust" dataset. With a fixed normalised step the distance decreases while ``step_size`` is small
compared with the curvature of ``‖g(·) − g(x)‖``; near the minimum it can oscillate at the scale of
the step, so use a smaller ``step_size`` (and more ``steps``) for a monotone trajectory.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from freqlens.models import features as penultimate_features
from freqlens.utils.scores import input_gradient
from freqlens.utils.tensors import check_images, chunks, eval_mode

__all__ = ["other_image_indices", "robust_dataset"]

FeatureFn = Callable[[nn.Module, Tensor], Tensor]


def _check_pixels(x: Tensor, name: str) -> None:
    check_images(x, name)
    if float(x.min()) < 0.0 or float(x.max()) > 1.0:
        raise ValueError(f"{name} must hold pixels in [0, 1], got range [{float(x.min()):.4g}, {float(x.max()):.4g}]")


def _distance(feats: Tensor, goal: Tensor) -> Tensor:
    return (feats - goal).flatten(1).norm(dim=1)


def _optimise(model: nn.Module, features: FeatureFn, source: Tensor, start: Tensor, steps: int,
              step_size: float, bar: tqdm) -> tuple[Tensor, Tensor]:
    """Run the descent on one chunk; returns ``(x_r, distances[steps+1, n])``."""
    with torch.no_grad():
        goal = features(model, source).detach()
    x_r = start.clone()
    history = []
    for _ in range(steps):
        grad, feats = input_gradient(lambda x: features(model, x), x_r, lambda f: _distance(f, goal))
        history.append(_distance(feats, goal))
        with torch.no_grad():
            norm = grad.flatten(1).norm(dim=1).clamp(min=1e-12).view(-1, *([1] * (grad.dim() - 1)))
            x_r = (x_r.detach() - step_size * grad / norm).clamp(0.0, 1.0)
        bar.update(1)
    with torch.no_grad():
        history.append(_distance(features(model, x_r), goal))
    return x_r.detach(), torch.stack(history)


def other_image_indices(n: int, generator: torch.Generator | None = None) -> Tensor:
    """For each of ``n`` images the index of another one: the start images of :func:`robust_dataset` in
    Ilyas et al. (2019).

    Args:
        n: the number of images (≥ 1).
        generator: the random source of the permutation (``None``: torch's global generator).

    Returns:
        ``LongTensor[n]``, a random cyclic derangement: one cycle through all ``n``, so no image is
            paired with itself when ``n > 1``.

    Raises:
        ValueError: ``n < 1``.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    order = torch.randperm(n, generator=generator)
    partner = torch.empty_like(order)
    partner[order] = order.roll(1)
    return partner


def robust_dataset(
    model: nn.Module,
    inputs: Tensor,
    init: Tensor,
    steps: int = 1000,
    step_size: float = 0.1,
    batch_size: int | None = None,
    progress: bool = False,
    features: FeatureFn | None = None,
    return_history: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """Images ``x_r`` (``B×C×H×W`` in ``[0, 1]``) whose representation matches that of ``inputs``.

    Args:
        model: the classifier (held in eval mode, flags restored afterwards; weights untouched).
        inputs: source images ``x`` (``B×C×H×W``, pixels in ``[0, 1]``).
        init: starting images, same shape (e.g. a random permutation of other images).
        steps: number of gradient steps (≥ 0).
        step_size: L2 length of each step in pixel space (> 0).
        batch_size: images optimised together (``None`` = all); results do not depend on it.
        progress: show a tqdm bar (stderr) over the steps.
        features: ``features(model, x) -> B×D``; default :func:`freqlens.models.features`.
        return_history: also return ``Tensor[steps+1, B]``, ``‖g(x_r) − g(x)‖₂`` before each step and
            after the last.
    """
    _check_pixels(inputs, "inputs")
    _check_pixels(init, "init")
    if init.shape != inputs.shape:
        raise ValueError(f"init must have the shape of inputs {tuple(inputs.shape)}, got {tuple(init.shape)}")
    if isinstance(steps, bool) or int(steps) != steps or steps < 0:
        raise ValueError(f"steps must be a non-negative integer, got {steps!r}")
    if not float(step_size) > 0.0:
        raise ValueError(f"step_size must be > 0, got {step_size!r}")
    features = penultimate_features if features is None else features
    if not callable(features):
        raise TypeError(f"features must be callable as features(model, x), got {type(features).__name__}")
    init = init.to(device=inputs.device, dtype=inputs.dtype)
    parts = list(chunks(inputs.shape[0], batch_size))
    results, histories = [], []
    with eval_mode(model), tqdm(total=int(steps) * len(parts), desc="robust dataset",
                                disable=not progress, leave=False) as bar:
        for part in parts:
            x_r, history = _optimise(model, features, inputs[part], init[part], int(steps), float(step_size), bar)
            results.append(x_r)
            histories.append(history)
    x_r = torch.cat(results)
    return (x_r, torch.cat(histories, dim=1)) if return_history else x_r
