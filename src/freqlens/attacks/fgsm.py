"""Fast Gradient Sign Method (Goodfellow et al. 2015): ``x' = clip(x + ε·sign(∇ₓ CE(f(x), y)), 0, 1)``."""

from __future__ import annotations

from torch import Tensor, nn

from freqlens.attacks.base import Attack, check_number, cross_entropy, input_gradient

__all__ = ["FGSM"]


class FGSM(Attack):
    """One signed-gradient step of size ``eps`` (L∞). Targeted: ``x − ε·sign(∇ₓ CE(f(x), target))``.

    Args:
        model: the classifier (``B×C×H×W`` images in [0, 1] → ``B×K`` logits).
        eps: the step size ε ≥ 0, in pixel units (e.g. ``8/255``).
        targeted: labels are target classes to reach instead of true classes to leave.
    """

    def __init__(self, model: nn.Module, eps: float = 8 / 255, targeted: bool = False) -> None:
        super().__init__(model, targeted)
        self.eps = check_number("eps", eps, strict=False)

    def _run(self, inputs: Tensor, labels: Tensor) -> Tensor:
        grad, _ = input_gradient(self.model, inputs, cross_entropy(labels))
        direction = -grad.sign() if self.targeted else grad.sign()
        return (inputs + self.eps * direction).clamp(0.0, 1.0)

    def _settings(self) -> dict:
        return {"eps": self.eps, "targeted": self.targeted}
