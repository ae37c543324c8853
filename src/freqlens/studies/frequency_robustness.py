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
from typing import Any

import torch
from torch import Tensor, nn

from freqlens.analysis import (
    ablate_bands,
    attack_spectra,
    attribution_shift,
    low_band_share,
    occluded_frequency,
    other_image_indices,
    robust_dataset,
    save_rct_figure,
)
from freqlens.attacks import CW, FGSM, PGD, LowFrequencyPGD, SimBA
from freqlens.data import load_dataset, pick_indices
from freqlens.errors import FreqlensError
from freqlens.report.figures import attribution_grid, heatmaps, line_grid, line_plot
from freqlens.spectral import dct2, dct_bands
from freqlens.studies.base import Claim, check_scale, study_folders, study_model, write_results
from freqlens.training import Adversarial, evaluate

STUDY = "frequency-robustness"
TITLE = "Frequency-based explanation of (robust) CNNs: attacks, robust datasets, Occluded Frequency"
ATTACKS = ("FGSM", "PGD", "CW", "SimBA-DCT", "LF-PGD")
#: attacks of seed 003, Fig 2 (LF-PGD is the low-frequency control of seed 002 / Sharma et al.)
SEED_ATTACKS = ("FGSM", "PGD", "CW", "SimBA-DCT")


@dataclasses.dataclass(frozen=True)
class FrequencyRobustnessConfig:
    """Every number of the study in one place (defaults = the ``demo`` scale)."""

    model: str = "lenet"
    dataset: str = "demo-cifar10"  # the images analysed
    zoo: str = "cifar10"  # models from the zoo trained on this dataset ("" = train them for the study)
    retrain: bool = False  # train afresh (on `dataset`'s training split) even when the zoo has the models
    n_train: int = 0  # 0: the whole training split
    batch_size: int = 64
    lr: float = 1e-3
    epochs: int = 10  # natural model
    seed: int = 0
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

    @classmethod
    def for_scale(cls, scale: str) -> FrequencyRobustnessConfig:
        """Preset of a scale: ``demo`` (the zoo's CIFAR-10 lenet and its PGD-AT twin on the shipped sample,
        seconds), ``cpu`` (the same models, more images and attack steps: ``--set dataset=ARCHIVE``),
        ``paper`` (seed-like: resnet18 trained for the study)."""
        check_scale(scale)
        if scale == "demo":
            return cls()
        eps = 8 / 255
        if scale == "cpu":
            return cls(dataset="cifar10", n_images=200, pgd_steps=10, cw_steps=100, simba_queries=500, n_robust=32,
                       robust_steps=200, robust_step_size=0.05)
        return cls(model="resnet18", dataset="cifar10", zoo="", batch_size=128, lr=1e-3, epochs=30, at_epochs=30,
                   at_eps=eps, at_alpha=2 / 255, at_steps=7, n_images=200, attack_eps=0.15, pgd_steps=20,
                   cw_steps=1000, simba_queries=3000, n_robust=200, robust_steps=1000, robust_step_size=0.05)


def _validate(config: FrequencyRobustnessConfig) -> None:
    for name in ("epochs", "at_epochs", "batch_size", "at_steps", "n_images", "pgd_steps", "cw_steps", "cw_search_steps",
                 "simba_queries", "lf_cutoff", "n_robust", "robust_steps", "nonrobust_steps", "ablate_k",
                 "eval_batch_size"):
        if getattr(config, name) < 1:
            raise FreqlensError(f"{name} must be >= 1, got {getattr(config, name)}")
    for name in ("n_train", "low_cutoff", "example"):
        if getattr(config, name) < 0:
            raise FreqlensError(f"{name} must be >= 0, got {getattr(config, name)}")
    for name in ("lr", "at_eps", "at_alpha", "attack_eps", "cw_c", "simba_eps", "robust_step_size", "nonrobust_eps"):
        value = getattr(config, name)
        if not (math.isfinite(value) and value > 0):
            raise FreqlensError(f"{name} must be a positive finite number, got {value}")
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


