"""Carlini–Wagner L2 attack (Carlini & Wagner 2017) in tanh space, optimised with Adam, with the
authors' binary search over the constant ``c`` per image."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from freqlens.attacks.base import Attack, check_count, check_number

__all__ = ["CW", "cw_margin"]

_BETA1, _BETA2, _ADAM_EPS = 0.9, 0.999, 1e-8
_NO_UPPER = 1e10  # Carlini–Wagner: no upper bound on c known yet


def cw_margin(logits: Tensor, labels: Tensor, kappa: float = 0.0, targeted: bool = False) -> Tensor:
    """CW objective f per image.

    Untargeted ``max(Z_y − max_{i≠y} Z_i, −κ)``, targeted ``max(max_{i≠t} Z_i − Z_t, −κ)``. The other classes' maximum masks the label with −inf, so it is correct for negative logits too.

    Args:
        logits: ``B×K`` logits ``Z``.
        labels: ``LongTensor[B]``: true classes ``y`` (untargeted) or targets ``t`` (targeted).
        kappa: the confidence κ ≥ 0 (the objective is floored at −κ).
        targeted: use the targeted form.

    Returns:
        ``Tensor[B]``.
    """
    own = logits.gather(1, labels[:, None]).squeeze(1)
    others = logits.scatter(1, labels[:, None], float("-inf")).amax(dim=1)
    margin = others - own if targeted else own - others
    return margin.clamp_min(-kappa)


class CW(Attack):
    """Minimise ``‖x' − x‖₂² + c·f(x')`` over ``w`` with ``x' = (tanh(w) + 1)/2`` (Adam, ``lr``, ``steps``),
    with Carlini–Wagner's binary search over ``c`` per image (Carlini & Wagner 2017, §V and their code's
    schedule): ``binary_search_steps`` rounds of ``steps`` Adam steps each, every round restarting from
    ``w = atanh(2x − 1)`` with fresh Adam moments; after a round an image that was made adversarial gets
    ``c ← (lower + upper)/2`` with ``upper = c`` (a smaller ``c`` weighs the distance more), one that was
    not gets ``lower = c`` and ``c ← 10·c`` while no upper bound is known, else ``(lower + upper)/2``.

    Per image the successful ``x'`` with the smallest L2 distance over all rounds is kept (images never
    made adversarial are returned unchanged); after a call ``best_l2`` (``inf`` for failures) and
    ``best_c`` (the constant of the kept example, NaN for failures) hold them per image. Cost: at most
    ``binary_search_steps · (steps + 1)`` forward and ``binary_search_steps · steps`` backward passes
    per image. Deterministic (no randomness).

    Args:
        model: the classifier (``B×C×H×W`` images in [0, 1] → ``B×K`` logits).
        c: the initial constant of every image (> 0).
        kappa: the confidence κ ≥ 0 of :func:`cw_margin`.
        steps: Adam steps per round.
        lr: Adam learning rate.
        targeted: labels are target classes to reach instead of true classes to leave.
        abort_early: a round stops when its total loss has not improved by 0.01 % over the last
            ``max(steps // 10, 1)`` steps.
        binary_search_steps: rounds of the search over ``c``; ``1`` is the plain attack at a fixed ``c``.

    Raises:
        ValueError: a non-positive ``c`` / ``lr``, a negative ``kappa`` or a count < 1.
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
        binary_search_steps: int = 5,
    ) -> None:
        super().__init__(model, targeted)
        self.c = check_number("c", c)
        self.kappa = check_number("kappa", kappa, strict=False)
        self.steps = check_count("steps", steps)
        self.lr = check_number("lr", lr)
        self.abort_early = bool(abort_early)
        self.binary_search_steps = check_count("binary_search_steps", binary_search_steps)

    def _run(self, inputs: Tensor, labels: Tensor) -> Tensor:
        batch = inputs.shape[0]
        const = torch.full((batch,), self.c, device=inputs.device, dtype=inputs.dtype)
        lower = torch.zeros_like(const)
        upper = torch.full_like(const, _NO_UPPER)
        best = inputs.clone()
        best_l2 = torch.full_like(const, float("inf"))
        best_c = torch.full_like(const, float("nan"))
        for _ in range(self.binary_search_steps):
            found, best, best_l2, best_c = self._round(inputs, labels, const, best, best_l2, best_c)
            upper = torch.where(found, torch.minimum(upper, const), upper)
            lower = torch.where(found, lower, torch.maximum(lower, const))
            bisect = (lower + upper) / 2
            const = torch.where(found | (upper < _NO_UPPER), bisect, const * 10)
        self.best_l2, self.best_c = best_l2, best_c
        return best

    def _round(self, inputs: Tensor, labels: Tensor, const: Tensor, best: Tensor, best_l2: Tensor,
               best_c: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """One round of Adam at the per-image constants ``const``: whether each image was made adversarial
        in this round, and the updated best examples, their L2 distances and constants."""
        squash = 1 - 1e-6
        w = torch.atanh((2 * inputs - 1).clamp(-squash, squash))
        first_moment, second_moment = torch.zeros_like(w), torch.zeros_like(w)
        found = torch.zeros_like(const, dtype=torch.bool)
        check_every, previous = max(self.steps // 10, 1), float("inf")

        def keep(adversarial: Tensor, logits: Tensor) -> None:  # the iterate: keep it when successful and closer
            nonlocal best, best_l2, best_c, found
            l2 = (adversarial - inputs).flatten(1).norm(dim=1)
            success = self._successful(logits, labels)
            better = success & (l2 < best_l2)
            found = found | success
            best = torch.where(better.view(-1, 1, 1, 1), adversarial, best)
            best_l2, best_c = torch.where(better, l2, best_l2), torch.where(better, const, best_c)

        for step in range(1, self.steps + 1):
            w_var = w.detach().requires_grad_(True)
            with torch.enable_grad():
                adversarial = (torch.tanh(w_var) + 1) / 2
                logits = self.model(adversarial)
                distance = (adversarial - inputs).flatten(1).pow(2).sum(dim=1)
                loss = distance + const * cw_margin(logits, labels, self.kappa, self.targeted)
                (grad,) = torch.autograd.grad(loss.sum(), w_var)
            keep(adversarial.detach(), logits.detach())
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
        final = (torch.tanh(w) + 1) / 2  # the final iterate too
        keep(final, self.model(final))
        return found, best, best_l2, best_c

    def _settings(self) -> dict:
        return {"c": self.c, "kappa": self.kappa, "steps": self.steps, "lr": self.lr,
                "targeted": self.targeted, "abort_early": self.abort_early,
                "binary_search_steps": self.binary_search_steps}
