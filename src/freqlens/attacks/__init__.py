"""freqlens.attacks: adversarial attacks in pixel space [0, 1] (see DESIGN.md, "Attacks").

``attack = Cls(model, ...)``; ``x_adv = attack(x, y)``: FGSM, PGD (L∞/L2, random start, restarts), CW
(L2), SimBA (pixel/DCT basis, query-based) and LowFrequencyPGD (perturbation in the low DCT bands),
plus robust accuracy and attack summaries; :func:`make_attack` builds one by name with the defaults of
``freqlens attack``. Imports only ``freqlens.errors``, ``freqlens.spectral`` and ``freqlens.utils``.
"""

from freqlens.attacks.base import Attack
from freqlens.attacks.cw import CW, cw_margin
from freqlens.attacks.evaluation import (
    AttackResult,
    attack_summary,
    robust_accuracy,
    robust_correct,
    run_attack,
)
from freqlens.attacks.fgsm import FGSM
from freqlens.attacks.pgd import NORMS, PGD, LowFrequencyPGD
from freqlens.attacks.registry import ATTACKS, make_attack
from freqlens.attacks.simba import BASES, ORDERS, SimBA

__all__ = [
    "ATTACKS",
    "BASES",
    "CW",
    "FGSM",
    "NORMS",
    "ORDERS",
    "PGD",
    "Attack",
    "AttackResult",
    "LowFrequencyPGD",
    "SimBA",
    "attack_summary",
    "cw_margin",
    "make_attack",
    "robust_accuracy",
    "robust_correct",
    "run_attack",
]
