"""Noise-tunnel study (seed 004): Integrated Gradients alone and wrapped in SmoothGrad, SmoothGrad² and
VarGrad, compared by their maps, their mean power spectra and high-frequency measures.

Writes ``out_dir/noise-tunnel/results.json``, ``maps.png``, ``spectra.png``, ``radial.png``.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor

from freqlens.attribution import IntegratedGradients, SmoothGrad, SmoothGradSq, VarGrad, reduce_channels
from freqlens.data import load_dataset, pick_indices
from freqlens.errors import FreqlensError
from freqlens.report.figures import attribution_grid, heatmaps, line_plot
from freqlens.spectral import (
    compression_ratio,
    hf_power_ratio,
    laplacian_energy,
    power_spectrum,
    radial_profile,
)
from freqlens.studies.base import (
    Claim,
    StudyModel,
    StudyRun,
    StudyTraining,
    study_runner,
)
from freqlens.training import evaluate
from freqlens.utils.io import FlatRecord

STUDY = "noise-tunnel"
TITLE = "Noise tunnel: IG vs IG+SmoothGrad, IG+SmoothGrad², IG+VarGrad"
METHODS = ("IG", "SmoothGrad(IG)", "SmoothGrad²(IG)", "VarGrad(IG)")


@dataclasses.dataclass(frozen=True)
class NoiseTunnelConfig(StudyTraining):
    """Every number of the study in one place (defaults = the ``demo`` scale); the images explained and
    the model's origin and training as :class:`~freqlens.studies.base.StudyTraining`."""

    model: str = "lenet"
    n_images: int = 8
    n_samples: int = 16  # noisy copies per image (seed 004: 10)
    noise_level: float = 0.15  # σ as a fraction of each image's range
    ig_steps: int = 32

    # demo: the zoo's CIFAR-10 lenet on the shipped sample, seconds; cpu: the zoo's resnet_small, minutes
    # (--set dataset=ARCHIVE); paper: seed-like numbers
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "cpu": {"model": "resnet_small", "dataset": "cifar10", "epochs": 15, "batch_size": 128, "lr": 0.1,
                "n_images": 32, "n_samples": 32, "ig_steps": 50},
        "paper": {"model": "resnet_small", "dataset": "cifar10", "zoo": "", "epochs": 10, "batch_size": 128,
                  "n_images": 64, "n_samples": 10, "ig_steps": 50},
    }


def _validate(config: NoiseTunnelConfig) -> None:
    config.check_fields(counts=("epochs", "batch_size", "n_images", "n_samples", "ig_steps"), sizes=("n_train",),
                        rates=("noise_level", "lr"))


def _normalised_power(maps: torch.Tensor) -> torch.Tensor:
    """Power spectra ``B×H×W`` of ``B×H×W`` maps, each scaled to total power 1."""
    power = power_spectrum(maps.double())
    total = power.sum(dim=(-2, -1), keepdim=True)
    return power / torch.where(total > 0, total, torch.ones_like(total))


# --------------------------------------------------------------------------------- typed pieces
@dataclasses.dataclass(frozen=True)
class Explained:
    """The model of the study and the test images it explains.

    Attributes:
        found: The model and where it came from.
        accuracy: Its accuracy on the whole test split.
        images: The ``n_images`` explained test images (a seeded random draw), ``B×C×H×W`` in [0, 1].
        labels: Their labels (the explained classes).
        predictions: The model's predicted classes.
    """

    found: StudyModel
    accuracy: float
    images: Tensor
    labels: Tensor
    predictions: Tensor


@dataclasses.dataclass(frozen=True)
class MapMeasures(FlatRecord):
    """High-frequency measures of one method's channel-summed maps, each the mean over the images.

    Attributes:
        hf_power_ratio: Share of spectral power beyond a quarter of the image size.
        laplacian_energy: Variance of the Laplacian of the unit-variance map.
        compression_ratio: PNG size / raw size of the 8-bit map.
    """

    hf_power_ratio: float
    laplacian_energy: float
    compression_ratio: float


