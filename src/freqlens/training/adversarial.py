"""Adversarial training: PGD-AT (Madry et al. 2018) and fast FGSM-AT (Wong, Rice & Kolter 2020).

:class:`Adversarial` wraps an attack bound to the model being trained (``freqlens.attacks.PGD``,
``FGSM``, or any ``attack(x, y) -> x_adv`` callable); each training step the attack runs on the clean
batch with the model in eval mode (every module's flag restored after) and the optimiser step is taken
on the adversarial batch, in train mode (the loop switches back and clears parameter gradients).

:class:`FastFGSM` is the "fast is better than free" attack: a random start ``δ ~ U(−ε, ε)``, one
signed-gradient step of size ``α`` (Wong et al. use ``α = 1.25·ε``), projection onto the ε-ball and
onto [0, 1]. Unlike Wong et al.'s code (which attacks in train mode), the gradient is taken in eval
mode, like every attack of freqlens, so the attack does not touch BatchNorm statistics.
"""

from __future__ import annotations

import inspect
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from freqlens.attacks.base import check_budget
from freqlens.training.augment import TrainingConfigError
from freqlens.training.modes import evaluating
from freqlens.utils.scores import input_gradient

_SETTINGS = ("eps", "alpha", "steps", "norm", "random_start", "restarts", "targeted")


def _check_eps(name: str, value: Any) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise TrainingConfigError(f"{name} must be a positive number, got {value!r}") from None
    if not 0.0 < value < float("inf"):
        raise TrainingConfigError(f"{name} must be a positive finite number, got {value}")
    if name == "eps":  # these modes are L∞: ε > 1 is 8 typed for 8/255
        check_budget(value, "inf", ())
    return value


class FastFGSM:
    """Fast FGSM (Wong et al. 2020): ``x_adv = Π_[0,1] Π_ε (x + δ₀ + α·sign ∇ₓ L(f(x + δ₀), y))``
    with ``δ₀ ~ U(−ε, ε)`` (L∞, clipped so that ``x + δ₀`` is in [0, 1]).

    ``perturb(model, x, y, generator=None) -> x_adv`` (``B×C×H×W`` in [0, 1]); the random start is drawn
    from ``generator``; the model's input gradient is taken with :func:`torch.autograd.grad` in eval
    mode (:func:`freqlens.utils.scores.input_gradient`), so no parameter ``.grad`` is created.

    Args:
        eps: the L∞ budget ε (> 0; a value > 1 is refused as a likely ``8`` typed for ``8/255``).
        alpha: the step size α (> 0; Wong et al. use ``1.25·ε``).

    Raises:
        TrainingConfigError: a non-positive or non-finite ``eps`` / ``alpha``, or ``eps > 1``.
    """

    def __init__(self, eps: float = 8 / 255, alpha: float = 10 / 255) -> None:
        self.eps = _check_eps("eps", eps)
        self.alpha = _check_eps("alpha", alpha)

    def perturb(self, model: nn.Module, x: Tensor, y: Tensor,
                generator: torch.Generator | None = None) -> Tensor:
        """The fast-FGSM adversarial batch of ``x``.

        Args:
            model: the model being trained (its input gradient is taken in eval mode).
            x: the clean batch ``B×C×H×W`` in [0, 1].
            y: the labels ``LongTensor[B]`` (cross-entropy loss).
            generator: the random source of the start ``δ₀`` (``None``: torch's global RNG).

        Returns:
            ``x_adv``, ``B×C×H×W`` in [0, 1], detached.
        """
        x = x.detach()
        device = generator.device if generator is not None else x.device
        start = torch.rand(x.shape, generator=generator, device=device, dtype=x.dtype).to(x.device)
        delta = ((2.0 * start - 1.0) * self.eps).clamp(-x, 1.0 - x)
        with evaluating(model):  # ∇_δ L(f(x + δ)) = ∇ₓ' L(f(x')) at x' = x + δ
            grad, _ = input_gradient(model, x + delta, lambda logits: F.cross_entropy(logits, y))
        delta = (delta + self.alpha * grad.sign()).clamp(-self.eps, self.eps)
        return (x + delta).clamp(0.0, 1.0).detach()

    def describe(self) -> dict[str, Any]:
        return {"name": type(self).__name__, "eps": self.eps, "alpha": self.alpha}

    def __repr__(self) -> str:
        return f"FastFGSM(eps={self.eps:.6g}, alpha={self.alpha:.6g})"


def _accepts_generator(function: Any) -> bool:
    try:
        return "generator" in inspect.signature(function).parameters
    except (TypeError, ValueError):
        return False


@contextmanager
def _lend_generator(attack: Any, generator: torch.Generator | None):
    """Give an attack that draws from ``attack.generator`` (``None``: torch's global RNG) the loop's
    generator for one call, so adversarial training is reproducible and resumable; restored after.
    An attack built with its own generator keeps it."""
    lend = generator is not None and hasattr(attack, "generator") and attack.generator is None
    if lend:
        attack.generator = generator
    try:
        yield
    finally:
        if lend:
            attack.generator = None


