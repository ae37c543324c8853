"""Frequency-robustness study (seeds 002, 003: "Towards frequency-based explanation for (robust) CNN").

A naturally trained model and its PGD adversarially trained (Madry) twin are compared in the DCT domain:

* Experiment I (Fig 2): RCT maps of FGSM, PGD, CW, SimBA (DCT basis) and low-frequency PGD, with the
  high-band ÷ low-band ratio and the robust accuracy, for both models.
* Experiment II (Fig 3): robust counterparts (representation inversion with the adversarially trained
  model) vs non-robust ones (the same inversion with the natural model, and the targeted-L2 step of
  Ilyas et al. that ``freqlens analyze robust-dataset`` uses): mean |DCT difference| to the starting images.
* Experiment III (Fig 4): Occluded Frequency of one image, with its lowest bands and its most important
  bands removed.
* Experiment IV (Fig 1 of 003): attribution shift, per-class Occluded-Frequency profiles of both models
  and their low-band shares.

Writes ``out_dir/frequency-robustness/results.json`` and the PNG figures listed there.
"""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from freqlens.analysis import (
    AttackSpectra,
    AttributionShift,
    ablate_bands,
    attack_spectra,
    attribution_shift,
    low_band_share,
    occluded_frequency,
    other_image_indices,
    robust_dataset,
)
from freqlens.attacks import CW, FGSM, PGD, LowFrequencyPGD, SimBA
from freqlens.data import ImageDataset, load_dataset, pick_indices
from freqlens.errors import FreqlensError
from freqlens.report.figures import attribution_grid, heatmaps, line_grid, line_plot, save_rct_figure
from freqlens.spectral import dct2, dct_bands
from freqlens.studies.base import (
    Claim,
    StudyModel,
    StudyRun,
    StudyTraining,
    study_runner,
)
from freqlens.training import Adversarial, evaluate
from freqlens.utils.io import FlatRecord

STUDY = "frequency-robustness"
TITLE = "Frequency-based explanation of (robust) CNNs: attacks, robust datasets, Occluded Frequency"
ATTACKS = ("FGSM", "PGD", "CW", "SimBA-DCT", "LF-PGD")
#: attacks of seed 003, Fig 2 (LF-PGD is the low-frequency control of seed 002 / Sharma et al.)
SEED_ATTACKS = ("FGSM", "PGD", "CW", "SimBA-DCT")


@dataclasses.dataclass(frozen=True)
class FrequencyRobustnessConfig(StudyTraining):
    """Every number of the study in one place (defaults = the ``demo`` scale); the images analysed and the
    models' origin and training as :class:`~freqlens.studies.base.StudyTraining` (``epochs``: of the
    natural model)."""

    model: str = "lenet"
    # adversarially trained twin: PGD-AT (Madry) with at_steps L∞ steps (the zoo's lenet-cifar10-pgd-at)
    at_epochs: int = 10
    at_eps: float = 8 / 255
    at_alpha: float = 2 / 255
    at_steps: int = 7
    # test images attacked / explained
    n_images: int = 64
    attack_eps: float = 8 / 255  # L∞ budget of FGSM, PGD, LF-PGD
    pgd_steps: int = 10
    cw_steps: int = 50
    cw_c: float = 1.0  # CW's initial constant (per image)
    cw_search_steps: int = 5  # rounds of CW's binary search over c (Carlini & Wagner's schedule)
    simba_eps: float = 0.2
    simba_queries: int = 200
    lf_cutoff: int = 8  # LF-PGD perturbs DCT bands i + j < lf_cutoff
    # robust / non-robust datasets (representation inversion) on the first n_robust images
    n_robust: int = 16
    robust_steps: int = 100
    robust_step_size: float = 0.1
    nonrobust_eps: float = 3.0  # L2 budget of the targeted step (Ilyas et al.), as in `freqlens analyze`
    nonrobust_steps: int = 20
    # Occluded Frequency: k bands ablated in the example; low bands = i + j < low_cutoff (0: (H+W−1)//4)
    ablate_k: int = 3
    low_cutoff: int = 0
    example: int = 0  # index (among the n_images) of the Fig 4 example
    eval_batch_size: int = 256  # max images per forward pass of the analyses (memory bound only)

    # demo: the zoo's CIFAR-10 lenet and its PGD-AT twin on the shipped sample, seconds; cpu: the same models,
    # more images and attack steps (--set dataset=ARCHIVE); paper: seed-like, resnet18 trained for the study
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "cpu": {"dataset": "cifar10", "n_images": 200, "pgd_steps": 10, "cw_steps": 100, "simba_queries": 500,
                "n_robust": 32, "robust_steps": 200, "robust_step_size": 0.05},
        "paper": {"model": "resnet18", "dataset": "cifar10", "zoo": "", "batch_size": 128, "lr": 1e-3, "epochs": 30,
                  "at_epochs": 30, "at_eps": 8 / 255, "at_alpha": 2 / 255, "at_steps": 7, "n_images": 200,
                  "attack_eps": 0.15, "pgd_steps": 20, "cw_steps": 1000, "simba_queries": 3000, "n_robust": 200,
                  "robust_steps": 1000, "robust_step_size": 0.05},
    }


