"""Robust accuracy and attack summaries, streamed over the images in chunks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from freqlens.attacks.base import check_images, check_labels
from freqlens.utils.tensors import chunks, predict

__all__ = ["AttackResult", "attack_summary", "robust_accuracy", "robust_correct", "run_attack"]


@dataclass
class AttackResult:
    """Per-image outcome of an (untargeted) attack.

    Args:
        inputs: the clean images ``B×C×H×W``.
        adversarial: the attacked images ``B×C×H×W``.
        labels: the true classes ``LongTensor[B]``.
        clean_correct: ``BoolTensor[B]``: the clean image is classified as its label.
        adversarial_correct: ``BoolTensor[B]``: the attacked image is still classified as its label.
        queries: ``LongTensor[B]`` of model queries (query-based attacks such as SimBA), else ``None``.
    """

    inputs: Tensor
    adversarial: Tensor
    labels: Tensor
    clean_correct: Tensor  # bool [B]
    adversarial_correct: Tensor  # bool [B]
    queries: Tensor | None  # long [B] (query-based attacks), else None

    def summary(self) -> dict:
        """Clean / robust accuracy, success rate among the initially correct images, mean L2 and L∞
        norms of the perturbation (all images, and the successful ones), mean queries (SimBA)."""
        delta = (self.adversarial - self.inputs).flatten(1)
        l2, linf = delta.norm(dim=1), delta.abs().amax(dim=1)
        correct = self.clean_correct
        success = correct & ~self.adversarial_correct
        n_correct = int(correct.sum())
        summary = {
            "n_images": int(self.labels.shape[0]),
            "clean_accuracy": float(correct.float().mean()),
            "robust_accuracy": float(self.adversarial_correct.float().mean()),
            "success_rate": float(success.sum()) / n_correct if n_correct else float("nan"),
            "mean_l2": float(l2.mean()),
            "mean_linf": float(linf.mean()),
            "mean_l2_successful": float(l2[success].mean()) if bool(success.any()) else float("nan"),
            "mean_linf_successful": float(linf[success].mean()) if bool(success.any()) else float("nan"),
        }
        if self.queries is not None:
            summary["mean_queries"] = float(self.queries.float().mean())
            summary["mean_queries_successful"] = (
                float(self.queries[success].float().mean()) if bool(success.any()) else float("nan"))
        return summary


def run_attack(
    model: nn.Module,
    inputs: Tensor,
    labels: Tensor,
    attack: Callable[[Tensor, Tensor], Tensor],
    batch_size: int | None = None,
    progress: bool = False,
) -> AttackResult:
    """Attack ``inputs`` in chunks and record per-image correctness before and after.

    Args:
        model: the classifier (``B×C×H×W`` images in [0, 1] → ``B×K`` logits).
        inputs: images ``B×C×H×W`` in [0, 1].
        labels: the true classes ``LongTensor[B]`` (the attack is untargeted).
        attack: ``attack(x, y) -> x_adv``, e.g. an :class:`~freqlens.attacks.Attack`.
        batch_size: images per chunk (``None``: all at once).
        progress: show a tqdm bar over chunks.

    Returns:
        The :class:`AttackResult` (with ``queries`` when the attack records them).

    Raises:
        ValueError: the attack is targeted, or bad labels.
    """
    check_images(inputs)
    if getattr(attack, "targeted", False):
        raise ValueError("robust accuracy needs an untargeted attack (labels are the true classes)")
    clean_logits = predict(model, inputs, batch_size)
    labels = check_labels(labels, inputs.shape[0], clean_logits.shape[1], inputs.device)
    parts = list(chunks(inputs.shape[0], batch_size))
    adversarial, queries = [], []
    for part in tqdm(parts, desc="attack", unit="chunk", disable=not progress, leave=False):
        adversarial.append(attack(inputs[part], labels[part]).detach())
        if getattr(attack, "queries", None) is not None:
            queries.append(attack.queries.detach().clone())
    adversarial_images = torch.cat(adversarial)
    adversarial_logits = predict(model, adversarial_images, batch_size)
    return AttackResult(
        inputs=inputs,
        adversarial=adversarial_images,
        labels=labels,
        clean_correct=clean_logits.argmax(dim=1) == labels,
        adversarial_correct=adversarial_logits.argmax(dim=1) == labels,
        queries=torch.cat(queries) if len(queries) == len(parts) else None,
    )


def robust_correct(model: nn.Module, inputs: Tensor, labels: Tensor, attack: Callable[[Tensor, Tensor], Tensor],
                   batch_size: int | None = None, progress: bool = False) -> Tensor:
    """Whether each attacked image is still classified as its label.

    Args:
        model: the classifier.
        inputs: images ``B×C×H×W`` in [0, 1].
        labels: the true classes ``LongTensor[B]``.
        attack: an untargeted ``attack(x, y) -> x_adv``.
        batch_size: images per chunk (``None``: all at once).
        progress: show a tqdm bar over chunks.

    Returns:
        ``BoolTensor[B]``.
    """
    return run_attack(model, inputs, labels, attack, batch_size, progress).adversarial_correct


def robust_accuracy(model: nn.Module, inputs: Tensor, labels: Tensor, attack: Callable[[Tensor, Tensor], Tensor],
                    batch_size: int | None = None, progress: bool = False) -> float:
    """Share of images still correctly classified after ``attack`` (streamed in chunks): the mean of
    :func:`robust_correct`.

    Args:
        model, inputs, labels, attack, batch_size, progress: as :func:`robust_correct`.

    Returns:
        The robust accuracy in [0, 1].
    """
    return float(robust_correct(model, inputs, labels, attack, batch_size, progress).float().mean())


def attack_summary(model: nn.Module, inputs: Tensor, labels: Tensor, attack: Callable[[Tensor, Tensor], Tensor],
                   batch_size: int | None = None, progress: bool = False) -> dict:
    """:meth:`AttackResult.summary` of :func:`run_attack`.

    Args:
        model, inputs, labels, attack, batch_size, progress: as :func:`robust_correct`.

    Returns:
        The summary dict (accuracies, success rate, perturbation norms, queries).
    """
    return run_attack(model, inputs, labels, attack, batch_size, progress).summary()
