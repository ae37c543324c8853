"""Plain gradient explainers: Saliency (Simonyan et al. 2014) and Gradient ⊙ Input (Shrikumar et al. 2016).

Both differentiate the target's score (logit by default, or softmax probability / log-probability)
with respect to the input pixels, per channel: maps are ``B×C×H×W``. Images are streamed in chunks of
at most ``batch_size`` per forward + backward pass; the gradient of the *sum* of the selected scores
over a chunk gives every image's own gradient in one backward pass (images do not interact in eval
mode). Gradients are taken with :func:`torch.autograd.grad` with respect to the inputs only, so the
parameters' ``.grad`` are never touched; the model is in eval mode during the call, its flags restored.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ._batching import check_batch_size, resolve_batch_size
from .base import (
    Explainer,
    PassCount,
    check_images,
    check_score,
    chunks,
    eval_mode,
    progress_bar,
    resolve_target,
    select_score,
)

__all__ = ["GradientInput", "Saliency", "input_gradients", "score_gradient"]


def score_gradient(model: nn.Module, inputs: Tensor, target: Tensor, score: str = "logit") -> Tensor:
    """One forward + backward pass: ``∂ score(model(x))[target] / ∂x`` for a chunk ``x`` (``B×C×H×W``).

    ``target`` is a ``LongTensor[B]``. The caller sets eval mode; gradients flow even under
    ``torch.no_grad()``.
    """
    leaf = inputs.detach().requires_grad_(True)
    with torch.enable_grad():
        logits = model(leaf)
        selected = select_score(logits, target, score)
        if not selected.requires_grad:
            raise ValueError(
                "the model's output does not depend on its input through autograd "
                "(does its forward run under torch.no_grad() or detach the input?)"
            )
        (grad,) = torch.autograd.grad(selected.sum(), leaf, allow_unused=True)
    return torch.zeros_like(leaf) if grad is None else grad


def input_gradients(
    model: nn.Module,
    inputs: Tensor,
    target: Tensor | int | None = None,
    score: str = "logit",
    batch_size: int | None = None,
    progress: bool = False,
) -> Tensor:
    """Gradients of the target scores with respect to ``inputs`` (``B×C×H×W`` → ``B×C×H×W``).

    Streams chunks of at most ``batch_size`` images (``None``: automatic, see ``_batching``).
    """
    inputs = check_images(inputs)
    check_score(score)
    check_batch_size(batch_size)
    with eval_mode(model):
        chunk = resolve_batch_size(batch_size, model, inputs)
        target = resolve_target(model, inputs, target, chunk)
        out = torch.empty_like(inputs)
        parts = list(chunks(inputs.shape[0], chunk))
        for part in progress_bar(parts, len(parts), progress, "gradients"):
            out[part] = score_gradient(model, inputs[part], target[part], score)
    return out


class Saliency(Explainer):
    """Input gradient ``∇ₓ f_t(x)`` (Simonyan et al. 2014); ``abs=True`` gives ``|∇ₓ f_t(x)|``.

    ``score``: ``"logit"`` (default), ``"prob"`` or ``"log_prob"``. Maps ``B×C×H×W``.
    """

    def __init__(
        self, model: nn.Module, abs: bool = False, batch_size: int | None = None, score: str = "logit",
        progress: bool = False,
    ) -> None:
        super().__init__(model)
        self.abs = bool(abs)
        self.score = check_score(score)
        self.batch_size = check_batch_size(batch_size)
        self.progress = progress

    def attribute(self, inputs: Tensor, target: Tensor | int | None = None) -> Tensor:
        grads = input_gradients(self.model, inputs, target, self.score, self.batch_size, self.progress)
        return grads.abs_() if self.abs else grads

    def planned_passes(self, height: int, width: int) -> PassCount:
        """One forward and one backward pass per image."""
        return PassCount(forward=1, backward=1)

    def __repr__(self) -> str:
        return f"Saliency(abs={self.abs}, score={self.score!r}, batch_size={self.batch_size})"


class GradientInput(Explainer):
    """Gradient ⊙ Input ``x ⊙ ∇ₓ f_t(x)`` (Shrikumar et al. 2016). Maps ``B×C×H×W``.

    For a linear model the map sums to ``f_t(x) − b_t`` (the logit without its bias).
    """

    def __init__(
        self, model: nn.Module, batch_size: int | None = None, score: str = "logit", progress: bool = False
    ) -> None:
        super().__init__(model)
        self.score = check_score(score)
        self.batch_size = check_batch_size(batch_size)
        self.progress = progress

    def attribute(self, inputs: Tensor, target: Tensor | int | None = None) -> Tensor:
        grads = input_gradients(self.model, inputs, target, self.score, self.batch_size, self.progress)
        return grads.mul_(inputs.detach())

    def planned_passes(self, height: int, width: int) -> PassCount:
        """One forward and one backward pass per image."""
        return PassCount(forward=1, backward=1)

    def __repr__(self) -> str:
        return f"GradientInput(score={self.score!r}, batch_size={self.batch_size})"
