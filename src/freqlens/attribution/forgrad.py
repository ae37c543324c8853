"""FORGrad (Muzellec et al. 2023, "Gradient strikes back", seed 001): low-pass filtered attributions.

``φ_σ = F⁻¹(F(φ) ⊙ K^σ)`` (seed 001, §3.4), with two pipelines for *which* map ``φ`` is filtered:

* ``mode="magnitude"`` (default, the method as published): the pipeline of the seed authors' reference
  implementation, Xplique's ``xplique.commons.forgrad.forgrad`` (Muzellec & Fel, 2023):
  ``|F⁻¹(F(|mean_c φ|) ⊙ K^σ)|`` — channels reduced by their (signed) mean, absolute value, low-pass,
  absolute value. One map per image, ``B×1×H×W``.
* ``mode="signed"`` (the theory of seed 001, Prop. 3.1: the filter is applied to the noisy gradient
  itself): ``F⁻¹(F(φ) ⊙ K^σ)`` per channel on the signed maps; same shape as the explainer's maps.

The filter is :func:`freqlens.spectral.lowpass` (pure, signed in / signed out): σ in cycles per image,
masks on the centred spectrum, σ ≥ the Nyquist bound is the identity (an exact copy). Choosing σ*
(:func:`freqlens.analysis.search_sigma`) is separate.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from freqlens.spectral import SHAPES, lowpass, lowpass_each, noise_floor_sigma
from freqlens.utils.signatures import bound_arguments, forwards_options
from freqlens.utils.tensors import REDUCTIONS, reduce_channels

from .base import WrapperExplainer, call_explainer

__all__ = ["FORGRAD_MODES", "FORGrad", "auto_sigma", "check_forgrad_mode", "forgrad_filter"]

#: The two FORGrad pipelines: ``"magnitude"`` (as published, Xplique) and ``"signed"`` (Prop. 3.1).
FORGRAD_MODES = ("magnitude", "signed")


def check_forgrad_mode(mode: object) -> str:
    """Return ``mode`` if it is one of :data:`FORGRAD_MODES`, else raise ``ValueError``."""
    if mode not in FORGRAD_MODES:
        raise ValueError(f"unknown FORGrad mode {mode!r}; expected one of {', '.join(FORGRAD_MODES)}")
    return str(mode)


def _check_filter(sigma: object, shape: object, mode: object, channel_reduction: object
                  ) -> tuple[float | str, str, str, str]:
    """The checked settings of :func:`forgrad_filter` (``sigma`` as a float or ``"auto"``)."""
    if sigma != "auto" and (isinstance(sigma, (bool, str)) or not isinstance(sigma, (int, float))
                            or math.isnan(sigma) or sigma < 0):
        raise ValueError(f"sigma must be a number >= 0 (cycles per image; inf = no filtering) or 'auto', "
                         f"got {sigma!r}")
    if shape not in SHAPES:
        raise ValueError(f"unknown low-pass shape {shape!r}; expected one of {', '.join(SHAPES)}")
    if channel_reduction not in REDUCTIONS:
        raise ValueError(f"unknown channel reduction {channel_reduction!r}; expected one of {', '.join(REDUCTIONS)}")
    checked_sigma = "auto" if sigma == "auto" else float(sigma)  # type: ignore[arg-type]
    return checked_sigma, str(shape), check_forgrad_mode(mode), str(channel_reduction)


def _prefilter(maps: Tensor, mode: str, channel_reduction: str) -> Tensor:
    """The map the low-pass filters: ``maps`` (signed) or ``|reduce_channels(maps)|`` as ``B×1×H×W``."""
    if not isinstance(maps, Tensor) or maps.dim() not in (3, 4):
        got = tuple(maps.shape) if isinstance(maps, Tensor) else type(maps).__name__
        raise ValueError(f"maps must be B×C×H×W (or B×H×W), got {got}")
    if mode == "signed":
        return maps
    if maps.dim() == 3:
        maps = maps.unsqueeze(1)
    return reduce_channels(maps, channel_reduction).abs().unsqueeze(1)


def auto_sigma(maps: Tensor, shape: str = "box", mode: str = "magnitude", channel_reduction: str = "mean",
               z: float = 3.0) -> Tensor:
    """Per-image FORGrad cutoff without any model call (``sigma="auto"``).

    The radius where the radial power profile of the map the pipeline filters meets its white-noise floor
    (:func:`freqlens.spectral.noise_floor_sigma`; seed 001 Prop. 3.3 models gradient noise as Gaussian,
    i.e. flat in Fourier).

    Args:
        maps: ``B×C×H×W`` / ``B×H×W`` attribution maps.
        shape: the low-pass mask whose rings are used (``"box"``, ``"disk"``, ``"gaussian"``).
        mode: the FORGrad pipeline (``"magnitude"`` or ``"signed"``), which decides the map filtered.
        channel_reduction: magnitude mode only, the channel reduction (see :func:`forgrad_filter`).
        z: significance of "above the floor" (see :func:`freqlens.spectral.noise_floor_sigma`).

    Returns:
        ``Tensor[B]`` (float64, CPU), σ in cycles per image.

    Raises:
        ValueError: an unknown ``mode``, ``shape`` or ``channel_reduction``, or malformed ``maps``.
    """
    _, shape, mode, channel_reduction = _check_filter("auto", shape, mode, channel_reduction)
    return noise_floor_sigma(_prefilter(maps, mode, channel_reduction).detach(), shape, z=z)


def forgrad_filter(
    maps: Tensor,
    sigma: float | str,
    shape: str = "box",
    mode: str = "magnitude",
    channel_reduction: str = "mean",
) -> Tensor:
    """The FORGrad map of already computed attributions (seed 001, §3.4), without an explainer.

    Args:
        maps: ``B×C×H×W`` attribution maps (``B×H×W`` is read as one channel).
        sigma: cutoff in cycles per image, ``≥ 0``; ``inf`` or ``≥`` the Nyquist bound of ``shape``
            applies no low-pass (see :func:`freqlens.spectral.nyquist_sigma`); ``"auto"``: each map at
            its own :func:`auto_sigma` (no model call).
        shape: ``"box"`` (the paper's ``K^σ``), ``"disk"`` (Xplique's mask) or ``"gaussian"``.
        mode: ``"magnitude"``: ``|lowpass(|reduce_channels(maps, channel_reduction)|, σ)|`` →
            ``B×1×H×W``, non-negative; ``"signed"``: ``lowpass(maps, σ)`` per channel, same shape.
        channel_reduction: magnitude mode only, one of
            :data:`freqlens.attribution.REDUCTIONS`; ``"mean"`` (Xplique's ``reduce_mean`` over
            channels, before the absolute value). ``"max_abs"`` reproduces Xplique's Saliency reducer.

    Returns:
        The filtered maps; in magnitude mode at σ ≥ Nyquist exactly ``|reduced maps|`` (``B×1×H×W``).

    Raises:
        ValueError: an unknown ``mode``, ``shape`` or ``channel_reduction``, a bad ``sigma``, or
            malformed ``maps``.
    """
    sigma, shape, mode, channel_reduction = _check_filter(sigma, shape, mode, channel_reduction)
    prefiltered = _prefilter(maps, mode, channel_reduction)
    if sigma == "auto":
        filtered = lowpass_each(prefiltered, noise_floor_sigma(prefiltered.detach(), shape), shape)
    else:
        filtered = lowpass(prefiltered, sigma, shape)
    return filtered if mode == "signed" else filtered.abs()


class FORGrad(WrapperExplainer):
    """Wrap ``explainer``: its maps low-pass filtered at ``sigma`` with mask ``shape`` (seed 001, §3.4).

    ``FORGrad(explainer, sigma, shape="box", mode="magnitude")`` is itself an explainer;
    ``sigma="auto"`` picks σ per image from the map's own spectrum (:func:`auto_sigma`, no model call;
    the σ of the last call in :attr:`last_sigma`). See
    :func:`forgrad_filter` for the two pipelines; ``per_channel`` is ``False`` in magnitude mode (maps
    ``B×1×H×W``) and follows the wrapped explainer in signed mode; ``family`` follows it.

    **Conventions of the magnitude mode, checked against Xplique's ``forgrad`` (the seed authors'
    implementation; ``tests/attribution/test_forgrad.py`` re-implements it in numpy):**

    Matched:
        * channel reduction: ``reduce_mean`` over channels of the *signed* map, then ``|·|``
          (``|mean_c φ|``, not ``mean_c |φ|``); ``channel_reduction`` selects another one. Xplique's
          explainers usually reduce channels themselves first (Saliency: ``max_c |∇|``, the others:
          ``mean_c``), so their ``forgrad`` input has one channel; freqlens' gradient explainers return
          per-channel maps, hence the reduction here.
        * absolute value before the FFT and after the inverse FFT.
        * σ units: Xplique's ``sigma`` is the radius of its mask in frequency-index units of the
          ``N×N`` DFT, i.e. cycles per image, as here (its recommended σ = 15 at 224 px is σ = 15 here).
        * mask centring: Xplique builds the mask centred at ``(N // 2, N // 2)`` and un-centres it
          with ``fftshift`` before an ``rfft2d``/``irfft2d`` pair. For even ``N`` this is exactly our
          ``ifftshift``/full-FFT filter with ``shape="disk"`` (agreement to float precision, tested).
        * output: one map per image (Xplique returns ``B×H×W`` for even sizes; here ``B×1×H×W``, the
          freqlens layout of maps that are not per channel).

    Not matched (deliberately):
        * mask shape: the default ``shape="box"`` is the paper's ``K^σ(i, j) = 1[|i − H/2| ≤ σ]·1[|j −
          W/2| ≤ σ]`` (seed 001, §3.4); Xplique uses a disk of radius σ. ``shape="disk"`` reproduces
          Xplique; a box at σ keeps more frequencies (the corners) than a disk at σ.
        * odd sizes: Xplique's ``fftshift`` is not the inverse of its centring for odd ``N`` (the mask
          is centred on frequency −1, so a small σ drops the DC and the mask is not Hermitian), its
          ``irfft2d`` returns ``N − 1`` pixels and a bicubic resize restores ``N``. Not copied: here
          the mask is centred on the DC for every size and no resize happens.
        * non-square maps: Xplique asserts square maps; any ``H×W`` works here.
        * σ range: Xplique asserts ``0 < σ ≤ N``; here σ = 0 keeps the DC only, and σ ≥ the Nyquist
          bound (including ``inf``) is the exact identity of the filter (then the map is
          ``|reduced map|``).

    Args:
        explainer: the wrapped explainer (any object with ``attribute(inputs, target)``).
        sigma: cutoff in cycles per image, ``≥ 0`` (``inf`` = no filtering), or ``"auto"`` (per image,
            :func:`auto_sigma`).
        shape: the mask, ``"box"`` (default, the paper's), ``"disk"`` (Xplique's) or ``"gaussian"``.
        mode: ``"magnitude"`` (default, as published) or ``"signed"`` (see :func:`forgrad_filter`).
        channel_reduction: magnitude mode only, one of :data:`freqlens.attribution.REDUCTIONS`
            (default ``"mean"``, Xplique's).

    Raises:
        TypeError: ``explainer`` has no ``attribute`` method.
        ValueError: a bad ``sigma``, or an unknown ``shape``, ``mode`` or ``channel_reduction``.
    """

    @forwards_options(forgrad_filter, skip=("maps",))
    def __init__(self, explainer: object, sigma: float | str, shape: str = "box", **options: str) -> None:
        super().__init__(explainer)
        settings = bound_arguments(forgrad_filter, None, sigma, shape, **options)  # TypeError: an unknown one
        del settings["maps"]
        sigma, shape, mode, channel_reduction = _check_filter(**settings)
        self.sigma: float | str = sigma
        #: with ``sigma="auto"``: the per-image σ of the last call (``Tensor[B]``), else ``None``
        self.last_sigma: Tensor | None = None
        self.shape = shape
        self.mode = mode
        self.channel_reduction = channel_reduction

    @property
    def per_channel(self) -> bool:
        return self.mode == "signed" and bool(getattr(self.explainer, "per_channel", True))

    @property
    def name(self) -> str:  # type: ignore[override]
        """The wrapped explainer's label with a star (``saliency*``), as the seed's tables write it."""
        return f"{getattr(self.explainer, 'label', type(self.explainer).__name__)}*"

    def attribute(
        self, inputs: Tensor, target: Tensor | int | None = None, *, generator: torch.Generator | None = None
    ) -> Tensor:
        """Filtered maps of ``inputs``.

        Args:
            inputs, target: as :meth:`Explainer.attribute <freqlens.attribution.Explainer.attribute>`.
            generator: goes to a stochastic wrapped explainer (ignored otherwise).

        Returns:
            ``B×1×H×W`` (magnitude) or the wrapped explainer's shape (signed).
        """
        maps = call_explainer(self.explainer, inputs, target, generator)
        if self.sigma == "auto":
            self.last_sigma = auto_sigma(maps, self.shape, self.mode, self.channel_reduction)
        return forgrad_filter(maps, self.sigma, self.shape, self.mode, self.channel_reduction)
