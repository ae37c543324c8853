"""One frequency frame: several models side by side on the same images (seeds 000, 001 and 003 each
look at one column of it).

For every model, on the same ``B`` images with their true labels:

* **clean / robust accuracy**: top-1 accuracy, and under PGD (L∞, random start, ``eps``, ``pgd_steps``
  steps of ``eps / 4``) — the threat model of the zoo's robust accuracies;
* **gradient HF power** (seed 000 / 001): :func:`freqlens.spectral.hf_power_ratio` (radius > min(H, W)/4,
  mean removed, power averaged over channels) of the input gradient ``∇ₓ f_y(x)`` of the true class's
  logit, per image with a bootstrap interval; and the same measure of ``∂f_y/∂(layer output)`` along depth
  (:func:`freqlens.metrics.layer_hf_content`, ``"hf_power"``, seed 001 Fig. 5);
* **VII** (seed 000, Definition 3) against ``mean_image``;
* **Occluded-Frequency low-band share** (seed 003): the share of the positive Occluded Frequency
  profile (logit, zero baseline) held by the DCT bands ``i + j < (H + W − 1) // 4``, per image;
* **FORGrad σ\\* and gain** (seed 001): σ\\* of Saliency in the published ``magnitude`` pipeline, chosen by
  :func:`search_sigma` on ``calibration`` images (Insertion − Deletion), and its paired gain over the
  unfiltered map measured on the frame's images (not the calibration ones);
* **RCT high/low ratio** (seed 003, Fig. 2) of the PGD perturbations (:func:`high_low_ratio`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from freqlens.analysis.attack_spectra import attack_spectra
from freqlens.analysis.bootstrap import Interval, bootstrap_interval
from freqlens.analysis.occluded_frequency import low_band_share, occluded_frequency
from freqlens.analysis.sigma_search import search_sigma
from freqlens.attacks import PGD
from freqlens.attribution import Saliency
from freqlens.metrics.layers import layer_hf_content
from freqlens.metrics.vii import vii_per_image
from freqlens.spectral import hf_power_ratio
from freqlens.utils.tensors import check_images


@dataclass(frozen=True)
class FrameRow:
    """One model's column of the frame (intervals: mean over images with a bootstrap 95 % interval).

    Attributes:
        name: the model's label.
        clean_accuracy: top-1 accuracy on the images.
        robust_accuracy: accuracy under the frame's PGD.
        gradient_hf: HF power share of the input gradient of the true class's logit.
        hf_depth: ``[(layer, HF power share of ∂f_y/∂layer)]`` in forward order.
        vii: VII (seed 000) of the images.
        low_band_share: Occluded-Frequency low-band share.
        sigma_star: FORGrad σ* (Saliency, magnitude pipeline) chosen on the calibration images.
        forgrad_score: Insertion − Deletion of the FORGrad(Saliency) maps at σ*, on the images.
        forgrad_gain: paired gain in Insertion − Deletion of σ* over the unfiltered map, on the images.
        rct_high_low: high/low band ratio of the PGD perturbation's RCT map.
    """

    name: str
    clean_accuracy: float
    robust_accuracy: float
    gradient_hf: Interval
    hf_depth: list[tuple[str, float]]
    vii: Interval
    low_band_share: Interval
    sigma_star: float
    forgrad_score: Interval
    forgrad_gain: Interval
    rct_high_low: float | None

    def to_dict(self) -> dict:
        """JSON-ready row (intervals as :meth:`Interval.to_dict`)."""
        return {"name": self.name, "clean_accuracy": self.clean_accuracy,
                "robust_accuracy": self.robust_accuracy,
                "gradient_hf": self.gradient_hf.to_dict(), "hf_depth": [list(item) for item in self.hf_depth],
                "vii": self.vii.to_dict(), "low_band_share": self.low_band_share.to_dict(),
                "sigma_star": None if math.isinf(self.sigma_star) else self.sigma_star,
                "forgrad_score": self.forgrad_score.to_dict(), "forgrad_gain": self.forgrad_gain.to_dict(), "rct_high_low": self.rct_high_low}


@dataclass(frozen=True)
class FrequencyFrame:
    """Result of :func:`frequency_frame`: one :class:`FrameRow` per model, and the settings used.

    Attributes:
        rows: one :class:`FrameRow` per model, in the order of the models.
        settings: the settings used (``eps``, ``pgd_steps``, ``steps``, ``sigmas``, ``batch_size``,
            ``n_resamples``, ``seed``, image counts, the FORGrad pipeline and the low-band cutoff).
    """

    rows: list[FrameRow]
    settings: dict

    def to_dict(self) -> dict:
        """JSON-ready ``{"settings", "rows"}``."""
        return {"settings": dict(self.settings), "rows": [row.to_dict() for row in self.rows]}

    def markdown(self) -> str:
        """The frame as a Markdown table (means, with 95 % intervals where there are some)."""
        def cell(interval: Interval) -> str:
            return f"{interval.estimate:.3f} [{interval.low:.3f}, {interval.high:.3f}]"

        header = ["model", "clean acc", "robust acc", "gradient HF", "VII", "OF low-band share", "σ*",
                  "I−D at σ*", "FORGrad gain (I−D)", "RCT high/low"]
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for row in self.rows:
            rct = "—" if row.rct_high_low is None else f"{row.rct_high_low:.3g}"
            sigma = "∞" if math.isinf(row.sigma_star) else f"{row.sigma_star:g}"
            cells = [row.name, f"{row.clean_accuracy:.3f}", f"{row.robust_accuracy:.3f}", cell(row.gradient_hf),
                     cell(row.vii), cell(row.low_band_share), sigma, cell(row.forgrad_score), cell(row.forgrad_gain),
                     rct]
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)


def _check_models(models: object) -> dict[str, nn.Module]:
    if not isinstance(models, Mapping) or not models:
        raise ValueError("models must be a non-empty mapping name -> nn.Module")
    for name, model in models.items():
        if not isinstance(model, nn.Module):
            raise TypeError(f"models[{name!r}] must be an nn.Module, got {type(model).__name__}")
    return dict(models)


def _check_labels(labels: object, inputs: Tensor, name: str) -> Tensor:
    if not isinstance(labels, Tensor) or labels.dtype != torch.long or labels.shape != inputs.shape[:1]:
        raise ValueError(f"{name} must be a LongTensor[{inputs.shape[0]}] of classes")
    return labels.to(inputs.device)


def _row(name: str, model: nn.Module, inputs: Tensor, labels: Tensor, calibration: tuple[Tensor, Tensor],
         mean_image: Tensor, settings: dict, generator: torch.Generator) -> FrameRow:
    """Every column of one model (see the module doc)."""
    eps, chunk, n_res = settings["eps"], settings["batch_size"], settings["n_resamples"]
    h, w = inputs.shape[-2:]
    interval = lambda values: bootstrap_interval(values, n_resamples=n_res, generator=generator)
    starts = torch.Generator().manual_seed(settings["seed"])
    attack = PGD(model, eps=eps, alpha=eps / 4, steps=settings["pgd_steps"], generator=starts)
    spectra = attack_spectra(model, inputs, labels, {"PGD": attack}, batch_size=chunk)["PGD"]
    explainer = Saliency(model, batch_size=chunk)
    gradients = explainer.attribute(inputs, labels)
    depth = layer_hf_content(model, inputs, labels, measure="hf_power", batch_size=chunk)
    profile = occluded_frequency(model, inputs, labels, baseline="zero", batch_size=chunk)
    chosen = search_sigma(explainer, model, calibration[0], calibration[1], sigmas=settings["sigmas"],
                          steps=settings["steps"],
                          batch_size=chunk, generator=generator).sigma_star
    evaluated = search_sigma(explainer, model, inputs, labels, sigmas=[chosen], steps=settings["steps"],
                             batch_size=chunk, n_resamples=n_res, generator=generator)
    return FrameRow(
        name=name, clean_accuracy=float(spectra.clean_accuracy),
        robust_accuracy=float(spectra.robust_accuracy),
        gradient_hf=interval(hf_power_ratio(gradients, remove_mean=True)), hf_depth=depth,
        vii=interval(vii_per_image(model, inputs, labels, mean_image, batch_size=chunk)),
        low_band_share=interval(low_band_share(profile, (h + w - 1) // 4)), sigma_star=chosen,
        forgrad_score=evaluated.intervals[0], forgrad_gain=evaluated.gains[0],
        rct_high_low=spectra.high_low_ratio,
    )


def frequency_frame(
    models: Mapping[str, nn.Module],
    inputs: Tensor,
    labels: Tensor,
    calibration: tuple[Tensor, Tensor],
    *,
    mean_image: Tensor | None = None,
    eps: float = 8 / 255,
    pgd_steps: int = 10,
    steps: int = 16,
    sigmas: Sequence[float] | None = None,
    batch_size: int | None = None,
    n_resamples: int = 1000,
    seed: int = 0,
    progress: bool = False,
) -> FrequencyFrame:
    """Put ``models`` side by side on the same images: accuracy, robustness and every frequency measure
    of the seeds (module doc).

    Args:
        models: ``{label: classifier returning logits}``, all taking ``inputs``.
        inputs: ``B×C×H×W`` images in [0, 1] (the frame's images).
        labels: their true classes, ``LongTensor[B]``.
        calibration: ``(images, labels)`` on which each model's FORGrad σ* is chosen (held out from
            ``inputs``: the gain is then measured on images σ* was not chosen on).
        mean_image: ``C×H×W`` dataset mean for VII (default: the mean of ``inputs``).
        eps, pgd_steps: the PGD of the robust accuracy and the RCT (L∞, random start, step ``eps / 4``).
        steps: Deletion / Insertion steps of the σ* search and the gain.
        sigmas: the σ grid of the search (default :func:`default_sigmas`, 16 values up to the identity).
        batch_size: images per forward/backward pass everywhere (default: all).
        n_resamples: bootstrap resamples of every interval.
        seed: seeds the PGD random starts and the bootstrap.
        progress: a tqdm bar over the models.

    Returns:
        :class:`FrequencyFrame` with one row per model, in the order of ``models``.
    """
    from tqdm.auto import tqdm

    models = _check_models(models)
    inputs = check_images(inputs)
    labels = _check_labels(labels, inputs, "labels")
    calibration_images = check_images(calibration[0])
    calibration_labels = _check_labels(calibration[1], calibration_images, "calibration labels")
    calibration = (calibration_images, calibration_labels)
    mean = inputs.mean(dim=0) if mean_image is None else mean_image
    settings = {"sigmas": None if sigmas is None else [float(s) for s in sigmas], "eps": float(eps),
                "pgd_steps": int(pgd_steps), "steps": int(steps), "batch_size": batch_size,
                "n_resamples": int(n_resamples), "seed": int(seed), "images": int(inputs.shape[0]),
                "calibration_images": int(calibration_images.shape[0]), "forgrad": "Saliency, magnitude, box",
                "low_band_cutoff": (inputs.shape[-2] + inputs.shape[-1] - 1) // 4}
    rows = []
    for name, model in tqdm(models.items(), desc="frequency frame", unit="model", disable=not progress):
        generator = torch.Generator().manual_seed(int(seed))
        rows.append(_row(name, model, inputs, labels, calibration, mean, settings, generator))
    return FrequencyFrame(rows=rows, settings=settings)


def frame_hf_depth(frame: FrequencyFrame) -> dict[str, Sequence[tuple[str, float]]]:
    """``{model: [(layer, HF share), ...]}`` of a frame (the depth profiles, for a line plot)."""
    return {row.name: row.hf_depth for row in frame.rows}
