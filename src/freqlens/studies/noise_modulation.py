"""Noise-modulation study (seed 000): standard training, noise modulation and PGD adversarial training
compared by their loss input-gradients (Fig. 1/3), the VII metric and test accuracy, the β trade-off
(Fig. 4), the six carrier noises (Fig. 5) and the training cost per epoch.

Writes ``out_dir/noise-modulation/results.json``, ``gradients.png``, ``tradeoff.png``,
``beta_gradients.png``, ``carriers.png`` and ``cost.png``.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from freqlens.data import load_dataset, pick_indices
from freqlens.errors import FreqlensError
from freqlens.metrics import vii
from freqlens.report.figures import attribution_grid, grouped_bars, line_plot
from freqlens.studies.base import (
    Claim,
    check_scale,
    seconds_per_step,
    study_folders,
    study_model,
    training_mean_image,
    write_results,
)
from freqlens.training import NOISES, Adversarial, NoiseModulation, Standard, describe_mode
from freqlens.utils.scores import input_gradient
from freqlens.utils.tensors import chunks, eval_mode

STUDY = "noise-modulation"
TITLE = "Noise modulation vs adversarial training: interpretable input-gradients at a lower cost"
MAIN = ("standard", "noise modulation", "adversarial")


@dataclasses.dataclass(frozen=True)
class NoiseModulationConfig:
    """Every number of the study in one place (defaults = the ``demo`` scale).

    The standard model uses exactly the shared demo settings (lenet, 3 epochs, seed 0, batch 64,
    lr 1e-3, whole training split); every other model differs only by its training mode.
    """

    model: str = "lenet"
    dataset: str = "demo-cifar10"  # the images analysed (VII, gradient grids)
    zoo: str = "cifar10"  # models from the zoo trained on this dataset ("" = train them for the study)
    retrain: bool = False  # train afresh (on `dataset`'s training split) even when the zoo has the models
    epochs: int = 10
    batch_size: int = 64
    lr: float = 1e-3
    n_train: int = 0  # 0: the whole training split
    seed: int = 0
    beta: float = 0.5  # noise modulation of the main comparison (seed 000 §3.2: β = 0.5, Gaussian)
    noise: str = "gaussian"
    betas: str = "0.2,0.5,0.8,1.0"  # β sweep (Fig. 4); β = 1 is standard training
    noises: str = "gaussian,uniform,laplace,gamma,exponential,rayleigh"  # carriers (Fig. 5), at β = beta
    at_eps: float = 8 / 255  # PGD adversarial training (L∞, random start), as the zoo's lenet-cifar10-pgd-at
    at_alpha: float = 2 / 255
    at_steps: int = 7
    n_images: int = 10  # images in the gradient grids
    n_vii: int = 0  # test images for VII (0: the whole test split)
    batch_images: int = 256  # images per gradient pass
    cost_steps: int = 8  # timed training steps per mode (median) for the cost comparison

    @classmethod
    def for_scale(cls, scale: str) -> NoiseModulationConfig:
        """Preset of a scale: ``demo`` (the zoo's CIFAR-10 lenets on the 1,000 shipped test images,
        seconds), ``cpu`` (the same models on the whole CIFAR-10 test split: ``--set dataset=ARCHIVE``),
        ``paper`` (seed-like: resnet18 trained 50 epochs, PGD-7, a finer β sweep)."""
        check_scale(scale)
        if scale == "demo":
            return cls()
        if scale == "cpu":
            return cls(dataset="cifar10", n_vii=0)
        return cls(dataset="cifar10", zoo="", model="resnet18", epochs=50,
                   betas="0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,1.0", n_vii=0, n_images=10)


def parse_betas(text: str) -> list[float]:
    """``"0.2,0.5"`` -> ``[0.2, 0.5]`` (sorted, unique), each in [0, 1]; at least two values."""
    try:
        betas = sorted({float(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise FreqlensError(f"betas must be comma-separated numbers, got {text!r}") from None
    if len(betas) < 2 or not all(0.0 <= beta <= 1.0 for beta in betas):
        raise FreqlensError(f"betas must hold at least two distinct values in [0, 1], got {text!r}")
    return betas


def parse_noises(text: str) -> list[str]:
    """``"gaussian,laplace"`` -> ``["gaussian", "laplace"]``, each a key of :data:`freqlens.training.NOISES`."""
    noises = list(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    unknown = [noise for noise in noises if noise not in NOISES]
    if not noises or unknown:
        raise FreqlensError(f"noises must be a comma-separated subset of {', '.join(NOISES)}, got {text!r}")
    return noises


def _validate(config: NoiseModulationConfig) -> None:
    for name in ("epochs", "batch_size", "at_steps", "n_images", "batch_images", "cost_steps"):
        if getattr(config, name) < 1:
            raise FreqlensError(f"{name} must be >= 1, got {getattr(config, name)}")
    for name in ("n_train", "n_vii"):
        if getattr(config, name) < 0:
            raise FreqlensError(f"{name} must be >= 0 (0 = all), got {getattr(config, name)}")
    for name in ("lr", "at_eps", "at_alpha"):
        if not getattr(config, name) > 0:
            raise FreqlensError(f"{name} must be > 0, got {getattr(config, name)}")
    if not 0.0 <= config.beta < 1.0:
        raise FreqlensError(f"beta must be in [0, 1) (β = 1 is standard training), got {config.beta}")
    if config.noise not in NOISES:
        raise FreqlensError(f"noise must be one of {', '.join(NOISES)}, got {config.noise!r}")
    parse_betas(config.betas)
    parse_noises(config.noises)


def loss_gradients(model: nn.Module, images: Tensor, labels: Tensor, batch_size: int | None = None) -> Tensor:
    """Input-gradients of the cross-entropy loss, ``∇ₓ CE(f(x), y)`` (``B×C×H×W``), in eval mode; each
    image's gradient is that of its own loss term (independent of ``batch_size``)."""
    gradients = torch.empty_like(images)
    with eval_mode(model):
        for part in chunks(images.shape[0], batch_size):
            gradients[part], _ = input_gradient(
                model, images[part], lambda logits, part=part: F.cross_entropy(logits, labels[part], reduction="sum"))
    return gradients