def _validate(config: FrequencyRobustnessConfig) -> None:
    config.check_fields(
        counts=("epochs", "at_epochs", "batch_size", "at_steps", "n_images", "pgd_steps", "cw_steps", "cw_search_steps",
                "simba_queries", "lf_cutoff", "n_robust", "robust_steps", "nonrobust_steps", "ablate_k",
                "eval_batch_size"),
        sizes=("n_train", "low_cutoff", "example"),
        rates=("lr", "at_eps", "at_alpha", "attack_eps", "cw_c", "simba_eps", "robust_step_size", "nonrobust_eps"))
    if config.n_robust < 2:
        raise FreqlensError(f"n_robust must be >= 2 (each inversion starts from another image), got {config.n_robust}")
    if config.n_robust > config.n_images:
        raise FreqlensError(f"n_robust ({config.n_robust}) must be <= n_images ({config.n_images})")
    if config.example >= config.n_images:
        raise FreqlensError(f"example ({config.example}) must be < n_images ({config.n_images})")


def _attacks(model: nn.Module, config: FrequencyRobustnessConfig, seed: int) -> dict[str, Any]:
    """The attacks of Experiment I on ``model``, each with its own seeded generator."""
    def generator(offset: int) -> torch.Generator:
        return torch.Generator().manual_seed(seed + offset)

    eps = config.attack_eps
    return {
        "FGSM": FGSM(model, eps=eps),
        "PGD": PGD(model, eps=eps, alpha=eps / 4, steps=config.pgd_steps, generator=generator(1)),
        "CW": CW(model, c=config.cw_c, steps=config.cw_steps, binary_search_steps=config.cw_search_steps),
        "SimBA-DCT": SimBA(model, eps=config.simba_eps, max_queries=config.simba_queries, basis="dct",
                           order="diagonal", generator=generator(2)),
        "LF-PGD": LowFrequencyPGD(model, eps=eps, alpha=eps / 4, steps=config.pgd_steps, cutoff=config.lf_cutoff,
                                  generator=generator(3)),
    }


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _rounded(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


def band_profile(values: Tensor) -> Tensor:
    """Mean of an ``[H, W]`` DCT-domain map over each anti-diagonal band ``i + j`` -> ``Tensor[H+W−1]``."""
    h, w = values.shape[-2:]
    bands = dct_bands(h, w, device=values.device).reshape(-1)
    sums = torch.zeros(h + w - 1, dtype=values.dtype, device=values.device).index_add_(0, bands, values.reshape(-1))
    return sums / torch.bincount(bands, minlength=h + w - 1).to(values.dtype)


def _dct_difference(counterparts: Tensor, starts: Tensor) -> Tensor:
    """Mean over images and channels of ``|dct2(x') − dct2(x₀)|`` -> ``[H, W]``."""
    return (dct2(counterparts.double()) - dct2(starts.double())).abs().mean(dim=(0, 1))


# --------------------------------------------------------------------------------- typed pieces
@dataclasses.dataclass(frozen=True)
class Images:
    """The analysed test images.

    Attributes:
        test_set: The test split.
        images: A seeded random draw of ``n_images`` of it (image folders list the test split class by
            class), ``B×C×H×W`` in [0, 1].
        labels: Their labels.
        cutoff: The low bands of the low-band shares are ``i + j < cutoff``.
    """

    test_set: ImageDataset
    images: Tensor
    labels: Tensor
    cutoff: int

    @property
    def classes(self) -> list[str]:
        """The class names (index = label)."""
        return list(self.test_set.classes)

    @property
    def n_bands(self) -> int:
        """The number of DCT bands ``i + j`` of the images, ``H + W − 1``."""
        return self.images.shape[-2] + self.images.shape[-1] - 1


@dataclasses.dataclass(frozen=True)
class Twins:
    """The natural model and its PGD adversarially trained twin.

    Attributes:
        natural: The naturally trained model.
        robust: Its adversarially trained twin.
        accuracy: ``"natural"`` / ``"adversarially trained"`` -> accuracy on the whole test split.
    """

    natural: StudyModel
    robust: StudyModel
    accuracy: dict[str, float]

    def by_role(self) -> dict[str, nn.Module]:
        """``{"natural": model, "adversarially trained": model}``, the order of every per-model result."""
        return {"natural": self.natural.model, "adversarially trained": self.robust.model}


@dataclasses.dataclass(frozen=True)
class AttackOutcome(FlatRecord):
    """One attack on one model.

    Attributes:
        high_low_ratio: Its RCT high/low band ratio (``None`` when it changed no image).
        clean_accuracy: Accuracy on the clean images.
        robust_accuracy: Accuracy on the adversarial images.
        mean_l2: Mean L2 norm of the perturbations.
        mean_linf: Mean L∞ norm of the perturbations.
    """

    high_low_ratio: float | None
    clean_accuracy: float
    robust_accuracy: float
    mean_l2: float
    mean_linf: float


@dataclasses.dataclass(frozen=True)
class AttackExperiment:
    """Experiment I (seed 003, Fig 2): the RCT of :data:`ATTACKS` on both models.

    Attributes:
        spectra: Model role -> the attacks' spectra.
        outcomes: Model role -> attack -> outcome.
    """

    spectra: dict[str, AttackSpectra]
    outcomes: dict[str, dict[str, AttackOutcome]]

    def gain(self, attack: str) -> float:
        """The robust-accuracy gain of adversarial training under ``attack``."""
        natural, robust = self.outcomes["natural"][attack], self.outcomes["adversarially trained"][attack]
        return robust.robust_accuracy - natural.robust_accuracy

    def figures(self) -> list[dict[str, str]]:
        """The figure entries of the experiment."""
        return [{"file": "rct_natural.png", "caption": "RCT maps of the attacks on the natural model (DC top-left, "
                                                       "log colour scale), with the high/low band ratio and robust "
                                                       "accuracy."},
                {"file": "rct_adversarial.png", "caption": "The same for the adversarially trained model."}]

    def claims(self) -> list[Claim]:
        """Every seed attack favours high bands (when any changed an image); AT is more robust, less so
        against low-frequency perturbations."""
        nat, adv = self.outcomes["natural"], self.outcomes["adversarially trained"]
        # an attack that changed no image has no spectrum (ratio None): left out of the minimum
        ratios = [nat[name].high_low_ratio for name in SEED_ATTACKS if nat[name].high_low_ratio is not None]
        claims = [
            Claim("Every attack (FGSM, PGD, CW, SimBA-DCT) on the natural model changes the high DCT bands "
                  "relatively more than the low ones (RCT high/low ratio > 1)", "003", "rct_natural.png",
                  "smallest RCT high/low ratio", min(ratios), ">", "1", 1.0),
        ] if ratios else []
        return claims + [
            Claim("Adversarial training makes the model more robust: PGD robust accuracy AT > natural", "003",
                  "rct_adversarial.png", "PGD robust accuracy, AT model", adv["PGD"].robust_accuracy, ">",
                  "PGD robust accuracy, natural model", nat["PGD"].robust_accuracy),
            Claim("Adversarial training helps less against low-frequency perturbations (Sharma et al.): the robust "
                  "accuracy gain under LF-PGD is smaller than under PGD", "002", "rct_adversarial.png",
                  "AT gain in robust accuracy, LF-PGD", self.gain("LF-PGD"), "<", "AT gain in robust accuracy, PGD",
                  self.gain("PGD")),
        ]

    def tables(self) -> list[dict[str, Any]]:
        """The attacks table (natural | adversarially trained)."""
        nat, adv = self.outcomes["natural"], self.outcomes["adversarially trained"]
        return [{
            "title": "Attacks: RCT high/low band ratio and accuracy (natural | adversarially trained)",
            "columns": ["attack", "high/low natural", "high/low AT", "robust acc. natural", "robust acc. AT",
                        "mean L2 natural", "mean L2 AT"],
            "rows": [[name, _rounded(nat[name].high_low_ratio), _rounded(adv[name].high_low_ratio),
                      round(nat[name].robust_accuracy, 4), round(adv[name].robust_accuracy, 4),
                      round(nat[name].mean_l2, 4), round(adv[name].mean_l2, 4)] for name in ATTACKS],
        }]

    def to_dict(self) -> dict[str, Any]:
        """The experiment's part of ``results.json``: ``attacks``, ``rct``, ``high_band``."""
        return {
            "attacks": {role: {name: o.to_dict() for name, o in outcomes.items()}
                        for role, outcomes in self.outcomes.items()},
            "rct": {role: {name: s.rct.double().tolist() for name, s in result.items()}
                    for role, result in self.spectra.items()},
            "high_band": self.spectra["natural"].high_band,
        }


@dataclasses.dataclass(frozen=True)
class CounterpartExperiment:
    """Experiment II (seed 003, Fig 3): robust counterparts (inversion with the AT model) vs non-robust ones
    (inversion with the natural model; the targeted L2 step of Ilyas et al.), by their DCT difference to
    the images they start from.

    Attributes:
        distances: Inversion -> mean feature distance at the ``first`` and ``last`` step.
        target_reached: Share of targeted-step counterparts the natural model assigns to their target.
        differences: Counterpart kind -> mean ``|dct2(x') − dct2(start)|`` ``[H, W]``.
        profiles: Counterpart kind -> that difference's mean per DCT band.
        low_share: Counterpart kind -> the profile's low-band share.
    """

    distances: dict[str, dict[str, float]]
    target_reached: float
    differences: dict[str, Tensor]
    profiles: dict[str, Tensor]
    low_share: dict[str, float]

    def figures(self) -> list[dict[str, str]]:
        """The figure entries of the experiment."""
        return [{"file": "robust_dataset_dct.png",
                 "caption": "Mean |DCT difference| between the counterparts and their starting images (seed 003, "
                            "Fig 3): robust (inversion of the AT model's features from another image), non-robust "
                            "(the same with the natural model) and non-robust (targeted L2 step from the image "
                            "itself)."},
                {"file": "robust_dataset_bands.png", "caption": "The same differences averaged per DCT band."}]

    def claims(self) -> list[Claim]:
        """Robust counterparts differ from their start more in low frequencies than non-robust ones."""
        return [Claim("Robust counterparts (AT-model inversion) differ from their starting images mostly in low "
                      "frequencies, more than the non-robust ones (natural-model inversion): low-band share of "
                      "|Δ DCT|", "003", "robust_dataset_dct.png", "low-band share, robust", self.low_share["robust"],
                      ">", "low-band share, non-robust", self.low_share["non-robust"])]

    def tables(self) -> list[dict[str, Any]]:
        """The low-band share and mean |Δ DCT| per counterpart kind."""
        return [{"title": "Robust / non-robust counterparts: low-band share of the mean |Δ DCT|",
                 "columns": ["counterpart", "low-band share", "mean |Δ DCT|"],
                 "rows": [[key, round(self.low_share[key], 4), round(float(d.mean()), 6)]
                          for key, d in self.differences.items()]}]

    def to_dict(self) -> dict[str, Any]:
        """The experiment's part of ``results.json``: ``robust_dataset``."""
        return {"robust_dataset": {
            "feature_distance": self.distances,
            "targeted_step_target_reached": self.target_reached,
            "band_profiles": {key: p.tolist() for key, p in self.profiles.items()},
            "low_band_share": self.low_share,
        }}


@dataclasses.dataclass(frozen=True)
class OccludedExperiment:
    """Experiment III (seed 003, Fig 4): Occluded Frequency of both models and, for the natural model, the
    effect of removing each image's ``k`` lowest or ``k`` most important bands.

    Attributes:
        labels: The images' labels.
        profiles: Model role -> per-image Occluded-Frequency profiles ``[B, H+W−1]``.
        top: The ``k`` most important bands of each image under the natural model, ``[B, k]``.
        pixel_change: ``lowest`` / ``top`` -> per-image L2 change of the image when those bands are removed.
        logit_drop: ``lowest`` / ``top`` -> per-image drop of the natural model's true-class logit.
    """

    labels: Tensor
    profiles: dict[str, Tensor]
    top: Tensor
    pixel_change: dict[str, Tensor]
    logit_drop: dict[str, Tensor]

    def figures(self) -> list[dict[str, str]]:
        """The figure entries of the experiment."""
        k = self.top.shape[1]
        return [{"file": "occluded_frequency_example.png",
                 "caption": f"One test image with its {k} lowest bands and its {k} most important bands (Occluded "
                            "Frequency, natural model) removed cumulatively; second row: the change (red +, "
                            "blue −)."},
                {"file": "occluded_frequency.png", "caption": "Occluded-Frequency profile of the example image and "
                                                              "the mean over images, natural model."}]

    def claims(self) -> list[Claim]:
        """Removing the most important bands changes the image less than removing the lowest ones."""
        return [Claim("Removing the most important bands changes the image less than removing the lowest bands "
                      "(natural model; mean pixel L2 change, k bands)", "003", "occluded_frequency_example.png",
                      "L2 change, top-k bands removed", float(self.pixel_change["top"].mean()), "<",
                      "L2 change, k lowest bands removed", float(self.pixel_change["lowest"].mean()))]

    def tables(self) -> list[dict[str, Any]]:
        """None: the numbers are in the figures and ``results.json``."""
        return []

    def to_dict(self) -> dict[str, Any]:
        """The experiment's part of ``results.json``: ``occluded_frequency``."""
        return {"occluded_frequency": {
            "labels": self.labels.tolist(),
            "profiles": {name: p.tolist() for name, p in self.profiles.items()},
            "top_bands": self.top.tolist(),
            "pixel_change": {key: v.tolist() for key, v in self.pixel_change.items()},
            "logit_drop": {key: v.tolist() for key, v in self.logit_drop.items()},
        }}


@dataclasses.dataclass(frozen=True)
class ShiftExperiment:
    """Experiment IV (seed 003, Fig 1): the attribution shift natural -> adversarially trained.

    Attributes:
        shift: The per-class Occluded-Frequency profiles of both models and their low-band shares.
        classes: The class names.
        mean_share: Model role -> mean low-band share over the classes.
    """

    shift: AttributionShift
    classes: list[str]
    mean_share: dict[str, float]

    def figures(self) -> list[dict[str, str]]:
        """The figure entries of the experiment."""
        return [{"file": "attribution_shift.png", "caption": "Mean Occluded-Frequency profile per class (rows) of "
                                                             "the natural and the adversarially trained model."},
                {"file": "attribution_shift_mean.png", "caption": "Mean Occluded-Frequency profile over all images "
                                                                  "of both models."}]

    def claims(self) -> list[Claim]:
        """The AT model relies more on low frequencies."""
        return [Claim("The adversarially trained model relies more on low frequencies: mean low-band share of the "
                      "Occluded-Frequency profile AT > natural", "003", "attribution_shift.png",
                      "low-band share, AT model", self.mean_share["adversarially trained"], ">",
                      "low-band share, natural model", self.mean_share["natural"])]

    def tables(self) -> list[dict[str, Any]]:
        """The low-band share per class of both models."""
        shift = self.shift
        return [{"title": "Occluded Frequency: low-band share per class",
                 "columns": ["class", "natural", "adversarially trained"],
                 "rows": [[self.classes[c], round(shift.natural_low_share[c], 4), round(shift.robust_low_share[c], 4)]
                          for c in sorted(shift.natural)]}]

    def to_dict(self) -> dict[str, Any]:
        """The experiment's part of ``results.json``: ``attribution_shift``."""
        return {"attribution_shift": {**self.shift.to_dict(self.classes), "mean_low_band_share": self.mean_share}}


# --------------------------------------------------------------------------------- the experiments
def _images(config: FrequencyRobustnessConfig, progress: bool) -> Images:
    """The analysed test images and the low-band cutoff (checked against their size)."""
    test_set = load_dataset(config.dataset, split="test", progress=progress)
    if config.n_images > len(test_set):
        raise FreqlensError(f"n_images = {config.n_images} but the test split has {len(test_set)} images")
    chosen = pick_indices(len(test_set), config.n_images, config.seed)
    images = test_set.float_images(chosen)
    h, w = images.shape[-2:]
    n_bands = h + w - 1
    cutoff = config.low_cutoff or n_bands // 4
    if not 0 < cutoff < n_bands:
        raise FreqlensError(f"low_cutoff must lie in 1..{n_bands - 1} for {h}×{w} images, got {cutoff}")
    return Images(test_set, images, test_set.labels[chosen].long(), cutoff)


def _twins(config: FrequencyRobustnessConfig, data: Images, cache_dir: Path, progress: bool) -> Twins:
    """Both models (zoo, or trained and cached) and their accuracy on the whole test split."""
    natural = config.study_model(config.model, cache_dir, progress=progress)
    at_mode = Adversarial.pgd(config.at_eps, config.at_alpha, config.at_steps)
    robust = config.study_model(config.model, cache_dir, mode=at_mode, epochs=config.at_epochs, progress=progress)
    twins = Twins(natural, robust, accuracy={})
    accuracy = {role: evaluate(model, data.test_set)["accuracy"] for role, model in twins.by_role().items()}
    return dataclasses.replace(twins, accuracy=accuracy)


def _attack_experiment(config: FrequencyRobustnessConfig, data: Images, twins: Twins, study_dir: Path,
                       progress: bool) -> AttackExperiment:
    """Experiment I: every attack on both models, with the RCT figures."""
    spectra, outcomes = {}, {}
    for offset, (role, model) in enumerate(twins.by_role().items()):
        attacks = _attacks(model, config, config.seed + 10 * offset)
        spectra[role] = attack_spectra(model, data.images, data.labels, attacks, batch_size=config.eval_batch_size,
                                       progress=progress)
        outcomes[role] = {name: AttackOutcome(_finite(s.high_low_ratio), s.clean_accuracy, s.robust_accuracy,
                                              s.summary["mean_l2"], s.summary["mean_linf"])
                          for name, s in spectra[role].items()}
    save_rct_figure(spectra["natural"], study_dir / "rct_natural.png")
    save_rct_figure(spectra["adversarially trained"], study_dir / "rct_adversarial.png")
    return AttackExperiment(spectra, outcomes)


def _counterparts(config: FrequencyRobustnessConfig, data: Images, twins: Twins,
                  progress: bool) -> tuple[dict[str, Tensor], dict[str, Tensor], dict[str, dict[str, float]], float]:
    """The counterparts of the first ``n_robust`` images: ``(counterparts, their starts, feature distances
    of the inversions, share of targeted steps that reached their target)``."""
    seed, sources, source_labels = config.seed, data.images[: config.n_robust], data.labels[: config.n_robust]
    init = sources[other_image_indices(config.n_robust, torch.Generator().manual_seed(seed))]
    counterparts, distances = {}, {}
    for key, model in (("robust", twins.robust.model), ("non-robust", twins.natural.model)):
        counterparts[key], history = robust_dataset(
            model, sources, init, steps=config.robust_steps, step_size=config.robust_step_size,
            batch_size=config.eval_batch_size, progress=progress, return_history=True)
        distances[key] = {"first": float(history[0].mean()), "last": float(history[-1].mean())}
    n_classes = len(data.classes)
    offsets = torch.randint(1, n_classes, source_labels.shape, generator=torch.Generator().manual_seed(seed))
    targets = (source_labels + offsets) % n_classes
    natural = twins.natural.model
    step = PGD(natural, eps=config.nonrobust_eps, alpha=config.nonrobust_eps / 10, steps=config.nonrobust_steps,
               norm="2", targeted=True, generator=torch.Generator().manual_seed(seed + 4))
    counterparts["non-robust (targeted L2 step)"] = step(sources, targets)
    with torch.no_grad():
        reached = float((natural(counterparts["non-robust (targeted L2 step)"]).argmax(1) == targets).float().mean())
    # what each procedure changed: the inversions start from another image, the targeted step from x itself
    starts = {"robust": init, "non-robust": init, "non-robust (targeted L2 step)": sources}
    return counterparts, starts, distances, reached


def _counterpart_experiment(config: FrequencyRobustnessConfig, data: Images, twins: Twins, study_dir: Path,
                            progress: bool) -> CounterpartExperiment:
    """Experiment II: the DCT differences of the counterparts to their starts, with their figures."""
    counterparts, starts, distances, reached = _counterparts(config, data, twins, progress)
    differences = {key: _dct_difference(x, starts[key]) for key, x in counterparts.items()}
    profiles = {key: band_profile(d) for key, d in differences.items()}
    low_share = {key: float(low_band_share(p, data.cutoff)) for key, p in profiles.items()}
    heatmaps({f"{key}\nlow-band share {low_share[key]:.2f}": torch.log1p(d) for key, d in differences.items()},
             study_dir / "robust_dataset_dct.png",
             title="Mean |dct2(x') − dct2(start)| of robust / non-robust counterparts (DC top-left)",
             colorbar_label="log(1 + |Δ DCT|)")
    line_plot({key: (range(data.n_bands), p.tolist()) for key, p in profiles.items()},
              study_dir / "robust_dataset_bands.png", xlabel="DCT band i + j", ylabel="mean |Δ DCT coefficient|",
              title="DCT difference to the starting image per band", logy=True)
    return CounterpartExperiment(distances, reached, differences, profiles, low_share)


def _occluded_experiment(config: FrequencyRobustnessConfig, data: Images, twins: Twins, study_dir: Path,
                         progress: bool) -> OccludedExperiment:
    """Experiment III: Occluded Frequency of both models; the natural model's band ablations."""
    images, labels, natural = data.images, data.labels, twins.natural.model
    profiles = {role: occluded_frequency(model, images, labels, baseline="zero", batch_size=config.eval_batch_size,
                                         progress=progress) for role, model in twins.by_role().items()}
    k = min(config.ablate_k, data.n_bands)
    top = profiles["natural"].topk(k, dim=1).indices  # [B, k]
    removed = {"lowest": torch.stack([ablate_bands(x, range(k)) for x in images]),
               "top": torch.stack([ablate_bands(x, top[i]) for i, x in enumerate(images)])}
    pixel_change = {key: (x - images).flatten(1).norm(dim=1) for key, x in removed.items()}
    with torch.no_grad():
        logits = natural(images).gather(1, labels[:, None])[:, 0]
        logit_drop = {key: logits - natural(x).gather(1, labels[:, None])[:, 0] for key, x in removed.items()}
    experiment = OccludedExperiment(labels, profiles, top, pixel_change, logit_drop)
    _draw_occluded(experiment, data, config.example, study_dir)
    return experiment


def _draw_occluded(experiment: OccludedExperiment, data: Images, e: int, study_dir: Path) -> None:
    """The figures of Experiment III for the example image ``e``: its cumulative band ablations and its
    Occluded-Frequency profile with the mean over images."""
    k, top, profiles = experiment.top.shape[1], experiment.top, experiment.profiles["natural"]
    example = data.images[e:e + 1]
    ablations = [("input", example[0])]
    ablations += [(f"−{j} lowest", ablate_bands(example[0], range(j))) for j in range(1, k + 1)]
    ablations += [(f"−top {j}: {','.join(str(int(b)) for b in top[e, :j])}",
                   ablate_bands(example[0], top[e, :j])) for j in range(1, k + 1)]
    panels = torch.stack([x for _, x in ablations])
    name = data.classes[int(data.labels[e])]
    attribution_grid(panels, [("change", (panels - example).sum(dim=1))], study_dir / "occluded_frequency_example.png",
                     titles=[label for label, _ in ablations],
                     title=f"Occluded Frequency example (class {name}): bands removed")
    bands = range(data.n_bands)
    line_plot({f"example image (class {name})": (bands, profiles[e].tolist()),
               "mean over images": (bands, profiles.mean(dim=0).tolist())},
              study_dir / "occluded_frequency.png", xlabel="DCT band i + j",
              ylabel="logit drop when the band is removed", title="Occluded Frequency, natural model (seed 003, Fig 4)")


def _shift_experiment(config: FrequencyRobustnessConfig, data: Images, twins: Twins, occluded: OccludedExperiment,
                      study_dir: Path) -> ShiftExperiment:
    """Experiment IV: the attribution shift per class, with its figures (the mean profiles are those of
    Experiment III)."""
    shift = attribution_shift(twins.natural.model, twins.robust.model, data.images, data.labels, cutoff=data.cutoff,
                              batch_size=config.eval_batch_size)
    classes, bands = sorted(shift.natural), range(data.n_bands)
    line_grid({f"class {data.classes[c]}": {
                  f"natural (low share {shift.natural_low_share[c]:.2f})": (bands, shift.natural[c].tolist()),
                  f"AT (low share {shift.robust_low_share[c]:.2f})": (bands, shift.robust[c].tolist())}
               for c in classes},
              study_dir / "attribution_shift.png", xlabel="DCT band i + j", ylabel="mean logit drop",
              title=f"Occluded Frequency per class, natural vs adversarially trained (low bands: i + j < {data.cutoff})")
    line_plot({role: (bands, p.mean(dim=0).tolist()) for role, p in occluded.profiles.items()},
              study_dir / "attribution_shift_mean.png", xlabel="DCT band i + j",
              ylabel="mean logit drop when the band is removed",
              title="Attribution shift natural → adversarially trained (seed 003, Fig 1)")
    mean_share = {"natural": sum(shift.natural_low_share.values()) / len(classes),
                  "adversarially trained": sum(shift.robust_low_share.values()) / len(classes)}
    return ShiftExperiment(shift, data.classes, mean_share)


def _description(config: FrequencyRobustnessConfig, twins: Twins, cutoff: int) -> str:
    """What the study did, for the report."""
    natural, robust = twins.natural, twins.robust
    return (
        f"A {config.model} ({natural.source}) trained for {natural.epochs} epochs (natural) and its "
        f"twin ({robust.source}) trained with PGD-AT (L∞ ε = {config.at_eps:.4g}, {config.at_steps} steps "
        f"of {config.at_alpha:.4g}, {robust.epochs} epochs). On {config.n_images} test images of "
        f"{config.dataset} (a seeded random draw): RCT maps of FGSM, PGD, CW, SimBA-DCT "
        f"(ε = {config.attack_eps:.4g} L∞ for FGSM/PGD/LF-PGD) and low-frequency PGD (bands < {config.lf_cutoff}); "
        f"robust / non-robust counterparts of {config.n_robust} images by representation inversion "
        f"({config.robust_steps} steps) with the AT / natural model; Occluded Frequency (zero baseline, logit) "
        f"per DCT band i + j; low bands = i + j < {cutoff}."
    )


def _summary(twins: Twins, attacks: AttackExperiment, cutoff: int, started: float) -> dict[str, Any]:
    """Headline numbers: accuracies, PGD robust accuracies, where the models came from, wall time."""
    nat, adv = attacks.outcomes["natural"]["PGD"], attacks.outcomes["adversarially trained"]["PGD"]
    return {
        "test accuracy, natural": round(twins.accuracy["natural"], 4),
        "test accuracy, adversarially trained": round(twins.accuracy["adversarially trained"], 4),
        "PGD robust accuracy, natural": round(nat.robust_accuracy, 4),
        "PGD robust accuracy, adversarially trained": round(adv.robust_accuracy, 4),
        "natural model": twins.natural.source,
        "adversarially trained model": twins.robust.source,
        "natural model reused (zoo or cache)": twins.natural.reused,
        "adversarially trained model reused (zoo or cache)": twins.robust.reused,
        "low-band cutoff": cutoff,
        "total seconds": round(time.perf_counter() - started, 2),
    }


def _run(run: StudyRun) -> tuple[str, dict[str, Any]]:
    """The study's body (see :func:`freqlens.studies.base.study_runner`): description and results."""
    config, study_dir, progress = run.config, run.study_dir, run.progress
    data = _images(config, progress)
    twins = _twins(config, data, run.cache_dir, progress)
    attacks = _attack_experiment(config, data, twins, study_dir, progress)
    counterparts = _counterpart_experiment(config, data, twins, study_dir, progress)
    occluded = _occluded_experiment(config, data, twins, study_dir, progress)
    shift = _shift_experiment(config, data, twins, occluded, study_dir)
    experiments = (attacks, counterparts, occluded, shift)
    results = {
        "summary": _summary(twins, attacks, data.cutoff, run.started),
        "analysed_models": [twins.natural.analysed("natural"), twins.robust.analysed("adversarially trained")],
        "figures": [figure for experiment in experiments for figure in experiment.figures()],
        "tables": [table for experiment in experiments for table in experiment.tables()],
        "claims": [claim.to_dict() for experiment in experiments for claim in experiment.claims()],
        "test_accuracy": twins.accuracy,
    }
    for experiment in experiments:
        results.update(experiment.to_dict())
    return _description(config, twins, data.cutoff), results


#: ``run_frequency_robustness(out_dir, config=None, scale="demo", *, cache_dir=None, progress=False,
#: command=None)``; raises :class:`FreqlensError` for an invalid config, or one that does not fit the test
#: split or its image size.
run_frequency_robustness = study_runner(STUDY, TITLE, FrequencyRobustnessConfig, _validate, _run)
