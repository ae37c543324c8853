"""Carlini–Wagner L2 attack (Carlini & Wagner 2017) in tanh space, optimised with Adam."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from freqlens.attacks.base import Attack, check_count, check_number

__all__ = ["CW", "cw_margin"]

_BETA1, _BETA2, _ADAM_EPS = 0.9, 0.999, 1e-8


def cw_margin(logits: Tensor, labels: Tensor, kappa: float = 0.0, targeted: bool = False) -> Tensor:
    """``[B]`` CW objective f: untargeted ``max(Z_y − max_{i≠y} Z_i, −κ)``, targeted
    ``max(max_{i≠t} Z_i − Z_t, −κ)``. The other classes' maximum masks the label with −inf, so it is
    correct for negative logits too."""
    own = logits.gather(1, labels[:, None]).squeeze(1)
    others = logits.scatter(1, labels[:, None], float("-inf")).amax(dim=1)
    margin = others - own if targeted else own - others
    return margin.clamp_min(-kappa)


class CW(Attack):
    """Minimise ``‖x' − x‖₂² + c·f(x')`` over ``w`` with ``x' = (tanh(w) + 1)/2`` (Adam, ``lr``, ``steps``).

    Per image the successful ``x'`` with the smallest L2 distance is kept (images never made
    adversarial are returned unchanged). ``abort_early``: stop when the total loss has not improved by
    0.01 % over the last ``max(steps // 10, 1)`` steps. Deterministic (no randomness).
    """

    def __init__(
        self,
        model: nn.Module,
        c: float = 1.0,
        kappa: float = 0.0,
        steps: int = 100,
        lr: float = 0.01,
        targeted: bool = False,
        abort_early: bool = True,
    ) -> None:
        super().__init__(model, targeted)
        self.c = check_number("c", c)
        self.kappa = check_number("kappa", kappa, strict=False)
        self.steps = check_count("steps", steps)
        self.lr = check_number("lr", lr)
        self.abort_early = bool(abort_early)

    def _run(self, inputs: Tensor, labels: Tensor) -> Tensor:
        squash = 1 - 1e-6
        w = torch.atanh((2 * inputs - 1).clamp(-squash, squash))
        first_moment = torch.zeros_like(w)
        second_moment = torch.zeros_like(w)
        best = inputs.clone()
        best_l2 = torch.full((inputs.shape[0],), float("inf"), device=inputs.device, dtype=inputs.dtype)
        check_every = max(self.steps // 10, 1)
        previous = float("inf")

        def objective(w_var: Tensor) -> tuple[Tensor, Tensor]:  # per-image loss and logits
            adversarial = (torch.tanh(w_var) + 1) / 2
            logits = self.model(adversarial)
            distance = (adversarial - inputs).flatten(1).pow(2).sum(dim=1)
            return distance + self.c * cw_margin(logits, labels, self.kappa, self.targeted), logits.detach()

        for step in range(1, self.steps + 1):
            w_var = w.detach().requires_grad_(True)
            with torch.enable_grad():
                loss, logits = objective(w_var)
                (grad,) = torch.autograd.grad(loss.sum(), w_var)
            # the iterate evaluated at this step: keep it when successful and closer
            adversarial = (torch.tanh(w) + 1) / 2
            l2 = (adversarial - inputs).flatten(1).norm(dim=1)
            better = self._successful(logits, labels) & (l2 < best_l2)
            best = torch.where(better.view(-1, 1, 1, 1), adversarial, best)
            best_l2 = torch.where(better, l2, best_l2)
            # Adam update of w
            first_moment = _BETA1 * first_moment + (1 - _BETA1) * grad
            second_moment = _BETA2 * second_moment + (1 - _BETA2) * grad * grad
            m_hat = first_moment / (1 - _BETA1**step)
            v_hat = second_moment / (1 - _BETA2**step)
            w = w - self.lr * m_hat / (v_hat.sqrt() + _ADAM_EPS)
            if self.abort_early and step % check_every == 0:
                total = float(loss.sum())
                if total > previous * 0.9999:
                    break
                previous = total
        # the final iterate too
        adversarial = (torch.tanh(w) + 1) / 2
        logits = self.model(adversarial)
        l2 = (adversarial - inputs).flatten(1).norm(dim=1)
        better = self._successful(logits, labels) & (l2 < best_l2)
        best = torch.where(better.view(-1, 1, 1, 1), adversarial, best)
        self.best_l2 = torch.where(better, l2, best_l2)
        return best

    def _settings(self) -> dict:
        return {"c": self.c, "kappa": self.kappa, "steps": self.steps, "lr": self.lr,
                "targeted": self.targeted, "abort_early": self.abort_early}
