"""The FORGrad σ of each method of a command (``--forgrad auto|SIGMA|none`` of ``freqlens explain`` and
``freqlens evaluate``): σ* searched per method on held-out images, one fixed σ, or no FORGrad."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from freqlens.attribution.registry import make_explainer
from freqlens.errors import FreqlensError

from .sigma_search import SigmaSearch, search_sigma

__all__ = ["ForgradSetting", "Share", "forgrad_setting"]

Share = Callable[[Sequence[str], Callable[[str], SigmaSearch]], list[SigmaSearch]]
"""How the searches are spread: ``share(methods, search)`` returns ``[search(m) for m in methods]``, in
order (e.g. each method searched by one process of ``torchrun``, the results gathered on every one)."""


@dataclass(frozen=True)
class ForgradSetting:
    """The σ each method's FORGrad maps use.

    Attributes:
        sigmas: ``{method: σ}`` for every method, or ``None`` without FORGrad.
        searches: ``{method: SigmaSearch}`` when σ* was searched (CPU tensors, without the maps), else empty.
        source: ``"calibration"`` (σ* searched on held-out images), ``"fixed"`` (one σ for every method)
            or ``None`` (no FORGrad).
    """

    sigmas: dict[str, float] | None
    searches: dict[str, SigmaSearch] = field(default_factory=dict, repr=False)
    source: str | None = None


def _in_order(methods: Sequence[str], search: Callable[[str], SigmaSearch]) -> list[SigmaSearch]:
    """The default :data:`Share`: every search here, one after the other."""
    return [search(method) for method in methods]


def forgrad_setting(
    forgrad: float | str | None,
    methods: Sequence[str],
    model: nn.Module,
    calibration: Tensor | None = None,
    *,
    seeds: Mapping[str, int] | None = None,
    settings: Mapping[str, Mapping[str, Any] | None] | None = None,
    shape: str = "box",
    mode: str = "magnitude",
    steps: int = 20,
    batch_size: int | None = None,
    progress: bool = False,
    share: Share | None = None,
) -> ForgradSetting:
    """The FORGrad σ of every method: σ* of :func:`search_sigma` on ``calibration`` (``"auto"``), a fixed σ
    for all, or none.

    For ``"auto"`` each method is built by :func:`~freqlens.attribution.registry.make_explainer` around
    ``model`` with its ``settings`` and a generator on the images' device seeded with its entry of
    ``seeds``, and searched on ``calibration`` (the predicted classes, the default σ grid of ``shape``).

    Args:
        forgrad: ``"auto"`` (search σ* per method), a σ in cycles per image (the same for every method),
            or ``None`` (no FORGrad).
        methods: Method names of the registry (canonical).
        model: The classifier explained and scored.
        calibration: ``B×C×H×W`` held-out images (not the explained ones) for ``"auto"``.
        seeds: Per method, the seed of its explainer's generator in the search (default 0).
        settings: Per method, its settings (:func:`~freqlens.attribution.registry.method_settings`).
        shape, mode: The low-pass shape and FORGrad pipeline of the search.
        steps: Deletion / Insertion steps of the search.
        batch_size: Max images per forward pass.
        progress: A progress bar per search (over the σ grid).
        share: How the searches are spread (:data:`Share`); default: all here, in order.

    Returns:
        The :class:`ForgradSetting`.

    Raises:
        ValueError: ``"auto"`` without calibration images, or a σ that is not a positive number.
        FreqlensError: A search failed (``METHOD: message``), e.g. a setting the method refuses.
    """
    if forgrad is None:
        return ForgradSetting(sigmas=None)
    if forgrad != "auto":
        sigma = float(forgrad)
        if not sigma > 0:
            raise ValueError(f"forgrad must be 'auto', None or a positive σ, got {forgrad!r}")
        return ForgradSetting(sigmas=dict.fromkeys(methods, sigma), source="fixed")
    if calibration is None:
        raise ValueError("forgrad='auto' needs held-out calibration images")

    def search(method: str) -> SigmaSearch:
        generator = torch.Generator(device=calibration.device).manual_seed((seeds or {}).get(method, 0))
        try:
            explainer = make_explainer(method, model, batch_size=batch_size, generator=generator,
                                       settings=(settings or {}).get(method))
            found = search_sigma(explainer, model, calibration, None, shape=shape, steps=steps,
                                 batch_size=batch_size, mode=mode, progress=progress)
        except ValueError as error:
            raise FreqlensError(f"{method}: {error}") from None
        return found.without_maps()  # CPU tensors, no maps: light to gather from other processes

    found = (share or _in_order)(list(methods), search)
    searches = dict(zip(methods, found))
    return ForgradSetting(sigmas={method: float(result.sigma_star) for method, result in searches.items()},
                          searches=searches, source="calibration")