@dataclasses.dataclass(frozen=True)
class TunnelMaps:
    """The maps of IG and of its noise tunnels (the experiment of seed 004) with their measures.

    Attributes:
        maps: Method (:data:`METHODS`) -> channel-summed maps ``B×H×W``.
        measures: Method -> its high-frequency measures.
        spectra: Method -> mean normalised power spectrum ``H×W`` (centred).
        profiles: Method -> radial profile of that spectrum.
    """

    maps: dict[str, Tensor]
    measures: dict[str, MapMeasures]
    spectra: dict[str, Tensor]
    profiles: dict[str, Tensor]

    def claims(self) -> list[Claim]:
        """The claims of seed 004, checked on the measures."""
        hf = {name: m.hf_power_ratio for name, m in self.measures.items()}
        lap = {name: m.laplacian_energy for name, m in self.measures.items()}
        return [
            Claim("SmoothGrad(IG) maps have less high-frequency power than IG maps", "004", "spectra.png",
                  "HF power SmoothGrad(IG)", hf["SmoothGrad(IG)"], "<", "HF power IG", hf["IG"]),
            Claim("SmoothGrad(IG) maps are smoother (lower Laplacian energy) than IG maps", "004", "maps.png",
                  "Laplacian energy SmoothGrad(IG)", lap["SmoothGrad(IG)"], "<", "Laplacian energy IG", lap["IG"]),
            Claim("SmoothGrad²(IG) gives less noisy maps than SmoothGrad(IG)", "004", "radial.png",
                  "HF power SmoothGrad²(IG)", hf["SmoothGrad²(IG)"], "<", "HF power SmoothGrad(IG)",
                  hf["SmoothGrad(IG)"]),
        ]

    def table(self) -> dict[str, Any]:
        """The table of the measures per method."""
        return {
            "title": "High-frequency measures (mean over images; lower = smoother)",
            "columns": ["method", "HF power ratio", "Laplacian energy", "compression ratio"],
            "rows": [[name, round(m.hf_power_ratio, 6), round(m.laplacian_energy, 6), round(m.compression_ratio, 6)]
                     for name, m in self.measures.items()],
        }


FIGURES = [
    {"file": "maps.png", "caption": "Maps per method (rows); IG and SmoothGrad signed (red +, blue −), "
                                    "SmoothGrad² and VarGrad non-negative."},
    {"file": "spectra.png", "caption": "Mean power spectrum of the maps, each map normalised to total "
                                       "power 1 (centre = DC)."},
    {"file": "radial.png", "caption": "Radial profile of the mean normalised power spectrum."},
]
"""The figures of the study, in the report's order."""


# --------------------------------------------------------------------------------- the experiment
def _explained(config: NoiseTunnelConfig, cache_dir: Path, progress: bool) -> Explained:
    """The study's model (zoo or cached training), its test accuracy and the drawn test images."""
    found = config.study_model(config.model, cache_dir, progress=progress)
    model = found.model
    test_set = load_dataset(config.dataset, split="test", progress=progress)
    if config.n_images > len(test_set):
        raise FreqlensError(f"n_images = {config.n_images} but the test split has {len(test_set)} images")
    accuracy = evaluate(model, test_set)["accuracy"]
    chosen = pick_indices(len(test_set), config.n_images, config.seed)
    images = test_set.float_images(chosen)
    labels = test_set.labels[chosen]
    with torch.no_grad():
        predictions = model(images).argmax(dim=1)
    return Explained(found, accuracy, images, labels, predictions)