def run_frequency_robustness(
    out_dir: str | Path,
    config: FrequencyRobustnessConfig | None = None,
    scale: str = "demo",
    *,
    cache_dir: str | Path | None = None,
    progress: bool = False,
    command: str | None = None,
) -> Path:
    """Run the study into ``out_dir/frequency-robustness`` and return the path of its ``results.json``.

    ``config`` defaults to ``FrequencyRobustnessConfig.for_scale(scale)``; both models are cached under
    ``cache_dir`` (default ``out_dir/cache``).
    """
    config = config or FrequencyRobustnessConfig.for_scale(scale)
    _validate(config)
    out_dir, study_dir, cache_dir = study_folders(out_dir, STUDY, cache_dir)
    started = time.perf_counter()
    seed = config.seed

    test_set = load_dataset(config.dataset, split="test", progress=progress)
    if config.n_images > len(test_set):
        raise FreqlensError(f"n_images = {config.n_images} but the test split has {len(test_set)} images")
    # a seeded random subset: image folders list the test split class by class
    chosen = pick_indices(len(test_set), config.n_images, seed)
    images = test_set.float_images(chosen)
    labels = test_set.labels[chosen].long()
    h, w = images.shape[-2:]
    n_bands = h + w - 1
    cutoff = config.low_cutoff or n_bands // 4
    if not 0 < cutoff < n_bands:
        raise FreqlensError(f"low_cutoff must lie in 1..{n_bands - 1} for {h}×{w} images, got {cutoff}")

    common = {"batch_size": config.batch_size, "lr": config.lr, "n_train": config.n_train or None,
              "progress": progress}
    common = {**common, "zoo": config.zoo, "retrain": config.retrain}
    natural_found = study_model(config.model, config.dataset, config.epochs, seed, cache_dir, **common)
    at_mode = Adversarial.pgd(config.at_eps, config.at_alpha, config.at_steps)
    robust_found = study_model(config.model, config.dataset, config.at_epochs, seed, cache_dir, mode=at_mode, **common)
    natural, robust = natural_found.model, robust_found.model
    models = {"natural": natural, "adversarially trained": robust}
    accuracy = {name: evaluate(model, test_set)["accuracy"] for name, model in models.items()}

    # Experiment I: RCT of the attacks, on both models
    spectra = {}
    for offset, (name, model) in enumerate(models.items()):
        spectra[name] = attack_spectra(model, images, labels, _attacks(model, config, seed + 10 * offset),
                                       batch_size=config.eval_batch_size, progress=progress)
    save_rct_figure(spectra["natural"], study_dir / "rct_natural.png")
    save_rct_figure(spectra["adversarially trained"], study_dir / "rct_adversarial.png")
    attack_numbers = {
        model_name: {name: {"high_low_ratio": _finite(s.high_low_ratio), "clean_accuracy": s.clean_accuracy,
                            "robust_accuracy": s.robust_accuracy, "mean_l2": s.summary["mean_l2"],
                            "mean_linf": s.summary["mean_linf"]} for name, s in result.items()}
        for model_name, result in spectra.items()
    }

    # Experiment II: robust (AT inversion) vs non-robust (natural inversion; targeted L2 step) counterparts
    sources, source_labels = images[: config.n_robust], labels[: config.n_robust]
    init = sources[other_image_indices(config.n_robust, torch.Generator().manual_seed(seed))]
    counterparts, distances = {}, {}
    for key, model in (("robust", robust), ("non-robust", natural)):
        counterparts[key], history = robust_dataset(
            model, sources, init, steps=config.robust_steps, step_size=config.robust_step_size,
            batch_size=config.eval_batch_size, progress=progress, return_history=True)
        distances[key] = {"first": float(history[0].mean()), "last": float(history[-1].mean())}
    n_classes = len(test_set.classes)
    offsets = torch.randint(1, n_classes, source_labels.shape, generator=torch.Generator().manual_seed(seed))
    targets = (source_labels + offsets) % n_classes
    step = PGD(natural, eps=config.nonrobust_eps, alpha=config.nonrobust_eps / 10, steps=config.nonrobust_steps,
               norm="2", targeted=True, generator=torch.Generator().manual_seed(seed + 4))
    counterparts["non-robust (targeted L2 step)"] = step(sources, targets)
    with torch.no_grad():
        target_reached = float((natural(counterparts["non-robust (targeted L2 step)"]).argmax(1) == targets)
                               .float().mean())
    # what each procedure changed: the inversions start from another image, the targeted step from x itself
    starts = {"robust": init, "non-robust": init, "non-robust (targeted L2 step)": sources}
    differences = {key: _dct_difference(x, starts[key]) for key, x in counterparts.items()}
    difference_profiles = {key: band_profile(d) for key, d in differences.items()}
    difference_low_share = {key: float(low_band_share(p, cutoff)) for key, p in difference_profiles.items()}
    heatmaps({f"{key}\nlow-band share {difference_low_share[key]:.2f}": torch.log1p(d)
              for key, d in differences.items()}, study_dir / "robust_dataset_dct.png",
             title="Mean |dct2(x') − dct2(start)| of robust / non-robust counterparts (DC top-left)",
             colorbar_label="log(1 + |Δ DCT|)")
    line_plot({key: (range(n_bands), p.tolist()) for key, p in difference_profiles.items()},
              study_dir / "robust_dataset_bands.png", xlabel="DCT band i + j", ylabel="mean |Δ DCT coefficient|",
              title="DCT difference to the starting image per band", logy=True)

    # Experiment III: Occluded Frequency of the natural model, an example with its ablations
    profiles = {name: occluded_frequency(model, images, labels, baseline="zero", batch_size=config.eval_batch_size,
                                         progress=progress) for name, model in models.items()}
    natural_profiles = profiles["natural"]
    k = min(config.ablate_k, n_bands)
    top = natural_profiles.topk(k, dim=1).indices  # [B, k]
    lowest_removed = torch.stack([ablate_bands(x, range(k)) for x in images])
    top_removed = torch.stack([ablate_bands(x, top[i]) for i, x in enumerate(images)])
    pixel_change = {"lowest": (lowest_removed - images).flatten(1).norm(dim=1),
                    "top": (top_removed - images).flatten(1).norm(dim=1)}
    with torch.no_grad():
        logits = natural(images).gather(1, labels[:, None])[:, 0]
        logit_drop = {"lowest": logits - natural(lowest_removed).gather(1, labels[:, None])[:, 0],
                      "top": logits - natural(top_removed).gather(1, labels[:, None])[:, 0]}
    e = config.example
    example = images[e:e + 1]
    ablations = [("input", example[0])]
    ablations += [(f"−{j} lowest", ablate_bands(example[0], range(j))) for j in range(1, k + 1)]
    ablations += [(f"−top {j}: {','.join(str(int(b)) for b in top[e, :j])}",
                   ablate_bands(example[0], top[e, :j])) for j in range(1, k + 1)]
    panels = torch.stack([x for _, x in ablations])
    attribution_grid(panels, [("change", (panels - example).sum(dim=1))], study_dir / "occluded_frequency_example.png",
                     titles=[label for label, _ in ablations],
                     title=f"Occluded Frequency example (class {test_set.classes[int(labels[e])]}): bands removed")
    line_plot({f"example image (class {test_set.classes[int(labels[e])]})": (range(n_bands),
                                                                            natural_profiles[e].tolist()),
               "mean over images": (range(n_bands), natural_profiles.mean(dim=0).tolist())},
              study_dir / "occluded_frequency.png", xlabel="DCT band i + j",
              ylabel="logit drop when the band is removed", title="Occluded Frequency, natural model (seed 003, Fig 4)")

    # Experiment IV: attribution shift natural -> adversarially trained
    shift = attribution_shift(natural, robust, images, labels, cutoff=cutoff, batch_size=config.eval_batch_size)
    classes = sorted(shift.natural)
    line_grid({f"class {test_set.classes[c]}": {
                  f"natural (low share {shift.natural_low_share[c]:.2f})": (range(n_bands), shift.natural[c].tolist()),
                  f"AT (low share {shift.robust_low_share[c]:.2f})": (range(n_bands), shift.robust[c].tolist())}
               for c in classes},
              study_dir / "attribution_shift.png", xlabel="DCT band i + j", ylabel="mean logit drop",
              title=f"Occluded Frequency per class, natural vs adversarially trained (low bands: i + j < {cutoff})")
    line_plot({name: (range(n_bands), p.mean(dim=0).tolist()) for name, p in profiles.items()},
              study_dir / "attribution_shift_mean.png", xlabel="DCT band i + j",
              ylabel="mean logit drop when the band is removed",
              title="Attribution shift natural → adversarially trained (seed 003, Fig 1)")
    mean_share = {"natural": sum(shift.natural_low_share.values()) / len(classes),
                  "adversarially trained": sum(shift.robust_low_share.values()) / len(classes)}

    nat, adv = attack_numbers["natural"], attack_numbers["adversarially trained"]
    # an attack that changed no image has no spectrum (ratio None): left out of the minimum
    ratios = [nat[name]["high_low_ratio"] for name in SEED_ATTACKS if nat[name]["high_low_ratio"] is not None]
    gain = {name: adv[name]["robust_accuracy"] - nat[name]["robust_accuracy"] for name in ATTACKS}
    claims = [
        Claim("Every attack (FGSM, PGD, CW, SimBA-DCT) on the natural model changes the high DCT bands relatively "
              "more than the low ones (RCT high/low ratio > 1)", "003", "rct_natural.png",
              "smallest RCT high/low ratio", min(ratios), ">", "1", 1.0),
    ] if ratios else []
    claims += [
        Claim("Adversarial training makes the model more robust: PGD robust accuracy AT > natural", "003",
              "rct_adversarial.png", "PGD robust accuracy, AT model", adv["PGD"]["robust_accuracy"], ">",
              "PGD robust accuracy, natural model", nat["PGD"]["robust_accuracy"]),
        Claim("Adversarial training helps less against low-frequency perturbations (Sharma et al.): the robust "
              "accuracy gain under LF-PGD is smaller than under PGD", "002", "rct_adversarial.png",
              "AT gain in robust accuracy, LF-PGD", gain["LF-PGD"], "<", "AT gain in robust accuracy, PGD",
              gain["PGD"]),
        Claim("Robust counterparts (AT-model inversion) differ from their starting images mostly in low "
              "frequencies, more than the non-robust ones (natural-model inversion): low-band share of |Δ DCT|", "003", "robust_dataset_dct.png",
              "low-band share, robust", difference_low_share["robust"], ">", "low-band share, non-robust",
              difference_low_share["non-robust"]),
        Claim("Removing the most important bands changes the image less than removing the lowest bands (natural "
              "model; mean pixel L2 change, k bands)", "003", "occluded_frequency_example.png",
              "L2 change, top-k bands removed", float(pixel_change["top"].mean()), "<",
              "L2 change, k lowest bands removed", float(pixel_change["lowest"].mean())),
        Claim("The adversarially trained model relies more on low frequencies: mean low-band share of the "
              "Occluded-Frequency profile AT > natural", "003", "attribution_shift.png",
              "low-band share, AT model", mean_share["adversarially trained"], ">", "low-band share, natural model",
              mean_share["natural"]),
    ]

    results = {
        "study": STUDY,
        "title": TITLE,
        "description": (
            f"A {config.model} ({natural_found.source}) trained for {natural_found.epochs} epochs (natural) and its "
            f"twin ({robust_found.source}) trained with PGD-AT (L∞ ε = {config.at_eps:.4g}, {config.at_steps} steps "
            f"of {config.at_alpha:.4g}, {robust_found.epochs} epochs). On {config.n_images} test images of "
            f"{config.dataset} (a seeded random draw): RCT maps of FGSM, PGD, CW, SimBA-DCT "
            f"(ε = {config.attack_eps:.4g} L∞ for FGSM/PGD/LF-PGD) and low-frequency PGD (bands < {config.lf_cutoff}); "
            f"robust / non-robust counterparts of {config.n_robust} images by representation inversion "
            f"({config.robust_steps} steps) with the AT / natural model; Occluded Frequency (zero baseline, logit) "
            f"per DCT band i + j; low bands = i + j < {cutoff}."
        ),
        "command": command or f"freqlens study {STUDY} --out {out_dir}",
        "config": dataclasses.asdict(config),
        "summary": {
            "test accuracy, natural": round(accuracy["natural"], 4),
            "test accuracy, adversarially trained": round(accuracy["adversarially trained"], 4),
            "PGD robust accuracy, natural": round(nat["PGD"]["robust_accuracy"], 4),
            "PGD robust accuracy, adversarially trained": round(adv["PGD"]["robust_accuracy"], 4),
            "natural model": natural_found.source,
            "adversarially trained model": robust_found.source,
            "natural model reused (zoo or cache)": natural_found.reused,
            "adversarially trained model reused (zoo or cache)": robust_found.reused,
            "low-band cutoff": cutoff,
            "total seconds": round(time.perf_counter() - started, 2),
        },
        "analysed_models": [natural_found.analysed("natural"), robust_found.analysed("adversarially trained")],
        "figures": [
            {"file": "rct_natural.png", "caption": "RCT maps of the attacks on the natural model (DC top-left, log "
                                                   "colour scale), with the high/low band ratio and robust accuracy."},
            {"file": "rct_adversarial.png", "caption": "The same for the adversarially trained model."},
            {"file": "robust_dataset_dct.png",
             "caption": "Mean |DCT difference| between the counterparts and their starting images (seed 003, Fig 3): "
                        "robust (inversion of the AT model's features from another image), non-robust (the same "
                        "with the natural model) and non-robust (targeted L2 step from the image itself)."},
            {"file": "robust_dataset_bands.png", "caption": "The same differences averaged per DCT band."},
            {"file": "occluded_frequency_example.png",
             "caption": f"One test image with its {k} lowest bands and its {k} most important bands (Occluded "
                        "Frequency, natural model) removed cumulatively; second row: the change (red +, blue −)."},
            {"file": "occluded_frequency.png", "caption": "Occluded-Frequency profile of the example image and the "
                                                          "mean over images, natural model."},
            {"file": "attribution_shift.png", "caption": "Mean Occluded-Frequency profile per class (rows) of the "
                                                         "natural and the adversarially trained model."},
            {"file": "attribution_shift_mean.png", "caption": "Mean Occluded-Frequency profile over all images of "
                                                              "both models."},
        ],
        "tables": [
            {
                "title": "Attacks: RCT high/low band ratio and accuracy (natural | adversarially trained)",
                "columns": ["attack", "high/low natural", "high/low AT", "robust acc. natural", "robust acc. AT",
                            "mean L2 natural", "mean L2 AT"],
                "rows": [[name, _rounded(nat[name]["high_low_ratio"]), _rounded(adv[name]["high_low_ratio"]),
                          round(nat[name]["robust_accuracy"], 4), round(adv[name]["robust_accuracy"], 4),
                          round(nat[name]["mean_l2"], 4), round(adv[name]["mean_l2"], 4)] for name in ATTACKS],
            },
            {
                "title": "Robust / non-robust counterparts: low-band share of the mean |Δ DCT|",
                "columns": ["counterpart", "low-band share", "mean |Δ DCT|"],
                "rows": [[key, round(difference_low_share[key], 4), round(float(d.mean()), 6)]
                         for key, d in differences.items()],
            },
            {
                "title": "Occluded Frequency: low-band share per class",
                "columns": ["class", "natural", "adversarially trained"],
                "rows": [[test_set.classes[c], round(shift.natural_low_share[c], 4), round(shift.robust_low_share[c], 4)]
                         for c in classes],
            },
        ],
        "claims": [claim.to_dict() for claim in claims],
        "test_accuracy": accuracy,
        "attacks": attack_numbers,
        "rct": {model_name: {name: s.rct.double().tolist() for name, s in result.items()}
                for model_name, result in spectra.items()},
        "high_band": spectra["natural"].high_band,
        "robust_dataset": {
            "feature_distance": distances,
            "targeted_step_target_reached": target_reached,
            "band_profiles": {key: p.tolist() for key, p in difference_profiles.items()},
            "low_band_share": difference_low_share,
        },
        "occluded_frequency": {
            "labels": labels.tolist(),
            "profiles": {name: p.tolist() for name, p in profiles.items()},
            "top_bands": top.tolist(),
            "pixel_change": {key: v.tolist() for key, v in pixel_change.items()},
            "logit_drop": {key: v.tolist() for key, v in logit_drop.items()},
        },
        "attribution_shift": {**shift.to_dict(test_set.classes), "mean_low_band_share": mean_share},
    }
    return write_results(study_dir, results)