def _display(gradients: Tensor) -> Tensor:
    """Channel-summed gradients, each image scaled to max |g| = 1 (the seed scales each map for display)."""
    maps = gradients.sum(dim=1)
    peak = maps.flatten(1).abs().amax(dim=1).clamp_min(1e-30)
    return maps / peak[:, None, None]


def _beta_label(beta: float) -> str:
    return f"β={beta:g}"


def run_noise_modulation(
    out_dir: str | Path,
    config: NoiseModulationConfig | None = None,
    scale: str = "demo",
    *,
    cache_dir: str | Path | None = None,
    progress: bool = False,
    command: str | None = None,
) -> Path:
    """Run the study into ``out_dir/noise-modulation`` and return the path of its ``results.json``.

    ``config`` defaults to ``NoiseModulationConfig.for_scale(scale)``; trained models are cached under
    ``cache_dir`` (default ``out_dir/cache``), so models shared by the comparison, the β sweep and the
    carriers (and with other studies) are trained once.
    """
    config = config or NoiseModulationConfig.for_scale(scale)
    _validate(config)
    betas, noises = parse_betas(config.betas), parse_noises(config.noises)
    out_dir, study_dir, cache_dir = study_folders(out_dir, STUDY, cache_dir)
    started = time.perf_counter()

    # ---- every model, keyed by a readable label; equal modes share one cached model
    modes: dict[str, Any] = {
        "standard": Standard(),
        "noise modulation": NoiseModulation(config.beta, config.noise),
        "adversarial": Adversarial.pgd(config.at_eps, config.at_alpha, config.at_steps),
    }
    beta_labels = {beta: _beta_label(beta) for beta in betas}
    for beta, label in beta_labels.items():
        modes[label] = Standard() if beta == 1.0 else NoiseModulation(beta, config.noise)
    for noise in noises:
        modes[noise] = NoiseModulation(config.beta, noise)

    test_set = load_dataset(config.dataset, split="test", progress=progress)
    if config.n_images > len(test_set):
        raise FreqlensError(f"n_images = {config.n_images} but the test split has {len(test_set)} images")
    n_vii = len(test_set) if config.n_vii == 0 else min(config.n_vii, len(test_set))
    from_zoo = bool(config.zoo) and not config.retrain
    x_bar = training_mean_image(config.dataset, 0 if from_zoo else config.n_train, config.seed)
    # seeded random images: image-folder splits are sorted by class
    vii_index = pick_indices(len(test_set), n_vii, config.seed)
    vii_images, vii_labels = test_set.float_images(vii_index), test_set.labels[vii_index]
    grid_index = pick_indices(len(test_set), config.n_images, config.seed)
    grid_images, grid_labels = test_set.float_images(grid_index), test_set.labels[grid_index]

    keys: dict[str, str] = {}
    models: dict[str, dict[str, Any]] = {}  # per distinct mode
    maps: dict[str, Tensor] = {}
    for label, mode in modes.items():
        key = json.dumps(describe_mode(mode), sort_keys=True)
        keys[label] = key
        if key in models:
            continue
        found = study_model(config.model, config.dataset, config.epochs, config.seed, cache_dir, zoo=config.zoo,
                            retrain=config.retrain, mode=mode, progress=progress, batch_size=config.batch_size,
                            lr=config.lr, n_train=config.n_train or None)
        model = found.model
        step_batch = slice(0, min(config.batch_size, n_vii))
        models[key] = {
            "mode": describe_mode(mode),
            "accuracy": found.accuracy,
            "vii": vii(model, vii_images, vii_labels, x_bar, batch_size=config.batch_images),
            "seconds_per_step": seconds_per_step(model, mode, vii_images[step_batch], vii_labels[step_batch],
                                                 config.cost_steps),
            "model": found.describe(),
            "analysed": found.analysed(label),
            "reused": found.reused,
        }
        maps[key] = _display(loss_gradients(model, grid_images, grid_labels, config.batch_images))
    measured = {label: models[key] for label, key in keys.items()}

    # ---- figures
    titles = [test_set.classes[int(y)][:10] for y in grid_labels]
    where = f"{config.model} on {Path(config.dataset).name}"
    attribution_grid(grid_images, [(label, maps[keys[label]]) for label in MAIN], study_dir / "gradients.png",
                     titles=titles, title=f"Loss input-gradients (each map scaled to max |g| = 1), {where}")
    attribution_grid(grid_images, [(beta_labels[beta], maps[keys[beta_labels[beta]]]) for beta in betas],
                     study_dir / "beta_gradients.png", titles=titles,
                     title=f"Loss input-gradients per β of noise modulation ({config.noise}), {where}")
    attribution_grid(grid_images, [(noise, maps[keys[noise]]) for noise in noises], study_dir / "carriers.png",
                     titles=titles, title=f"Loss input-gradients per carrier noise (β = {config.beta:g}), {where}")
    sweep = [measured[beta_labels[beta]] for beta in betas]
    line_plot({"test accuracy": (betas, [m["accuracy"] for m in sweep]),
               "VII": (betas, [m["vii"] for m in sweep])},
              study_dir / "tradeoff.png", xlabel="β (constant share of the carrier; 1 = standard training)",
              ylabel="accuracy / VII", title=f"Interpretability vs accuracy over β ({config.noise} carrier), {where}")
    grouped_bars(MAIN, {"seconds per training step": [measured[label]["seconds_per_step"] for label in MAIN]},
                 study_dir / "cost.png", ylabel=f"seconds per step (batch {config.batch_size})",
                 title=f"Training cost per step, {where}")

    # ---- claims
    std, nm, at = (measured[label] for label in MAIN)
    low, high = beta_labels[betas[0]], beta_labels[betas[-1]]
    worst_noise = min(noises, key=lambda noise: measured[noise]["vii"])
    claims = [
        Claim("Noise modulation makes input-gradients more interpretable (higher VII) than standard training",
              "000", "gradients.png", "VII noise modulation", nm["vii"], ">", "VII standard", std["vii"]),
        Claim("Adversarial training makes input-gradients more interpretable (higher VII) than standard training",
              "000", "gradients.png", "VII adversarial", at["vii"], ">", "VII standard", std["vii"]),
        Claim("Noise modulation costs less per training step (hence per epoch) than PGD adversarial training",
              "000", "cost.png", "s/step noise modulation", nm["seconds_per_step"], "<", "s/step adversarial",
              at["seconds_per_step"]),
        Claim("A smaller β gives a more interpretable input-gradient (higher VII)", "000", "tradeoff.png",
              f"VII {low}", measured[low]["vii"], ">", f"VII {high}", measured[high]["vii"]),
        Claim("A larger β gives a higher accuracy", "000", "tradeoff.png",
              f"accuracy {high}", measured[high]["accuracy"], ">", f"accuracy {low}", measured[low]["accuracy"]),
        Claim("Every carrier noise gives a more interpretable input-gradient than standard training", "000",
              "carriers.png", f"min VII over carriers ({worst_noise})", measured[worst_noise]["vii"], ">",
              "VII standard", std["vii"]),
    ]

    def row(label: str) -> list[Any]:
        return [label, round(measured[label]["accuracy"], 4), round(measured[label]["vii"], 4)]

    results = {
        "study": STUDY,
        "title": TITLE,
        "description": (
            (f"{config.model} models of the zoo (`freqlens zoo list`: trained on {config.zoo}, {config.epochs} "
             f"epochs each, Adam lr {config.lr:g}, batch {config.batch_size}, seed {config.seed}), analysed on "
             f"{config.dataset}" if from_zoo else
             f"{config.model} models trained for {config.epochs} epochs on {config.dataset} "
             f"({'all' if not config.n_train else config.n_train} training images, Adam lr {config.lr:g}, batch "
             f"{config.batch_size}, seed {config.seed})")
            + f": standard training, noise modulation (β = {config.beta:g}, "
            f"{config.noise} carrier) and PGD adversarial training (L∞, ε = {config.at_eps:.4g}, α = "
            f"{config.at_alpha:.4g}, {config.at_steps} steps). VII (seed 000, Def. 3) on {n_vii} test images (a "
            f"random order seeded by {config.seed}) with the true labels, x̄ = the training mean image; "
            "accuracy = the model's accuracy on the whole test split (zoo: of the shipped float16 weights); "
            f"cost = median wall seconds of one training step (the mode's batch transform, forward, backward, "
            f"Adam step; batch {config.batch_size}) over {config.cost_steps} steps, all modes timed here, one "
            "after the other (an epoch is the same number of steps for every mode). "
            "Gradient maps are summed over channels."
        ),
        "command": command or f"freqlens study {STUDY} --out {out_dir}",
        "config": dataclasses.asdict(config),
        "summary": {
            **{f"test accuracy {label}": round(measured[label]["accuracy"], 4) for label in MAIN},
            **{f"VII {label}": round(measured[label]["vii"], 4) for label in MAIN},
            "models trained": sum(not m["reused"] for m in models.values()),
            "models reused (zoo or cache)": sum(bool(m["reused"]) for m in models.values()),
            "total seconds": round(time.perf_counter() - started, 2),
        },
        "figures": [
            {"file": "gradients.png", "caption": "Loss input-gradients of the same test images for the standard, "
                                                 "noise-modulation and adversarially trained models (seed Fig. 1/3); "
                                                 "red +, blue −."},
            {"file": "tradeoff.png", "caption": "Test accuracy and VII against β of noise modulation (seed Fig. 4); "
                                                "β = 1 is the standard model."},
            {"file": "beta_gradients.png", "caption": "Loss input-gradients per β of noise modulation."},
            {"file": "carriers.png", "caption": "Loss input-gradients per carrier noise at the same β (seed Fig. 5)."},
            {"file": "cost.png", "caption": "Median wall-clock seconds per training step of each mode."},
        ],
        "tables": [
            {"title": "Standard vs noise modulation vs adversarial training",
             "columns": ["mode", "model", "test accuracy", "VII", "seconds per step"],
             "rows": [[label, measured[label]["model"]["source"], *row(label)[1:],
                       round(measured[label]["seconds_per_step"], 4)] for label in MAIN]},
            {"title": f"β sweep of noise modulation ({config.noise} carrier)", "columns": ["β", "test accuracy", "VII"],
             "rows": [[beta, *row(beta_labels[beta])[1:]] for beta in betas]},
            {"title": f"Carrier noises (β = {config.beta:g})", "columns": ["noise", "test accuracy", "VII"],
             "rows": [row(noise) for noise in noises]},
            {"title": "Training cost per step", "columns": ["mode", "seconds per step", "× standard"],
             "rows": [[label, round(measured[label]["seconds_per_step"], 4),
                       round(measured[label]["seconds_per_step"] / std["seconds_per_step"], 3)] for label in MAIN]},
        ],
        "claims": [claim.to_dict() for claim in claims],
        "analysed_models": [model["analysed"] for model in models.values()],
        "models": measured,
        "betas": betas,
        "noises": noises,
    }
    return write_results(study_dir, results)
