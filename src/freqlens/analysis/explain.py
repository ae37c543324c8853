"""Explain a batch of images with one method, optionally filtered by FORGrad (fixed σ or σ* searched
on a held-out calibration set): the computation behind ``freqlens explain``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from freqlens.attribution import reduce_channels
from freqlens.attribution.base import resolve_target
from freqlens.attribution.forgrad import check_forgrad_mode, forgrad_filter
from freqlens.attribution.registry import canonical_method, make_explainer
from freqlens.spectral import power_spectrum

from .sigma_search import SigmaSearch, search_sigma


@dataclass
class Explanation:
    """Maps of one method on ``images``, with the FORGrad maps when asked.

    Attributes:
        method: the canonical method name.
        images: the explained images ``B×C×H×W``.
        target: the explained classes ``LongTensor[B]``.
        maps: the method's maps.
        forgrad_maps: the FORGrad-filtered maps, ``B×1×H×W`` in ``mode="magnitude"``, the maps' shape in
            ``mode="signed"``; ``None`` without filtering.
        sigma: the FORGrad cutoff used (cycles per image), fixed or σ*; ``None`` without filtering.
        shape: the low-pass shape (``"box"``, ``"disk"`` or ``"gaussian"``).
        search: the σ* search when ``forgrad="auto"``, else ``None``.
        mode: the FORGrad pipeline, ``"magnitude"`` or ``"signed"``.
    """

    method: str
    images: Tensor
    target: Tensor
    maps: Tensor
    forgrad_maps: Tensor | None = None
    sigma: float | None = None
    shape: str = "box"
    search: SigmaSearch | None = field(default=None, repr=False)
    mode: str = "magnitude"

    def log_spectrum(self) -> Tensor:
        """``log(1 + power spectrum)`` of the channel-summed maps, ``B×H×W`` (DC at the centre)."""
        return torch.log1p(power_spectrum(reduce_channels(self.maps, "sum")))


def explain_images(
    model: nn.Module,
    images: Tensor,
    method: str,
    *,
    target: Tensor | None = None,
    forgrad: float | str | None = None,
    shape: str = "box",
    mode: str = "magnitude",
    calibration: tuple[Tensor, Tensor | None] | None = None,
    sigmas: list[float] | None = None,
    steps: int = 20,
    batch_size: int | None = None,
    seed: int = 0,
    settings: Mapping[str, Any] | None = None,
) -> Explanation:
    """Explain ``images`` with ``method``, optionally filtered by FORGrad.

    Args:
        model: the classifier (``B×C×H×W`` → ``B×K`` logits).
        images: the images to explain, ``B×C×H×W``.
        method: a name of :data:`freqlens.attribution.registry.METHODS` (aliases accepted).
        target: the explained classes ``LongTensor[B]``; ``None``: the predicted classes.
        forgrad: ``None`` (no filtering), a σ in cycles per image, or ``"auto"`` = σ* of
            :func:`search_sigma` on ``calibration``.
        shape: the FORGrad low-pass shape (``"box"``, ``"disk"`` or ``"gaussian"``).
        mode: the FORGrad pipeline (:func:`freqlens.attribution.forgrad_filter`), ``"magnitude"`` (as
            published) or ``"signed"``; used for the filtered maps and the σ* search.
        calibration: ``(images, target or None)``, images that are not the explained ones (held out),
            for ``forgrad="auto"``.
        sigmas: the σ grid of the search (``None``: :func:`default_sigmas`).
        steps: the Deletion/Insertion steps of the search.
        batch_size: the most images per forward pass (``None``: all at once).
        seed: seeds the explainer's generator (stochastic methods).
        settings: keyword arguments of the method (:func:`freqlens.attribution.registry.method_settings`,
            e.g. ``{"patch": 8}``).

    Returns:
        The :class:`Explanation` (with ``forgrad_maps``, ``sigma`` and, for ``"auto"``, ``search`` when
            filtered).

    Raises:
        ValueError: ``forgrad="auto"`` without ``calibration``, an unknown method or FORGrad mode.
    """
    method = canonical_method(method)
    check_forgrad_mode(mode)
    generator = torch.Generator(device=images.device).manual_seed(seed)
    explainer = make_explainer(method, model, batch_size=batch_size, generator=generator, settings=settings)
    target = resolve_target(model, images, target, batch_size)
    maps = explainer(images, target)
    result = Explanation(method=method, images=images, target=target, maps=maps, shape=shape, mode=mode)
    if forgrad is None:
        return result
    if forgrad == "auto":
        if calibration is None:
            raise ValueError("forgrad='auto' needs a held-out calibration set (images, target)")
        calibration_images, calibration_target = calibration
        search = search_sigma(
            explainer, model, calibration_images, calibration_target, sigmas=sigmas, shape=shape, steps=steps,
            batch_size=batch_size, mode=mode,
        )
        result.search, sigma = search, float(search.sigma_star)
    else:
        sigma = float(forgrad)
    result.sigma = sigma
    result.forgrad_maps = forgrad_filter(maps, sigma, shape, mode)  # = FORGrad(explainer, sigma, shape, mode)
    return result