class PGDTraining:
    """Madry's PGD-AT attack built on the model being trained, at every step: ``perturb(model, x, y,
    generator)`` runs :class:`freqlens.attacks.PGD` (L∞, random start from ``generator``) on ``model``.

    Use it when the model does not exist yet where the mode is made (e.g. ``trained_model`` in the
    studies): ``Adversarial(PGDTraining(8 / 255, 2 / 255, 7))`` = ``Adversarial.pgd(8 / 255, 2 / 255, 7)``.

    Args:
        eps: the L∞ budget ε (> 0, ≤ 1).
        alpha: the step size (> 0).
        steps: the number of PGD steps (an int ≥ 1).

    Raises:
        TrainingConfigError: a bad ``eps``, ``alpha`` or ``steps``.
    """

    def __init__(self, eps: float = 8 / 255, alpha: float = 2 / 255, steps: int = 7) -> None:
        self.eps, self.alpha = _check_eps("eps", eps), _check_eps("alpha", alpha)
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise TrainingConfigError(f"steps must be an integer >= 1, got {steps!r}")
        self.steps, self.norm = steps, "inf"

    def perturb(self, model: nn.Module, x: Tensor, y: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """The PGD adversarial batch of ``x`` against ``model``.

        Args:
            model: the model being trained.
            x: the clean batch ``B×C×H×W`` in [0, 1].
            y: the true labels ``LongTensor[B]`` (untargeted).
            generator: the random source of the random start (``None``: torch's global RNG).

        Returns:
            ``x_adv``, ``B×C×H×W`` in [0, 1].
        """
        from freqlens.attacks import PGD

        attack = PGD(model, eps=self.eps, alpha=self.alpha, steps=self.steps, norm="inf", random_start=True,
                     generator=generator)
        return attack(x, y)

    def describe(self) -> dict[str, Any]:
        return {"name": "PGD", "eps": self.eps, "alpha": self.alpha, "steps": self.steps, "norm": self.norm}


class Adversarial:
    """Adversarial training: the optimiser step sees ``attack(x, y)`` instead of ``x``.

    ``attack``: either an attack bound to the trained model, called as ``attack(x, y) -> x_adv``
    (e.g. ``freqlens.attacks.PGD(model, eps=8/255, alpha=2/255, steps=7)`` for Madry's PGD-AT), or an
    object with ``perturb(model, x, y, generator) -> x_adv`` such as :class:`FastFGSM`
    (``Adversarial.fast(eps, alpha)``). The attack runs with the model in eval mode. An attack whose
    ``generator`` attribute is ``None`` draws its random start from the loop's generator.
    """

    name = "adversarial"

    def __init__(self, attack: Any) -> None:
        if not (callable(attack) or callable(getattr(attack, "perturb", None))):
            raise TrainingConfigError(f"attack must be callable as attack(x, y) or have perturb(model, x, y), "
                                      f"got {type(attack).__name__}")
        self.attack = attack

    @classmethod
    def fast(cls, eps: float = 8 / 255, alpha: float = 10 / 255) -> Adversarial:
        """Fast FGSM adversarial training (Wong et al. 2020) with :class:`FastFGSM`.

        Args:
            eps: the L∞ budget ε.
            alpha: the step size α.

        Returns:
            The training mode.
        """
        return cls(FastFGSM(eps=eps, alpha=alpha))

    @classmethod
    def pgd(cls, eps: float = 8 / 255, alpha: float = 2 / 255, steps: int = 7) -> Adversarial:
        """PGD adversarial training (Madry et al. 2018) with :class:`PGDTraining`, built on whatever model
        is trained.

        Args:
            eps: the L∞ budget ε.
            alpha: the step size.
            steps: the number of PGD steps.

        Returns:
            The training mode.
        """
        return cls(PGDTraining(eps=eps, alpha=alpha, steps=steps))

    def transform(self, model: nn.Module, x: Tensor, y: Tensor,
                  generator: torch.Generator | None = None) -> Tensor:
        """The adversarial batch the optimiser step sees, computed with the model in eval mode.

        Args:
            model: the model being trained.
            x: the clean batch ``B×C×H×W`` in [0, 1].
            y: the labels ``LongTensor[B]``.
            generator: the loop's generator, lent to an attack whose ``generator`` is ``None``.

        Returns:
            ``attack(x, y)``, same shape as ``x``.

        Raises:
            TrainingConfigError: the attack is bound to another model than ``model``.
        """
        perturb = getattr(self.attack, "perturb", None)
        with evaluating(model):
            if callable(perturb):
                return perturb(model, x, y, generator=generator)
            bound = getattr(self.attack, "model", None)
            if isinstance(bound, nn.Module) and bound is not model:
                raise TrainingConfigError(f"the attack {type(self.attack).__name__} is bound to another model "
                                          "than the one being trained; build it on the trained model")
            if _accepts_generator(self.attack):
                return self.attack(x, y, generator=generator)
            with _lend_generator(self.attack, generator):
                return self.attack(x, y)

    def describe(self) -> dict[str, Any]:
        """``{"name": "adversarial", "attack": class name, eps, alpha, steps, norm, ... when present}``."""
        settings = {key: getattr(self.attack, key) for key in _SETTINGS
                    if isinstance(getattr(self.attack, key, None), (bool, int, float, str))}
        describe = getattr(self.attack, "describe", None)
        if callable(describe) and isinstance(extra := describe(), dict):
            settings.update({key: value for key, value in extra.items()
                             if key != "name" and isinstance(value, (bool, int, float, str))})
        return {"name": self.name, "attack": type(self.attack).__name__, **settings}

    def __repr__(self) -> str:
        return f"Adversarial({self.attack!r})"


__all__ = ["Adversarial", "FastFGSM"]
