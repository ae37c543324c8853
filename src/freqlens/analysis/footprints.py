"""Fourier footprints of attribution methods (seed 001, Figs. 2–3): mean log power spectrum, radial
profile and high-frequency measures of each method's maps, with gradient-based methods marked apart
from prediction-based (black-box, CAM) ones.

Maps are reduced over channels by their signed sum (as :class:`~freqlens.analysis.explain.Explanation`)
and, by default, scaled to unit RMS per map so that methods with different output scales share one
colour / y scale (the HF measures do not depend on that scale).
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

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
from freqlens.utils import atomic_write_bytes
from freqlens.utils.tensors import check_images, reduce_channels, resolve_target

__all__ = ["HF_MEASURES", "Footprints", "method_footprints"]

#: the high-frequency measures computed per map, in this order
HF_MEASURES = ("hf_power_ratio", "laplacian_energy", "compression_ratio")

DEFAULT_METHODS = ("saliency", "integrated_gradients", "smoothgrad", "gradcam", "occlusion", "rise")


@dataclass
class Footprints:
    """Footprints of ``M`` methods on ``B`` images of size ``H×W``.

    ``log_spectra``: ``[M, H, W]`` mean over images of ``log1p(power spectrum)`` (DC at the centre);
    ``radial``: ``[M, R]`` radial profile of the mean power spectrum divided by its total power (sums
    over all entries to 1 before the azimuthal mean, so profiles are comparable across methods);
    ``measures``: name → ``[M, B]`` per-image values of :data:`HF_MEASURES`.
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

    def save_figures(self, out_dir: str | Path) -> list[Path]:
        """Write ``footprints_spectra.png``, ``footprints_radial.png`` and ``footprints_hf.png`` into
        ``out_dir`` (atomically); returns their paths."""
        out_dir = Path(out_dir)
        return [
            atomic_write_bytes(out_dir / "footprints_spectra.png", self._spectra_figure()),
            atomic_write_bytes(out_dir / "footprints_radial.png", self._radial_figure()),
            atomic_write_bytes(out_dir / "footprints_hf.png", self._hf_figure()),
        ]

    def _spectra_figure(self) -> bytes:
        from matplotlib.figure import Figure

        count = len(self.methods)
        columns = min(count, 4)
        rows = math.ceil(count / columns)
        figure = Figure(figsize=(3.4 * columns, 3.2 * rows), layout="constrained")
        axes = figure.subplots(rows, columns, squeeze=False)
        h, w = self.log_spectra.shape[-2:]
        extent = (-(w // 2) - 0.5, w - w // 2 - 0.5, h - h // 2 - 0.5, -(h // 2) - 0.5)
        for index, ax in enumerate(axes.flat):
            if index >= count:
                ax.set_axis_off()
                continue
            image = ax.imshow(self.log_spectra[index].detach().cpu().numpy(), cmap="magma", extent=extent)
            ax.set_title(f"{self.methods[index]} ({self.families[index]})", fontsize=10)
            ax.set_xlabel("horizontal frequency (cycles/image)", fontsize=8)
            ax.set_ylabel("vertical frequency", fontsize=8)
            figure.colorbar(image, ax=ax, shrink=0.8, label="mean log(1 + power)")
        figure.suptitle("Fourier footprint of attribution maps (DC at the centre)")
        return _png(figure)

    def _radial_figure(self) -> bytes:
        from matplotlib.figure import Figure

        figure = Figure(figsize=(6.5, 4.5), layout="constrained")
        ax = figure.subplots()
        radii = torch.arange(self.radial.shape[1]).numpy()
        floor = _positive_floor(self.radial)
        for index, name in enumerate(self.methods):
            profile = self.radial[index].detach().double().cpu().clamp_min(floor).numpy()
            style = "-" if self.is_gradient[index] else "--"
            ax.plot(radii, profile, style, marker=".", label=f"{name} ({self.families[index]})")
        ax.set_yscale("log")
        ax.set_xlabel("frequency radius (cycles/image)")
        ax.set_ylabel("normalised power (mean over the ring)")
        ax.set_title("Radial power profile: gradient (solid) vs prediction-based (dashed)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
        return _png(figure)

    def _hf_figure(self) -> bytes:
        from matplotlib.figure import Figure

        figure = Figure(figsize=(4.2 * len(HF_MEASURES), 4.2), layout="constrained")
        axes = figure.subplots(1, len(HF_MEASURES), squeeze=False)[0]
        positions = list(range(len(self.methods)))
        colours = ["tab:blue" if g else "tab:orange" for g in self.is_gradient]
        for ax, measure in zip(axes, HF_MEASURES, strict=True):
            values = self.measures[measure].detach().double().cpu()
            ax.bar(positions, values.mean(dim=1).numpy(), yerr=values.std(dim=1, unbiased=False).numpy(),
                   color=colours, capsize=3)
            ax.set_xticks(positions, self.methods, rotation=45, ha="right", fontsize=8)
            ax.set_title(measure.replace("_", " "))
            ax.set_ylabel("mean ± std over images")
        figure.suptitle("High-frequency measures (blue: gradient-based, orange: prediction-based)")
        return _png(figure)


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _positive_floor(values: Tensor) -> float:
    positive = values[values > 0]
    return float(positive.min()) if positive.numel() else 1e-12


def _png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    return buffer.getvalue()


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
    """Fourier footprint of each method on ``inputs`` (``B×C×H×W`` in [0, 1]); seed 001 Figs. 2–3.

    ``methods``: names (:func:`~freqlens.attribution.registry.make_explainer`, built with
    ``batch_size`` and ``generator``) or explainer objects (``attribute(inputs, target)``; name from a
    ``name`` attribute or the class, family from ``family``, default ``"gradient"``). ``target=None``:
    predicted classes. ``hf_cutoff``: radius for :func:`~freqlens.spectral.hf_power_ratio` (default
    ``min(H, W) / 4``). ``normalize``: scale each channel-reduced map to unit RMS before the spectra
    (all-zero maps stay zero). ``progress``: a tqdm bar (stderr) over the methods; off by default.
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
