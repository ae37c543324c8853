"""Integrated Gradients (Sundararajan et al. 2017).

``IG(x) = (x − x₀) ⊙ ∫₀¹ ∇f_t(x₀ + α(x − x₀)) dα`` with a quadrature rule on ``steps`` points. The
``steps × B`` (step, image) pairs are streamed in chunks of at most ``batch_size`` interpolated images
per forward + backward pass and accumulated in float64, so memory does not grow with ``steps``.
Completeness: the map sums to ``f_t(x) − f_t(x₀)`` up to the quadrature error.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from freqlens.utils.perturb import Baseline, check_baseline, resolve_baseline
from freqlens.utils.signatures import bound_arguments, forwards_options

from ._batching import segments
from .base import (
    Call,
    Explainer,
    PassCount,
    accumulation_dtype,
    check_score,
    chunks,
    progress_bar,
)
from .gradient import score_gradient

__all__ = ["METHODS", "IntegratedGradients", "integration_points"]

METHODS = ("riemann_trapezoid", "riemann_left", "riemann_middle", "riemann_right", "gausslegendre")


def integration_points(steps: int, method: str = "gausslegendre") -> tuple[Tensor, Tensor]:
    """Nodes ``α_k`` in [0, 1] and weights ``w_k`` (summing to 1) of a quadrature rule, float64.

    Args:
        steps: number of nodes ``n`` (a positive int; ≥ 2 for the trapezoid).
        method: one of :data:`METHODS`. Riemann rules: left ``k/n``, right ``(k+1)/n``, middle
            ``(k+½)/n`` with weights ``1/n``; trapezoid: ``k/(n−1)`` with weights ``1/(n−1)``, halved at
            both ends (``steps ≥ 2``); ``gausslegendre``: the Gauss–Legendre rule mapped from [−1, 1] to
            [0, 1].

    Returns:
        ``(nodes, weights)``, two float64 ``Tensor[steps]``.

    Raises:
        ValueError: a bad ``steps`` or an unknown ``method``.
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    if method not in METHODS:
        raise ValueError(f"unknown integration method {method!r}; expected one of {', '.join(METHODS)}")
    k = torch.arange(steps, dtype=torch.float64)
    if method == "gausslegendre":
        nodes, weights = np.polynomial.legendre.leggauss(steps)
        return torch.from_numpy((nodes + 1) / 2), torch.from_numpy(weights / 2)
    if method == "riemann_trapezoid":
        if steps < 2:
            raise ValueError("riemann_trapezoid needs steps >= 2")
        weights = torch.full((steps,), 1.0 / (steps - 1), dtype=torch.float64)
        weights[[0, -1]] /= 2
        return k / (steps - 1), weights
    offset = {"riemann_left": 0.0, "riemann_middle": 0.5, "riemann_right": 1.0}[method]
    return (k + offset) / steps, torch.full((steps,), 1.0 / steps, dtype=torch.float64)


class IntegratedGradients(Explainer):
    """Integrated Gradients (Sundararajan et al. 2017), per channel: maps ``B×C×H×W``.

    Args:
        model: classifier returning ``B×K`` logits.
        baseline: a number (default 0 = black image), ``"zeros"``, ``"blur"``, ``"mean"`` or a tensor
            broadcastable to the inputs (``C×H×W``, ``1×C×H×W`` or ``B×C×H×W``): see
            :func:`freqlens.utils.perturb.resolve_baseline`.
        steps: quadrature points of ``method``.
        method: the quadrature rule, one of :data:`METHODS` (:func:`integration_points`; Gauss–Legendre
            by default, as in Captum).
        batch_size: max interpolated images per forward + backward pass (``None``: automatic); results
            do not depend on it.
        score: ``"logit"`` (default), ``"prob"`` or ``"log_prob"``.
        progress: show a tqdm bar over the chunks.

    Raises:
        ValueError: a bad ``steps``, ``method``, ``baseline``, ``score`` or ``batch_size``.
    """

    name = "integrated_gradients"

    @forwards_options(integration_points)
    def __init__(
        self,
        model: nn.Module,
        baseline: Baseline = 0.0,
        steps: int = 50,
        *,
        batch_size: int | None = None,
        score: str = "logit",
        progress: bool = False,
        **options: Any,
    ) -> None:
        super().__init__(model, batch_size=batch_size, progress=progress)
        rule = bound_arguments(integration_points, steps, **options)  # the quadrature rule: steps, method
        self.alphas, self.weights = integration_points(**rule)
        self.baseline = check_baseline(baseline)
        self.steps = steps
        self.method = rule["method"]
        self.score = check_score(score)

    def attribute(
        self, inputs: Tensor, target: Tensor | int | None = None, baseline: Baseline | None = None, *,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """IG maps for ``inputs`` (see :meth:`Explainer.attribute`).

        Args:
            inputs: ``B×C×H×W`` images.
            target: ``LongTensor[B]``, an int, or ``None`` = the predicted class.
            baseline: overrides the constructor's baseline for this call (``None``: keep it).
            generator: ignored (IG is deterministic); accepted for the explainer protocol.

        Returns:
            ``B×C×H×W`` maps.
        """
        if baseline is None:
            return super().attribute(inputs, target, generator=generator)
        once = copy.copy(self)
        once.baseline = check_baseline(baseline)
        return once.attribute(inputs, target, generator=generator)

    def _attribute(self, call: Call) -> Tensor:
        inputs, target, chunk = call.inputs, call.target, call.chunk
        start = resolve_baseline(self.baseline, inputs)
        delta = inputs - start
        batch = inputs.shape[0]
        alphas, weights = self.alphas.tolist(), self.weights.tolist()
        acc_dtype = accumulation_dtype(inputs.device)
        total = torch.zeros(inputs.shape, dtype=acc_dtype, device=inputs.device)
        parts = list(chunks(batch * self.steps, chunk))
        arange = torch.arange(batch, device=inputs.device)
        for part in progress_bar(parts, len(parts), self.progress, "integrated gradients"):
            # pairs are step-major (q = step · B + image): a chunk is a few runs of consecutive images
            runs = segments(part.start, part.stop, batch)
            path = torch.cat([start[cols] + alphas[step] * delta[cols] for _, step, cols in runs])
            image = torch.cat([arange[cols] for _, _, cols in runs])
            grads = score_gradient(self.model, path, target[image], self.score).to(acc_dtype)
            for rows, step, cols in runs:
                total[cols] += grads[rows] * weights[step]
        return (delta.to(acc_dtype) * total).to(inputs.dtype)

    def planned_passes(self, height: int, width: int) -> PassCount:
        """``steps`` forward and backward passes per image.

        Args:
            height: image height in pixels (unused).
            width: image width in pixels (unused).
        """
        return PassCount(forward=self.steps, backward=self.steps)
