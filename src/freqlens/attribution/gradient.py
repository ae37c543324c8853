"""Plain gradient explainers: Saliency (Simonyan et al. 2014) and Gradient ⊙ Input (Shrikumar et al. 2016).

Both differentiate the target's score (logit by default, or softmax probability / log-probability)
with respect to the input pixels, per channel: maps are ``B×C×H×W``. Images are streamed in chunks of
at most ``batch_size`` per forward + backward pass; the gradient of the *sum* of the selected scores
over a chunk gives every image's own gradient in one backward pass (images do not interact in eval
mode). Gradients are taken with :func:`torch.autograd.grad` with respect to the inputs only, so the
parameters' ``.grad`` are never touched; the model is in eval mode during the call, its flags restored.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from freqlens.utils.scores import input_gradient
from freqlens.utils.signatures import forwards_options

from .base import (
    Call,
    Explainer,
    PassCount,
    check_score,
    chunks,
    progress_bar,
    select_score,
)

__all__ = ["GradientInput", "Saliency", "input_gradients", "score_gradient"]


def score_gradient(model: nn.Module, inputs: Tensor, target: Tensor, score: str = "logit") -> Tensor:
    """One forward + backward pass: ``∂ score(model(x))[target] / ∂x`` for a chunk ``x``.

    The caller sets eval mode; gradients flow even under ``torch.no_grad()``.

    Args:
        model: classifier returning ``B×K`` logits.
        inputs: a chunk ``x`` of ``B×C×H×W`` images.
        target: ``LongTensor[B]``.
        score: ``"logit"``, ``"prob"`` or ``"log_prob"`` of the target.

    Returns:
        ``B×C×H×W`` gradients.
    """
    gradient, _ = input_gradient(model, inputs, lambda logits: select_score(logits, target, score))
    return gradient


def _gradient_chunks(model: nn.Module, inputs: Tensor, target: Tensor, score: str, chunk: int,
                     progress: bool) -> Tensor:
    """:func:`score_gradient` of ``inputs`` streamed ``chunk`` images at a time (eval mode set by the caller)."""
    out = torch.empty_like(inputs)
    parts = list(chunks(inputs.shape[0], chunk))
    for part in progress_bar(parts, len(parts), progress, "gradients"):
        out[part] = score_gradient(model, inputs[part], target[part], score)
    return out


class Saliency(Explainer):
    """Input gradient ``∇ₓ f_t(x)`` (Simonyan et al. 2014); ``abs=True`` gives ``|∇ₓ f_t(x)|``.

    Maps ``B×C×H×W``; one forward and one backward pass per image.

    Args:
        model: classifier returning ``B×K`` logits.
        abs: return ``|∇ₓ f_t(x)|``.
        batch_size: most images per forward + backward pass (``None``: automatic).
        score: ``"logit"`` (default), ``"prob"`` or ``"log_prob"``.
        progress: show a tqdm bar over the chunks.
    """

    name = "saliency"

    def __init__(
        self, model: nn.Module, abs: bool = False, batch_size: int | None = None, score: str = "logit",
        progress: bool = False,
    ) -> None:
        super().__init__(model, batch_size=batch_size, progress=progress)
        self.abs = bool(abs)
        self.score = check_score(score)

    def _attribute(self, call: Call) -> Tensor:
        grads = _gradient_chunks(self.model, call.inputs, call.target, self.score, call.chunk, self.progress)
        return grads.abs_() if self.abs else grads

    def planned_passes(self, height: int, width: int) -> PassCount:
        """One forward and one backward pass per image.

        Args:
            height: image height in pixels (unused).
            width: image width in pixels (unused).
        """
        return PassCount(forward=1, backward=1)


@forwards_options(Saliency.__init__, skip=("model", "abs"))
def input_gradients(model: nn.Module, inputs: Tensor, target: Tensor | int | None = None, **options: Any) -> Tensor:
    """Gradients of the target scores with respect to ``inputs`` (``B×C×H×W`` → ``B×C×H×W``): the function
    form of :class:`Saliency` (signed).

    Args:
        model: classifier returning ``B×K`` logits (eval mode during the call, flags restored).
        inputs: ``B×C×H×W`` images in [0, 1].
        target: ``LongTensor[B]``, an int, or ``None`` = the predicted class.
        batch_size, score, progress: as :class:`Saliency`.

    Returns:
        ``B×C×H×W`` gradients.
    """
    return Saliency(model, abs=False, **options).attribute(inputs, target)


class GradientInput(Explainer):
    """Gradient ⊙ Input ``x ⊙ ∇ₓ f_t(x)`` (Shrikumar et al. 2016). Maps ``B×C×H×W``.

    For a linear model the map sums to ``f_t(x) − b_t`` (the logit without its bias). Arguments as
    :class:`Saliency` (without ``abs``).

    Args:
        model: classifier returning ``B×K`` logits.
        batch_size: most images per forward + backward pass (``None``: automatic).
        score: ``"logit"`` (default), ``"prob"`` or ``"log_prob"``.
        progress: show a tqdm bar over the chunks.
    """

    name = "gradient_input"

    def __init__(
        self, model: nn.Module, batch_size: int | None = None, score: str = "logit", progress: bool = False
    ) -> None:
        super().__init__(model, batch_size=batch_size, progress=progress)
        self.score = check_score(score)

    def _attribute(self, call: Call) -> Tensor:
        grads = _gradient_chunks(self.model, call.inputs, call.target, self.score, call.chunk, self.progress)
        return grads.mul_(call.inputs)

    def planned_passes(self, height: int, width: int) -> PassCount:
        """One forward and one backward pass per image.

        Args:
            height: image height in pixels (unused).
            width: image width in pixels (unused).
        """
        return PassCount(forward=1, backward=1)
