"""Projected Gradient Descent (Madry et al. 2018), L∞ and L2, with random start and restarts, and its
low-frequency variant (seed 003): the perturbation restricted to the DCT bands ``i + j < cutoff``."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from freqlens.attacks.base import Attack, check_count, check_number, cross_entropy, input_gradient, rand
from freqlens.spectral import band_mask, dct2, idct2
from freqlens.utils.signatures import forwards_options

__all__ = ["NORMS", "PGD", "LowFrequencyPGD"]

NORMS = ("inf", "2")
_TINY = 1e-12


def _norm_name(norm: object) -> str:
    text = str(norm).strip().lower().lstrip("l")
    if text in ("inf", "infinity", "linf"):
        return "inf"
    if text == "2":
        return "2"
    raise ValueError(f"unknown norm {norm!r}; expected 'inf' or '2'")


def _view(values: Tensor, like: Tensor) -> Tensor:
    return values.view(-1, *([1] * (like.dim() - 1)))


class PGD(Attack):
    """``steps`` steps of size ``alpha`` on the cross-entropy, each followed by the projection onto the
    ε-ball around ``x`` and onto [0, 1].

    L∞: step ``alpha·sign(∇)``, projection by clamping; L2: step ``alpha·∇/‖∇‖₂``, projection by
    rescaling.

    Args:
        model: the classifier (``B×C×H×W`` images in [0, 1] → ``B×K`` logits).
        eps: the budget ε ≥ 0, in pixel units (e.g. ``8/255`` L∞).
        alpha: the step size ≥ 0.
        steps: number of steps (≥ 0).
        norm: ``"inf"`` (L∞) or ``"2"`` (L2).
        random_start: δ₀ uniform in the ε-ball (L2: uniform direction, radius ε·u^(1/d)); else δ₀ = 0.
        restarts: runs per image (≥ 1); per image, the first successful run is kept, otherwise the one
            with the highest loss.
        targeted: descend the cross-entropy of the target class instead of ascending that of the
            true class.
        generator: seeds the random starts (``None``: the global random stream).

    Raises:
        ValueError: a negative ``eps`` / ``alpha``, a bad count or an unknown ``norm``.
    """

    def __init__(
        self,
        model: nn.Module,
        eps: float = 8 / 255,
        alpha: float = 2 / 255,
        steps: int = 10,
        norm: str = "inf",
        random_start: bool = True,
        restarts: int = 1,
        targeted: bool = False,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__(model, targeted)
        self.eps = check_number("eps", eps, strict=False)
        self.alpha = check_number("alpha", alpha, strict=False)
        self.steps = check_count("steps", steps, minimum=0)
        self.norm = _norm_name(norm)
        self.random_start = bool(random_start)
        self.restarts = check_count("restarts", restarts)
        self.generator = generator

    # ---- projections (overridden by LowFrequencyPGD)
    def _project(self, delta: Tensor) -> Tensor:
        """Onto the ε-ball of the norm."""
        if self.norm == "inf":
            return delta.clamp(-self.eps, self.eps)
        norms = delta.flatten(1).norm(dim=1)
        scale = torch.where(norms > self.eps, self.eps / norms.clamp_min(_TINY), torch.ones_like(norms))
        return delta * _view(scale, delta)

    def _random_start(self, inputs: Tensor) -> Tensor:
        shape = tuple(inputs.shape)
        if self.norm == "inf":
            return (2 * rand(shape, self.generator, inputs) - 1) * self.eps
        direction = rand(shape, self.generator, inputs, normal=True)
        direction = direction / _view(direction.flatten(1).norm(dim=1).clamp_min(_TINY), inputs)
        dims = inputs[0].numel()
        radius = self.eps * rand((shape[0],), self.generator, inputs) ** (1.0 / dims)
        return direction * _view(radius, inputs)

    def _step(self, grad: Tensor) -> Tensor:
        if self.norm == "inf":
            return self.alpha * grad.sign()
        norms = grad.flatten(1).norm(dim=1).clamp_min(_TINY)
        return self.alpha * grad / _view(norms, grad)

    def _one_run(self, inputs: Tensor, labels: Tensor) -> Tensor:
        delta = self._project(self._random_start(inputs)) if self.random_start else torch.zeros_like(inputs)
        delta = (inputs + delta).clamp(0.0, 1.0) - inputs
        loss_fn = cross_entropy(labels)
        for _ in range(self.steps):
            grad, _ = input_gradient(self.model, inputs + delta, loss_fn)
            step = self._step(grad)
            delta = self._project(delta - step if self.targeted else delta + step)
            delta = (inputs + delta).clamp(0.0, 1.0) - inputs
        return inputs + delta

    def _run(self, inputs: Tensor, labels: Tensor) -> Tensor:
        best = None
        for _ in range(self.restarts):
            candidate = self._one_run(inputs, labels)
            if self.restarts == 1:
                return candidate
            logits = self.model(candidate)
            loss = F.cross_entropy(logits, labels, reduction="none")
            loss = -loss if self.targeted else loss
            success = self._successful(logits, labels)
            if best is None:
                best, best_loss, best_success = candidate, loss, success
                continue
            take = (success & ~best_success) | ((success == best_success) & ~best_success & (loss > best_loss))
            best = torch.where(take.view(-1, 1, 1, 1), candidate, best)
            best_loss = torch.where(take, loss, best_loss)
            best_success = best_success | success
        return best

    def _settings(self) -> dict:
        return {"eps": self.eps, "alpha": self.alpha, "steps": self.steps, "norm": self.norm,
                "random_start": self.random_start, "restarts": self.restarts, "targeted": self.targeted}


class LowFrequencyPGD(PGD):
    """PGD whose perturbation δ lives in the DCT coefficients of band ``i + j < cutoff`` (seed 003).

    After each step (and for the random start) δ ← idct2(dct2(δ)·mask) (orthogonal projection onto the
    low-frequency subspace, per channel), then δ is brought into the ε-ball *by rescaling* (L2: the
    usual projection; L∞: δ·min(1, ε/‖δ‖∞) — clamping would leave the subspace), then x + δ is clipped
    to [0, 1]. That final clip can reintroduce out-of-band energy when it is active (pixels pushed past
    0 or 1); for images away from 0 and 1 (by more than ε in L∞) δ stays exactly in band.

    Args:
        model: the classifier (``B×C×H×W`` images in [0, 1] → ``B×K`` logits).
        eps: the budget ε ≥ 0, in pixel units.
        alpha: the step size ≥ 0 (the step uses the gradient restricted to the low bands).
        steps: number of steps (≥ 0).
        norm: ``"inf"`` (L∞) or ``"2"`` (L2).
        cutoff: DCT bands ``i + j < cutoff`` hold the perturbation (≥ 1).
        random_start: start from a random δ₀ in the ε-ball, projected onto the bands.
        restarts: runs per image, as in :class:`PGD`.
        targeted: labels are target classes to reach.
        generator: seeds the random starts.

    Raises:
        ValueError: as :class:`PGD`, or ``cutoff < 1``.
    """

    @forwards_options(PGD.__init__)
    def __init__(self, model: nn.Module, *, cutoff: int = 8, **options: Any) -> None:
        super().__init__(model, **options)
        self.cutoff = check_count("cutoff", cutoff)

    def _lowpass(self, delta: Tensor) -> Tensor:
        mask = band_mask(delta.shape[-2], delta.shape[-1], range(self.cutoff), device=delta.device)
        return idct2(dct2(delta) * mask.to(delta.dtype))

    def _project(self, delta: Tensor) -> Tensor:
        delta = self._lowpass(delta)
        norms = delta.flatten(1).abs().amax(dim=1) if self.norm == "inf" else delta.flatten(1).norm(dim=1)
        scale = torch.where(norms > self.eps, self.eps / norms.clamp_min(_TINY), torch.ones_like(norms))
        return delta * _view(scale, delta)

    def _step(self, grad: Tensor) -> Tensor:
        # the gradient restricted to the subspace: its ascent direction there
        return super()._step(self._lowpass(grad))

    def _settings(self) -> dict:
        return {**super()._settings(), "cutoff": self.cutoff}
