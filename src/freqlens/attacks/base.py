"""Shared machinery of the attacks: input / label validation, eval mode, input gradients, random draws.

Every attack is called as ``attack(x, y) -> x_adv`` (or ``attack.attack(x, y)``) with ``x`` a
``B×C×H×W`` float batch in [0, 1] and ``y`` a ``LongTensor[B]`` (true classes; target classes when
``targeted=True``). The model is held in eval mode during the attack (every submodule's flag restored
after), gradients are taken with :func:`freqlens.utils.scores.input_gradient` (re-exported here) w.r.t.
the input only, so no parameter ``.grad`` is ever created or changed.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from freqlens.errors import InputError
from freqlens.utils.scores import input_gradient
from freqlens.utils.tensors import check_images as check_pixel_range
from freqlens.utils.tensors import check_model, eval_mode

__all__ = ["Attack", "check_budget", "check_images", "check_labels", "input_gradient", "per_image_norm", "rand"]


def check_images(inputs: Tensor, name: str = "inputs") -> Tensor:
    """:func:`freqlens.utils.tensors.check_images` with the range fixed to [0, 1].

    Attacks clamp their adversarial images to [0, 1], so they check that range whatever
    :func:`freqlens.pixel_range` says.

    Args:
        inputs: images ``B×C×H×W`` with pixels in [0, 1].
        name: the argument's name in error messages.

    Returns:
        ``inputs`` unchanged.

    Raises:
        InputError: bad shape, dtype, NaN / inf or pixels outside [0, 1].
    """
    return check_pixel_range(inputs, name, bounds=(0.0, 1.0))


def check_budget(eps: float, norm: str, image_shape: tuple[int, ...]) -> float:
    """Refuse an ε no [0, 1] image can use.

    That is L∞ ε > 1, or L2 ε above the norm of an all-ones image (``sqrt(C·H·W)``, the diagonal of
    the pixel cube) — typically ``8`` typed for ``8/255``.

    Args:
        eps: the budget, in pixel units of [0, 1] images.
        norm: ``"inf"`` (L∞) or ``"2"`` (L2).
        image_shape: shape of one image, ``(C, H, W)``.

    Returns:
        ``eps`` unchanged.

    Raises:
        InputError: with the hint that ε is in pixel units of [0, 1] images.
    """
    limit = 1.0 if norm == "inf" else math.sqrt(math.prod(int(size) for size in image_shape))
    if eps > limit:
        name = "L∞" if norm == "inf" else "L2"
        raise InputError(
            f"eps={eps:g} is larger than any {name} perturbation of a [0, 1] image of shape "
            f"{tuple(int(size) for size in image_shape)} ({limit:.4g}): ε is in pixel units of [0, 1] images, "
            "e.g. 8/255"
        )
    return eps


def check_labels(labels: Tensor, batch: int, num_classes: int, device: torch.device, name: str = "labels") -> Tensor:
    """Validate ``labels`` as integer class indices ``[B]`` in ``[0, num_classes)``.

    Args:
        labels: integer tensor ``[B]``.
        batch: the expected ``B``.
        num_classes: the number of logits of the model.
        device: device of the result.
        name: the argument's name in error messages.

    Returns:
        ``LongTensor[B]`` on ``device``.

    Raises:
        TypeError: ``labels`` is not a tensor.
        ValueError: non-integer dtype, wrong shape or an index out of range.
    """
    if not isinstance(labels, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of class indices, got {type(labels).__name__}")
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise ValueError(f"{name} must hold integer class indices, got dtype {labels.dtype}")
    if labels.dim() != 1 or labels.shape[0] != batch:
        raise ValueError(f"{name} must have shape [{batch}], got shape {tuple(labels.shape)}")
    if bool((labels < 0).any()) or bool((labels >= num_classes).any()):
        raise ValueError(
            f"{name} must lie in [0, {num_classes}) for a model with {num_classes} classes, "
            f"got values in [{int(labels.min())}, {int(labels.max())}]"
        )
    return labels.to(device=device, dtype=torch.long)


def per_image_norm(values: Tensor, norm: str) -> Tensor:
    """Norm of each image of a batch.

    Args:
        values: a batch ``B×…`` (e.g. perturbations ``B×C×H×W``).
        norm: ``"inf"`` (L∞) or ``"2"`` (L2).

    Returns:
        ``Tensor[B]``.
    """
    flat = values.flatten(1)
    return flat.abs().amax(dim=1) if norm == "inf" else flat.norm(dim=1)


def rand(shape: tuple[int, ...], generator: torch.Generator | None, like: Tensor, normal: bool = False) -> Tensor:
    """Uniform [0, 1) (or standard normal) draws on ``like``'s device and dtype.

    Args:
        shape: shape of the draws.
        generator: the source of randomness, or ``None`` for the global one; it may live on another
            device (the draws are made there and moved).
        like: a tensor whose device and dtype the draws take.
        normal: draw from the standard normal instead of uniform [0, 1).

    Returns:
        Tensor of ``shape``.
    """
    device = generator.device if generator is not None else like.device
    draw = torch.randn if normal else torch.rand
    return draw(shape, generator=generator, device=device, dtype=like.dtype).to(like.device)


def cross_entropy(labels: Tensor):
    """Per-image cross-entropy w.r.t. ``labels`` (a closure for :func:`input_gradient`)."""
    return lambda logits: F.cross_entropy(logits, labels, reduction="none")


def check_number(name: str, value: float, minimum: float = 0.0, strict: bool = True) -> float:
    """Validate a finite number above (or, with ``strict=False``, at least) ``minimum``.

    Args:
        name: the setting's name in the error message.
        value: the number to check.
        minimum: the lower bound.
        strict: require ``value > minimum``; otherwise ``value >= minimum``.

    Returns:
        ``value`` as a float.

    Raises:
        ValueError: ``value`` is not finite or is below the bound.
    """
    value = float(value)
    ok = value > minimum if strict else value >= minimum
    if not ok or not math.isfinite(value):
        relation = ">" if strict else "≥"
        raise ValueError(f"{name} must be a finite number {relation} {minimum}, got {value}")
    return value


def check_count(name: str, value: int, minimum: int = 1) -> int:
    """Validate an integer count ≥ ``minimum`` (bools refused).

    Args:
        name: the setting's name in the error message.
        value: the count to check.
        minimum: the smallest allowed value.

    Returns:
        ``value`` as an int.

    Raises:
        ValueError: ``value`` is not an integer or is below ``minimum``.
    """
    if isinstance(value, bool) or int(value) != value or int(value) < minimum:
        raise ValueError(f"{name} must be an integer ≥ {minimum}, got {value!r}")
    return int(value)


class Attack:
    """Base class: validates the inputs, holds the model in eval mode and calls :meth:`_run`.

    Args:
        model: the classifier, taking ``B×C×H×W`` images in [0, 1] and returning ``B×K`` logits.
        targeted: ``False``: ``y`` are the true classes and the attack tries to leave them;
            ``True``: ``y`` are the target classes and the attack tries to reach them.

    Raises:
        TypeError: ``model`` is not a ``torch.nn.Module``.
    """

    def __init__(self, model: nn.Module, targeted: bool = False) -> None:
        self.model = check_model(model)
        self.targeted = bool(targeted)

    def __call__(self, inputs: Tensor, labels: Tensor) -> Tensor:
        return self.attack(inputs, labels)

    def attack(self, inputs: Tensor, labels: Tensor) -> Tensor:
        """Adversarial examples for ``inputs``.

        Args:
            inputs: images ``B×C×H×W`` in [0, 1].
            labels: ``LongTensor[B]``: the true classes, or the target classes when ``targeted``.

        Returns:
            Adversarial images ``B×C×H×W`` in [0, 1] (same shape, dtype, device as ``inputs``).

        Raises:
            InputError: images outside [0, 1] or an ε no [0, 1] image can use.
            ValueError: the model does not return ``[batch, classes]`` logits, or bad labels.
        """
        check_images(inputs)
        if getattr(self, "eps", None) is not None:
            check_budget(float(self.eps), getattr(self, "norm", "inf"), tuple(inputs.shape[1:]))
        with eval_mode(self.model), torch.no_grad():
            logits = self.model(inputs[:1])
            if not isinstance(logits, Tensor) or logits.dim() != 2:
                raise ValueError("the model must return logits of shape [batch, classes]")
            labels = check_labels(labels, inputs.shape[0], logits.shape[1], inputs.device,
                                  "targets" if self.targeted else "labels")
            with torch.no_grad():
                adversarial = self._run(inputs.detach(), labels)
        return adversarial.detach().clamp(0.0, 1.0)

    def _run(self, inputs: Tensor, labels: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def _successful(self, logits: Tensor, labels: Tensor) -> Tensor:
        """``[B]`` bool: misclassified (untargeted) or classified as the target (targeted)."""
        predicted = logits.argmax(dim=1)
        return predicted == labels if self.targeted else predicted != labels

    def __repr__(self) -> str:
        settings = ", ".join(f"{k}={v!r}" for k, v in self._settings().items())
        return f"{type(self).__name__}({settings})"

    def _settings(self) -> dict:
        return {"targeted": self.targeted}

    def describe(self) -> dict:
        """Name and settings (JSON-able) of the attack."""
        return {"name": type(self).__name__, **self._settings()}
