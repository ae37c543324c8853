"""Integrated Gradients (Sundararajan et al. 2017).

``IG(x) = (x − x₀) ⊙ ∫₀¹ ∇f_t(x₀ + α(x − x₀)) dα`` with a quadrature rule on ``steps`` points. The
``steps × B`` (step, image) pairs are streamed in chunks of at most ``batch_size`` interpolated images
per forward + backward pass and accumulated in float64, so memory does not grow with ``steps``.
Completeness: the map sums to ``f_t(x) − f_t(x₀)`` up to the quadrature error.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor, nn

from ._batching import check_batch_size, resolve_batch_size, segments
from .base import (
    Explainer,
    PassCount,
    accumulation_dtype,
    check_images,
    check_score,
    chunks,
    eval_mode,
    progress_bar,
    resolve_target,
)
from .gradient import score_gradient

__all__ = ["METHODS", "IntegratedGradients", "integration_points"]

METHODS = ("riemann_trapezoid", "riemann_left", "riemann_middle", "riemann_right", "gausslegendre")


def integration_points(steps: int, method: str = "gausslegendre") -> tuple[Tensor, Tensor]:
    """Nodes ``α_k`` in [0, 1] and weights ``w_k`` (summing to 1) of a quadrature rule, float64.

    Riemann rules: left ``k/n``, right ``(k+1)/n``, middle ``(k+½)/n`` with weights ``1/n``;
    trapezoid: ``k/(n−1)`` with weights ``1/(n−1)``, halved at both ends (``steps ≥ 2``);
    ``gausslegendre``: the Gauss–Legendre rule mapped from [−1, 1] to [0, 1].
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


def _check_baseline(baseline: float | str | Tensor) -> float | Tensor:
    """A number (``"zeros"`` → 0.0) or a finite floating tensor; ``ValueError`` otherwise."""
    if isinstance(baseline, str):
        if baseline not in ("zeros", "zero"):
            raise ValueError(f"unknown baseline {baseline!r}; use a number, a tensor or 'zeros'")
        return 0.0
    if isinstance(baseline, (int, float)) and not isinstance(baseline, bool):
        if not math.isfinite(baseline):
            raise ValueError(f"baseline must be finite, got {baseline}")
        return float(baseline)
    if not isinstance(baseline, Tensor):
        raise TypeError(f"baseline must be a number, a tensor or 'zeros', got {type(baseline).__name__}")
    if not baseline.is_floating_point():
        raise ValueError(f"baseline must be a floating tensor, got dtype {baseline.dtype}")
    if not torch.isfinite(baseline).all():
        raise ValueError("baseline contains NaN or infinite values")
    return baseline


def _baseline_tensor(baseline: float | str | Tensor, inputs: Tensor) -> Tensor:
    """The baseline as a tensor broadcast to ``inputs`` (a view, no copy)."""
    baseline = _check_baseline(baseline)
    if isinstance(baseline, float):
        return torch.full((1, 1, 1, 1), baseline, dtype=inputs.dtype, device=inputs.device).expand_as(inputs)
    try:
        return torch.broadcast_to(baseline.detach().to(device=inputs.device, dtype=inputs.dtype), inputs.shape)
    except RuntimeError:
        raise ValueError(
            f"baseline of shape {tuple(baseline.shape)} does not broadcast to the inputs' shape {tuple(inputs.shape)}"
        ) from None


class IntegratedGradients(Explainer):
    """Integrated Gradients (Sundararajan et al. 2017), per channel: maps ``B×C×H×W``.

    ``baseline``: a number (default 0 = black image), ``"zeros"``, or a tensor broadcastable to the
    inputs (``C×H×W``, ``1×C×H×W`` or ``B×C×H×W``). ``steps`` quadrature points of ``method`` (one of
    :data:`METHODS`; Gauss–Legendre by default, as in Captum). ``batch_size``: max interpolated images
    per forward + backward pass (``None``: automatic); results do not depend on it.
    """

    def __init__(
        self,
        model: nn.Module,
        baseline: float | str | Tensor = 0.0,
        steps: int = 50,
        method: str = "gausslegendre",
        batch_size: int | None = None,
        score: str = "logit",
        progress: bool = False,
    ) -> None:
        super().__init__(model)
        self.alphas, self.weights = integration_points(steps, method)
        self.baseline = _check_baseline(baseline)
        self.steps = steps
        self.method = method
        self.score = check_score(score)
        self.batch_size = check_batch_size(batch_size)
        self.progress = progress

    def attribute(
        self, inputs: Tensor, target: Tensor | int | None = None, baseline: float | str | Tensor | None = None
    ) -> Tensor:
        """IG maps for ``inputs``; ``baseline`` overrides the constructor's for this call."""
        inputs = check_images(inputs).detach()
        start = _baseline_tensor(self.baseline if baseline is None else baseline, inputs)
        delta = inputs - start
        batch = inputs.shape[0]
        alphas, weights = self.alphas.tolist(), self.weights.tolist()
        acc_dtype = accumulation_dtype(inputs.device)
        total = torch.zeros(inputs.shape, dtype=acc_dtype, device=inputs.device)
        with eval_mode(self.model):
            chunk = resolve_batch_size(self.batch_size, self.model, inputs)
            target = resolve_target(self.model, inputs, target, chunk)
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
        """``steps`` forward and backward passes per image."""
        return PassCount(forward=self.steps, backward=self.steps)

    def __repr__(self) -> str:
        baseline = self.baseline if not isinstance(self.baseline, Tensor) else f"tensor{tuple(self.baseline.shape)}"
        return (
            f"IntegratedGradients(baseline={baseline}, steps={self.steps}, method={self.method!r}, "
            f"batch_size={self.batch_size})"
        )
