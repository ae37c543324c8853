"""FORGrad (Muzellec et al. 2023, "Gradient strikes back", seed 001): low-pass filtered attributions.

``φ_σ = F⁻¹(F(φ) ⊙ K^σ)`` applied by :func:`freqlens.spectral.lowpass` to the signed maps of any
explainer, per channel. σ is in cycles per image; σ ≥ the Nyquist bound returns the base maps
exactly. Choosing σ* (``freqlens.analysis.search_sigma``) is separate.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from freqlens.spectral import SHAPES, lowpass

from .base import WrapperExplainer, call_explainer, is_stochastic

__all__ = ["FORGrad"]


class FORGrad(WrapperExplainer):
    """Wrap ``explainer``: its maps low-pass filtered with cutoff ``sigma`` and mask ``shape``.

    ``shape``: ``"box"`` (the paper's square mask), ``"disk"`` or ``"gaussian"``. Maps keep the wrapped
    explainer's shape (``B×C×H×W`` or ``B×1×H×W``); ``per_channel`` and ``family`` follow it.
    """

    def __init__(self, explainer: object, sigma: float, shape: str = "box") -> None:
        super().__init__(explainer)
        if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or math.isnan(sigma) or sigma < 0:
            raise ValueError(f"sigma must be a number >= 0 (cycles per image; inf = no filtering), got {sigma!r}")
        if shape not in SHAPES:
            raise ValueError(f"unknown low-pass shape {shape!r}; expected one of {', '.join(SHAPES)}")
        self.sigma = float(sigma)
        self.shape = shape

    @property
    def stochastic(self) -> bool:
        return is_stochastic(self.explainer)

    def attribute(
        self, inputs: Tensor, target: Tensor | int | None = None, generator: torch.Generator | None = None
    ) -> Tensor:
        """Filtered maps; ``generator`` goes to a stochastic wrapped explainer (ignored otherwise)."""
        return lowpass(call_explainer(self.explainer, inputs, target, generator), self.sigma, self.shape)


    def __repr__(self) -> str:
        return f"FORGrad({self.explainer!r}, sigma={self.sigma}, shape={self.shape!r})"
