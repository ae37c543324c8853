"""Attacks by name, with the defaults of ``freqlens attack`` (``make_attack("pgd", model, eps=8/255)``)."""

from __future__ import annotations

import torch
from torch import nn

from freqlens.errors import FreqlensError

from .base import Attack
from .cw import CW
from .fgsm import FGSM
from .pgd import PGD, LowFrequencyPGD
from .simba import SimBA

__all__ = ["ATTACKS", "DEFAULT_EPS", "DEFAULT_STEPS", "make_attack"]

#: The attack names :func:`make_attack` accepts (lower case).
ATTACKS = ("fgsm", "pgd", "pgd-l2", "cw", "simba", "lfpgd")
#: The budget ε per attack when none is given (SimBA: its step); CW has none.
DEFAULT_EPS = {"fgsm": 8 / 255, "pgd": 8 / 255, "lfpgd": 8 / 255, "pgd-l2": 0.5, "simba": 0.2}
#: The iterations per attack when none are given (SimBA: its query budget per image).
DEFAULT_STEPS = {"pgd": 10, "pgd-l2": 10, "lfpgd": 10, "cw": 100, "simba": 1000}


def make_attack(name: str, model: nn.Module, *, eps: float | None = None, steps: int | None = None,
                alpha: float | None = None, c: float = 1.0, kappa: float = 0.0, lr: float = 0.01,
                cutoff: int = 8, basis: str = "dct", order: str = "diagonal", restarts: int = 1,
                binary_search_steps: int = 5, generator: torch.Generator | None = None) -> Attack:
    """The attack ``name`` around ``model``, with the defaults of ``freqlens attack``.

    Args:
        name: One of :data:`ATTACKS` (case and surrounding spaces ignored): ``fgsm``, ``pgd`` (L∞),
            ``pgd-l2``, ``cw`` (L2), ``simba`` or ``lfpgd`` (low-frequency PGD).
        model: The classifier attacked.
        eps: The budget (SimBA: its step); default :data:`DEFAULT_EPS` (8/255 L∞, 0.5 L2, 0.2 SimBA).
        steps: Iterations (PGD, CW) or SimBA's query budget per image; default :data:`DEFAULT_STEPS`.
        alpha: PGD's step size; default ``eps / 4`` (``eps / 5`` for ``pgd-l2``).
        c: CW's trade-off constant.
        kappa: CW's confidence margin.
        lr: CW's Adam learning rate.
        cutoff: Low-frequency PGD's DCT bands ``i + j < cutoff``.
        basis: SimBA's basis (``pixel``/``dct``).
        order: SimBA's order of the directions.
        restarts: PGD's random restarts.
        binary_search_steps: CW's rounds of binary search over ``c``.
        generator: Random stream of PGD's random start and SimBA's order.

    Returns:
        The attack (``attack(x, y) -> x_adv``).

    Raises:
        FreqlensError: An unknown name (the message lists :data:`ATTACKS`), or a setting the attack
            refuses (``NAME: message``).
    """
    name = name.strip().lower()
    if name not in ATTACKS:
        raise FreqlensError(f"unknown attack {name!r}; expected one of {', '.join(ATTACKS)}")
    eps = DEFAULT_EPS.get(name, 0.0) if eps is None else eps
    steps = DEFAULT_STEPS.get(name, 1) if steps is None else steps
    alpha = (eps / 4 if name != "pgd-l2" else eps / 5) if alpha is None else alpha
    try:
        if name == "fgsm":
            return FGSM(model, eps=eps)
        if name in ("pgd", "pgd-l2"):
            return PGD(model, eps=eps, alpha=alpha, steps=steps, norm="inf" if name == "pgd" else "2",
                       restarts=restarts, generator=generator)
        if name == "lfpgd":
            return LowFrequencyPGD(model, eps=eps, alpha=alpha, steps=steps, cutoff=cutoff, restarts=restarts,
                                   generator=generator)
        if name == "cw":
            return CW(model, c=c, kappa=kappa, steps=steps, lr=lr, binary_search_steps=binary_search_steps)
        return SimBA(model, eps=eps, max_queries=steps, basis=basis, order=order, generator=generator)
    except ValueError as error:
        raise FreqlensError(f"{name}: {error}") from None
