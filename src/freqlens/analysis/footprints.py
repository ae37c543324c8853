"""Fourier footprints of attribution methods (seed 001, Figs. 2–3): mean log power spectrum, radial
profile and high-frequency measures of each method's maps, with gradient-based methods marked apart
from prediction-based (black-box, CAM) ones.

Maps are reduced over channels by their signed sum (as :class:`~freqlens.analysis.explain.Explanation`)
and, by default, scaled to unit RMS per map so that methods with different output scales share one
colour / y scale (the HF measures do not depend on that scale). The figures are drawn by
:func:`freqlens.report.save_footprint_figures`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from freqlens.attribution.base import Explainer, progress_bar
from freqlens.attribution.registry import canonical_method, make_explainer
from freqlens.spectral import (
    compression_ratio,
    hf_power_ratio,
    laplacian_energy,
    power_spectrum,
    radial_profile,
)
from freqlens.utils.tensors import check_images, reduce_channels, resolve_target

__all__ = ["HF_MEASURES", "Footprints", "method_footprints"]

#: the high-frequency measures computed per map, in this order
HF_MEASURES = ("hf_power_ratio", "laplacian_energy", "compression_ratio")

DEFAULT_METHODS = ("saliency", "integrated_gradients", "smoothgrad", "gradcam", "occlusion", "rise")


@dataclass
class Footprints:
    """Footprints of ``M`` methods on ``B`` images of size ``H×W``.

    Attributes:
        methods: the ``M`` method names (made unique with ``_2``, ``_3``, … suffixes).
        families: per method its explainer family (``"gradient"`` for gradient-based ones).
        log_spectra: ``[M, H, W]`` mean over images of ``log1p(power spectrum)`` (DC at the centre).
        radial: ``[M, R]`` radial profile of the mean power spectrum divided by its total power (sums
            over all entries to 1 before the azimuthal mean, so profiles are comparable across methods).
        measures: name → ``[M, B]`` per-image values of :data:`HF_MEASURES`.
        hf_cutoff: the radius of :func:`~freqlens.spectral.hf_power_ratio` (cycles per image).
        normalized: whether each map was scaled to unit RMS before the spectra.
    """

    methods: list[str]
    families: list[str]
    log_spectra: Tensor
    radial: Tensor
    measures: dict[str, Tensor]
    hf_cutoff: float
    normalized: bool

    @property
    def is_gradient(self) -> list[bool]:
        """Per method: ``True`` for gradient-based explainers, ``False`` for prediction-based ones."""
        return [family == "gradient" for family in self.families]

    def to_dict(self) -> dict:
        """JSON-able summary: per method its family, mean / std of each HF measure, the radial profile
        and the mean log spectrum (nested lists)."""
        methods = {}
        for index, name in enumerate(self.methods):
            entry: dict = {"family": self.families[index], "gradient_based": self.is_gradient[index]}
            for measure, values in self.measures.items():
                row = values[index].double()
                std = float(row.std(unbiased=False)) if row.numel() else math.nan
                entry[measure] = {"mean": _finite(float(row.mean())), "std": _finite(std)}
            entry["radial_profile"] = [_finite(v) for v in self.radial[index].double().tolist()]
            entry["mean_log_spectrum"] = self.log_spectra[index].double().tolist()
            methods[name] = entry
        return {
            "n_images": int(next(iter(self.measures.values())).shape[1]),
            "size": list(self.log_spectra.shape[-2:]),
            "hf_cutoff": self.hf_cutoff,
            "normalized": self.normalized,
            "methods": methods,
        }


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _explainers(model: nn.Module, methods: Sequence[str | Explainer], batch_size: int | None,
                generator: torch.Generator | None) -> list[tuple[str, Explainer]]:
    if isinstance(methods, (str, Explainer)):
        methods = [methods]
    if not methods:
        raise ValueError("methods is empty: give at least one method name or explainer")
    named: list[tuple[str, Explainer]] = []
    for method in methods:
        if isinstance(method, str):
            name = canonical_method(method)
            explainer = make_explainer(name, model, batch_size=batch_size, generator=generator)
        elif callable(getattr(method, "attribute", None)):
            name, explainer = str(getattr(method, "name", type(method).__name__)), method
        else:
            raise TypeError(f"methods must be names or explainers, got {type(method).__name__}")
        taken = {n for n, _ in named}
        unique, suffix = name, 2
        while unique in taken:
            unique, suffix = f"{name}_{suffix}", suffix + 1
        named.append((unique, explainer))
    return named


def _check_maps(maps: object, name: str, inputs: Tensor) -> Tensor:
    if not isinstance(maps, Tensor) or maps.dim() != 4:
        shape = tuple(maps.shape) if isinstance(maps, Tensor) else type(maps).__name__
        raise ValueError(f"explainer {name!r} must return B×C×H×W maps, got {shape}")
    b, _, h, w = inputs.shape
    if maps.shape[0] != b or maps.shape[-2:] != (h, w):
        raise ValueError(f"explainer {name!r} returned maps of shape {tuple(maps.shape)} for inputs {tuple(inputs.shape)}")
    if not maps.is_floating_point() or not bool(torch.isfinite(maps).all()):
        raise ValueError(f"explainer {name!r} returned non-floating or non-finite maps")
    return maps


def method_footprints(
    model: nn.Module,
    inputs: Tensor,
    target: Tensor | int | None = None,
    methods: Sequence[str | Explainer] = DEFAULT_METHODS,
    batch_size: int | None = None,
    generator: torch.Generator | None = None,
    hf_cutoff: float | None = None,
    progress: bool = False,
    normalize: bool = True,
) -> Footprints:
    """Fourier footprint of each method on ``inputs``; seed 001 Figs. 2–3.

    Args:
        model: the classifier (``B×C×H×W`` → ``B×K`` logits).
        inputs: images ``B×C×H×W`` in [0, 1].
        target: the explained classes, ``LongTensor[B]`` or an int; ``None``: predicted classes.
        methods: names (:func:`~freqlens.attribution.registry.make_explainer`, built with
            ``batch_size`` and ``generator``) or explainer objects (``attribute(inputs, target)``; name
            from a ``name`` attribute or the class, family from ``family``, default ``"gradient"``).
        batch_size: the most images per forward pass (``None``: all at once).
        generator: the random source of the stochastic methods built from names.
        hf_cutoff: radius for :func:`~freqlens.spectral.hf_power_ratio` (default ``min(H, W) / 4``).
        progress: a tqdm bar (stderr) over the methods; off by default.
        normalize: scale each channel-reduced map to unit RMS before the spectra (all-zero maps stay
            zero).

    Returns:
        The :class:`Footprints` of the methods, in the order given.

    Raises:
        ValueError: bad images, no method, a negative ``hf_cutoff``, or maps that are not finite
            floating ``B×C×H×W`` tensors of the inputs' size.
        TypeError: a method that is neither a name nor an explainer.
    """
    check_images(inputs)
    h, w = inputs.shape[-2:]
    cutoff = min(h, w) / 4 if hf_cutoff is None else float(hf_cutoff)
    if not cutoff >= 0:
        raise ValueError(f"hf_cutoff must be >= 0, got {hf_cutoff}")
    named = _explainers(model, methods, batch_size, generator)
    target = resolve_target(model, inputs, target, batch_size)

    names, families, spectra, profiles = [], [], [], []
    measures: dict[str, list[Tensor]] = {m: [] for m in HF_MEASURES}
    for name, explainer in progress_bar(named, len(named), progress, "footprints"):
        maps = _check_maps(explainer.attribute(inputs, target), name, inputs)
        reduced = reduce_channels(maps.detach(), "sum").to(torch.float64 if maps.dtype == torch.float64
                                                            else torch.float32)
        if normalize:
            rms = reduced.square().mean(dim=(-2, -1), keepdim=True).sqrt()
            reduced = reduced / torch.where(rms > 0, rms, torch.ones_like(rms))
        power = power_spectrum(reduced)  # B×H×W
        spectra.append(torch.log1p(power).mean(dim=0))
        mean_power = power.mean(dim=0)
        total = mean_power.sum()
        profiles.append(radial_profile(mean_power / torch.where(total > 0, total, torch.ones_like(total))))
        measures["hf_power_ratio"].append(hf_power_ratio(reduced, cutoff=cutoff))
        measures["laplacian_energy"].append(laplacian_energy(reduced))
        measures["compression_ratio"].append(compression_ratio(reduced))
        names.append(name)
        families.append(str(getattr(explainer, "family", "gradient")))

    return Footprints(
        methods=names,
        families=families,
        log_spectra=torch.stack(spectra).cpu(),
        radial=torch.stack(profiles).cpu(),
        measures={m: torch.stack([v.to(torch.float64).cpu() for v in values]) for m, values in measures.items()},
        hf_cutoff=cutoff,
        normalized=normalize,
    )