def _tunnel_maps(explained: Explained, config: NoiseTunnelConfig, progress: bool) -> TunnelMaps:
    """IG and its three noise tunnels on the explained images, with their measures and spectra."""
    images, labels = explained.images, explained.labels
    ig = IntegratedGradients(explained.found.model, steps=config.ig_steps)
    tunnels = {"SmoothGrad(IG)": SmoothGrad, "SmoothGrad²(IG)": SmoothGradSq, "VarGrad(IG)": VarGrad}
    maps = {"IG": reduce_channels(ig(images, labels), "sum")}
    for name, tunnel in tunnels.items():
        # the same seed for every tunnel: the three statistics are taken over the same noisy copies
        generator = torch.Generator().manual_seed(config.seed)
        explainer = tunnel(ig, n=config.n_samples, noise_level=config.noise_level, generator=generator,
                           progress=progress)
        maps[name] = reduce_channels(explainer(images, labels), "sum")
    measures = {name: MapMeasures(float(hf_power_ratio(m).mean()), float(laplacian_energy(m).mean()),
                                  float(compression_ratio(m).mean())) for name, m in maps.items()}
    spectra = {name: _normalised_power(m).mean(dim=0) for name, m in maps.items()}
    profiles = {name: radial_profile(s) for name, s in spectra.items()}
    return TunnelMaps(maps, measures, spectra, profiles)


def _draw(tunnel: TunnelMaps, explained: Explained, config: NoiseTunnelConfig, study_dir: Path) -> None:
    """The figures of :data:`FIGURES`: the maps, the mean spectra and their radial profiles."""
    titles = [f"y={int(y)} p={int(p)}" for y, p in zip(explained.labels, explained.predictions)]
    attribution_grid(
        explained.images, [(name, m, "magnitude" if name in ("SmoothGrad²(IG)", "VarGrad(IG)") else "signed")
                           for name, m in tunnel.maps.items()],
        study_dir / "maps.png", titles=titles, title=f"IG and its noise tunnels, {config.model} on {config.dataset}",
    )
    heatmaps({name: torch.log10(s + 1e-12) for name, s in tunnel.spectra.items()}, study_dir / "spectra.png",
             title="Mean normalised power spectrum (centred, log10)", colorbar_label="log10 power")
    line_plot({name: (range(len(p)), p.tolist()) for name, p in tunnel.profiles.items()}, study_dir / "radial.png",
              xlabel="frequency radius (cycles per image)", ylabel="mean normalised power",
              title="Radial profile of the mean power spectrum", logy=True)


def _description(config: NoiseTunnelConfig, found: StudyModel) -> str:
    """What the study did, for the report."""
    return (
        f"A {config.model} ({found.source}, trained for {found.epochs} epochs), explained on {config.dataset}; "
        f"{config.n_images} test images explained with Integrated Gradients ({config.ig_steps} steps, black "
        f"baseline) and with its noise tunnels over {config.n_samples} noisy copies "
        f"(σ = {config.noise_level} × image range). Maps are summed over channels; HF power = share of "
        "spectral power above a quarter of the image size (cycles per image)."
    )


def _run(run: StudyRun) -> tuple[str, dict[str, Any]]:
    """The study's body (see :func:`freqlens.studies.base.study_runner`): description and results."""
    config = run.config
    explained = _explained(config, run.cache_dir, run.progress)
    tunnel = _tunnel_maps(explained, config, run.progress)
    _draw(tunnel, explained, config, run.study_dir)
    found = explained.found
    return _description(config, found), {
        "summary": {
            "test accuracy": round(explained.accuracy, 4),
            "model": found.source,
            "model reused (zoo or cache)": found.reused,
            "total seconds": round(time.perf_counter() - run.started, 2),
        },
        "analysed_models": [found.analysed("explained")],
        "figures": FIGURES,
        "tables": [tunnel.table()],
        "claims": [claim.to_dict() for claim in tunnel.claims()],
        "measures": {name: m.to_dict() for name, m in tunnel.measures.items()},
    }


#: ``run_noise_tunnel(out_dir, config=None, scale="demo", *, cache_dir=None, progress=False, command=None)``;
#: raises :class:`FreqlensError` for an invalid config or more images than the test split has.
run_noise_tunnel = study_runner(STUDY, TITLE, NoiseTunnelConfig, _validate, _run)
