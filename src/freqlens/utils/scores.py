"""The score of a target and the gradient of an objective with respect to a model's input.

One definition each, shared by explainers, metrics, attacks, training and the analyses (a leaf module:
torch and :mod:`freqlens.utils.tensors` only):

* :func:`select_score`: the target's logit, softmax probability or log-probability per row of a logits
  batch (:data:`SCORES`); half-precision logits are read in float32.
* :func:`input_gradient`: ``∇ₓ Σ objective(model(x))`` with respect to the input only (the parameters'
  ``.grad`` are never touched), with the model's output.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from freqlens.utils.tensors import check_logits

__all__ = ["SCORES", "check_score", "check_target_range", "input_gradient", "select_score"]

#: Scores of a target that explainers explain and metrics read: the raw logit, the softmax probability
#: or its logarithm.
SCORES = ("logit", "prob", "log_prob")


def check_score(score: str) -> str:
    """Return ``score`` if it is one of :data:`SCORES`.

    Raises:
        ValueError: any other value.
    """
    if score not in SCORES:
        raise ValueError(f"unknown score {score!r}; expected one of {', '.join(SCORES)}")
    return score


def check_target_range(target: Tensor, num_classes: int) -> None:
    """Check that every class index of ``target`` is below ``num_classes``.

    Args:
        target: ``LongTensor[B]`` of class indices.
        num_classes: the number ``K`` of model outputs.

    Raises:
        ValueError: a class index of ``target`` is not below ``num_classes``.
    """
    if target.numel() and int(target.max()) >= num_classes:
        raise ValueError(f"target class {int(target.max())} is out of range for a model with {num_classes} outputs")


def select_score(logits: Tensor, target: Tensor, score: str = "logit") -> Tensor:
    """The target's score per row of ``logits``.

    Args:
        logits: ``B×K`` model output (checked: a finite ``B×K`` tensor with one row per target); float16
            / bfloat16 logits are read in float32.
        target: ``LongTensor[B]`` of class indices (checked against ``K``).
        score: ``"logit"``, ``"prob"`` (softmax probability) or ``"log_prob"`` (its logarithm).

    Returns:
        ``Tensor[B]``, differentiable with respect to ``logits``.

    Raises:
        ValueError: an unknown ``score`` or a class index out of range.
        InputError: malformed logits.
    """
    check_logits(logits, target.shape[0])
    check_score(score)
    check_target_range(target, logits.shape[1])
    if logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()
    if score == "prob":
        logits = logits.softmax(dim=1)
    elif score == "log_prob":
        logits = logits.log_softmax(dim=1)
    return logits.gather(1, target[:, None]).squeeze(1)


def input_gradient(
    model: Callable[[Tensor], Tensor], inputs: Tensor, objective: Callable[[Tensor], Tensor]
) -> tuple[Tensor, Tensor]:
    """One forward + backward pass: the gradient of ``Σ objective(model(x))`` with respect to ``x``.

    Taken with :func:`torch.autograd.grad` on a detached leaf copy of ``inputs`` (gradients flow even under
    ``torch.no_grad()``; the parameters' ``.grad`` are never touched). The caller picks the model's mode
    (eval for explanations). Summing a per-image objective gives every image its own gradient when images
    do not interact (eval mode).

    Args:
        model: a module or any callable ``B×… → output`` (e.g. a feature extractor).
        inputs: ``B×C×H×W`` (any shape the model takes).
        objective: ``output → Tensor`` (per image, or already summed): a score, a loss, a distance.

    Returns:
        ``(gradient, output)``: ``gradient`` shaped like ``inputs`` (zeros where the objective does not
            depend on an input), ``output`` the model's output, both detached.

    Raises:
        ValueError: the objective does not depend on the input through autograd (a forward under
            ``torch.no_grad()`` or a detached input).
    """
    leaf = inputs.detach().requires_grad_(True)
    with torch.enable_grad():
        output = model(leaf)
        value = objective(output)
        if not value.requires_grad:
            raise ValueError(
                "the model's output does not depend on its input through autograd "
                "(does its forward run under torch.no_grad() or detach the input?)"
            )
        (grad,) = torch.autograd.grad(value.sum(), leaf, allow_unused=True)
    gradient = torch.zeros_like(leaf) if grad is None else grad
    return gradient.detach(), output.detach()
