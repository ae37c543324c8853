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
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from freqlens.data import load_dataset, pick_indices
from freqlens.errors import FreqlensError
from freqlens.metrics import vii
from freqlens.report.figures import attribution_grid, grouped_bars, line_plot
from freqlens.studies.base import (
    Claim,
    StudyModel,
    StudyRun,
    StudyTraining,
    seconds_per_step,
    study_runner,
    training_mean_image,
)
from freqlens.training import NOISES, Adversarial, NoiseModulation, Standard, describe_mode
from freqlens.utils.scores import input_gradient
from freqlens.utils.tensors import chunks, eval_mode

STUDY = "noise-modulation"
TITLE = "Noise modulation vs adversarial training: interpretable input-gradients at a lower cost"
MAIN = ("standard", "noise modulation", "adversarial")


@dataclasses.dataclass(frozen=True)
class NoiseModulationConfig(StudyTraining):
    """Every number of the study in one place (defaults = the ``demo`` scale); the images analysed (VII,
    gradient grids) and the models' origin and training as :class:`~freqlens.studies.base.StudyTraining`.

    The standard model uses exactly the shared demo settings (lenet, 10 epochs, seed 0, batch 64,
    lr 1e-3, whole training split); every other model differs only by its training mode.
    """

    model: str = "lenet"
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

    # demo: the zoo's CIFAR-10 lenets on the 1,000 shipped test images, seconds; cpu: the same models on the
    # whole CIFAR-10 test split (--set dataset=ARCHIVE); paper: seed-like, resnet18 trained 50 epochs, PGD-7,
    # a finer β sweep
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "cpu": {"dataset": "cifar10", "n_vii": 0},
        "paper": {"dataset": "cifar10", "zoo": "", "model": "resnet18", "epochs": 50,
                  "betas": "0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,1.0", "n_vii": 0, "n_images": 10},
    }


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
    config.check_fields(counts=("epochs", "batch_size", "at_steps", "n_images", "batch_images", "cost_steps"),
                        sizes=("n_train", "n_vii"), rates=("lr", "at_eps", "at_alpha"))
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


# --------------------------------------------------------------------------------- typed pieces
@dataclasses.dataclass(frozen=True)
class Setup:
    """What the experiments share: the checked config, the training mode of every model label, the images.

    Attributes:
        modes: Label (``standard``, ``noise modulation``, ``adversarial``, ``β=…``, carrier names) -> mode;
            equal modes share one model.
        x_bar: The training mean image of VII.
        vii_images, vii_labels: The ``n_vii`` test images of VII (a seeded random draw), with their labels.
        grid_images, grid_labels: The ``n_images`` test images of the gradient grids.
    """

    config: NoiseModulationConfig
    betas: list[float]
    noises: list[str]
    modes: dict[str, Any]
    classes: list[str]
    n_vii: int
    from_zoo: bool
    x_bar: Tensor
    vii_images: Tensor
    vii_labels: Tensor
    grid_images: Tensor
    grid_labels: Tensor
    study_dir: Path
    cache_dir: Path
    progress: bool

    @property
    def titles(self) -> list[str]:
        """The column titles of the gradient grids: the class names of the grid images."""
        return [self.classes[int(y)][:10] for y in self.grid_labels]

    @property
    def where(self) -> str:
        """``MODEL on DATASET``, for the figure titles."""
        return f"{self.config.model} on {Path(self.config.dataset).name}"


@dataclasses.dataclass(frozen=True)
class MeasuredModel:
    """One model of the study (one distinct training mode) with what the study measures of it.

    Attributes:
        label: The first label that asked for this mode (its role in ``analysed_models``).
        mode: The mode's description (:func:`~freqlens.training.describe_mode`).
        found: The model and where it came from.
        vii: VII on the VII images.
        seconds_per_step: Median wall seconds of one training step of its mode.
        gradients: Channel-summed loss input-gradients of the grid images, each scaled to max |g| = 1.
    """

    label: str
    mode: dict[str, Any]
    found: StudyModel
    vii: float
    seconds_per_step: float
    gradients: Tensor

    @property
    def accuracy(self) -> float:
        """Test accuracy."""
        return self.found.accuracy

    def row(self, label: str) -> list[Any]:
        """``[label, test accuracy, VII]`` rounded, a row of the tables."""
        return [label, round(self.accuracy, 4), round(self.vii, 4)]

    def to_dict(self) -> dict[str, Any]:
        """The ``results.json`` form (``models`` entry)."""
        return {"mode": self.mode, "accuracy": self.accuracy, "vii": self.vii,
                "seconds_per_step": self.seconds_per_step, "model": self.found.describe(),
                "analysed": self.found.analysed(self.label), "reused": self.found.reused}


@dataclasses.dataclass(frozen=True)
class Comparison:
    """Experiment I (seed Fig. 1/3): standard training vs noise modulation vs adversarial training, by
    their loss input-gradients and VII.

    Attributes:
        models: :data:`MAIN` label -> model.
    """

    models: dict[str, MeasuredModel]

    def draw(self, setup: Setup) -> None:
        """``gradients.png``: the grid images' gradients of the three models."""
        attribution_grid(setup.grid_images, [(label, self.models[label].gradients) for label in MAIN],
                         setup.study_dir / "gradients.png", titles=setup.titles,
                         title=f"Loss input-gradients (each map scaled to max |g| = 1), {setup.where}")

    def figures(self) -> list[dict[str, str]]:
        """The figure entries of the experiment (file, caption)."""
        return [{"file": "gradients.png", "caption": "Loss input-gradients of the same test images for the standard, "
                                                     "noise-modulation and adversarially trained models (seed Fig. "
                                                     "1/3); red +, blue −."}]

    def claims(self) -> list[Claim]:
        """The claims of seed 000 the experiment checks."""
        std, nm, at = (self.models[label] for label in MAIN)
        return [
            Claim("Noise modulation makes input-gradients more interpretable (higher VII) than standard training",
                  "000", "gradients.png", "VII noise modulation", nm.vii, ">", "VII standard", std.vii),
            Claim("Adversarial training makes input-gradients more interpretable (higher VII) than standard "
                  "training", "000", "gradients.png", "VII adversarial", at.vii, ">", "VII standard", std.vii),
        ]

    def table(self) -> dict[str, Any]:
        """The experiment's table of the report."""
        return {"title": "Standard vs noise modulation vs adversarial training",
                "columns": ["mode", "model", "test accuracy", "VII", "seconds per step"],
                "rows": [[label, m.found.source, *m.row(label)[1:], round(m.seconds_per_step, 4)]
                         for label, m in self.models.items()]}


@dataclasses.dataclass(frozen=True)
class BetaSweep:
    """Experiment II (seed Fig. 4): interpretability vs accuracy over β of noise modulation.

    Attributes:
        noise: The carrier of the sweep.
        models: β (increasing) -> model; β = 1 is standard training.
    """

    noise: str
    models: dict[float, MeasuredModel]

    def draw(self, setup: Setup) -> None:
        """``beta_gradients.png`` (gradients per β) and ``tradeoff.png`` (accuracy and VII against β)."""
        betas = list(self.models)
        attribution_grid(setup.grid_images, [(_beta_label(b), m.gradients) for b, m in self.models.items()],
                         setup.study_dir / "beta_gradients.png", titles=setup.titles,
                         title=f"Loss input-gradients per β of noise modulation ({self.noise}), {setup.where}")
        line_plot({"test accuracy": (betas, [m.accuracy for m in self.models.values()]),
                   "VII": (betas, [m.vii for m in self.models.values()])},
                  setup.study_dir / "tradeoff.png", xlabel="β (constant share of the carrier; 1 = standard training)",
                  ylabel="accuracy / VII",
                  title=f"Interpretability vs accuracy over β ({self.noise} carrier), {setup.where}")

    def figures(self) -> list[dict[str, str]]:
        """The figure entries of the experiment (file, caption)."""
        return [{"file": "tradeoff.png", "caption": "Test accuracy and VII against β of noise modulation (seed Fig. "
                                                    "4); β = 1 is the standard model."},
                {"file": "beta_gradients.png", "caption": "Loss input-gradients per β of noise modulation."}]

    def claims(self) -> list[Claim]:
        """The claims of seed 000 the experiment checks."""
        betas = list(self.models)  # increasing (parse_betas)
        smallest, largest = self.models[betas[0]], self.models[betas[-1]]
        low_label, high_label = _beta_label(betas[0]), _beta_label(betas[-1])
        return [
            Claim("A smaller β gives a more interpretable input-gradient (higher VII)", "000", "tradeoff.png",
                  f"VII {low_label}", smallest.vii, ">", f"VII {high_label}", largest.vii),
            Claim("A larger β gives a higher accuracy", "000", "tradeoff.png",
                  f"accuracy {high_label}", largest.accuracy, ">", f"accuracy {low_label}", smallest.accuracy),
        ]

    def table(self) -> dict[str, Any]:
        """The experiment's table of the report."""
        return {"title": f"β sweep of noise modulation ({self.noise} carrier)", "columns": ["β", "test accuracy", "VII"],
                "rows": [[beta, *m.row(_beta_label(beta))[1:]] for beta, m in self.models.items()]}


@dataclasses.dataclass(frozen=True)
class Carriers:
    """Experiment III (seed Fig. 5): the carrier noises at the same β, against standard training.

    Attributes:
        beta: The β of every carrier's model.
        models: Carrier -> model.
        standard: The standard model.
    """

    beta: float
    models: dict[str, MeasuredModel]
    standard: MeasuredModel

    def draw(self, setup: Setup) -> None:
        """``carriers.png``: the grid images' gradients per carrier."""
        attribution_grid(setup.grid_images, [(noise, m.gradients) for noise, m in self.models.items()],
                         setup.study_dir / "carriers.png", titles=setup.titles,
                         title=f"Loss input-gradients per carrier noise (β = {self.beta:g}), {setup.where}")

    def figures(self) -> list[dict[str, str]]:
        """The figure entries of the experiment (file, caption)."""
        return [{"file": "carriers.png", "caption": "Loss input-gradients per carrier noise at the same β (seed Fig. 5)."}]

    def claims(self) -> list[Claim]:
        """The claims of seed 000 the experiment checks."""
        worst = min(self.models, key=lambda noise: self.models[noise].vii)
        return [Claim("Every carrier noise gives a more interpretable input-gradient than standard training", "000",
                      "carriers.png", f"min VII over carriers ({worst})", self.models[worst].vii, ">",
                      "VII standard", self.standard.vii)]

    def table(self) -> dict[str, Any]:
        """The experiment's table of the report."""
        return {"title": f"Carrier noises (β = {self.beta:g})", "columns": ["noise", "test accuracy", "VII"],
                "rows": [m.row(noise) for noise, m in self.models.items()]}


@dataclasses.dataclass(frozen=True)
class Cost:
    """Experiment IV: the training cost per step of the three modes of the comparison, timed here one after
    the other.

    Attributes:
        models: :data:`MAIN` label -> model.
        batch_size: The batch of the timed steps.
    """

    models: dict[str, MeasuredModel]
    batch_size: int

    def draw(self, setup: Setup) -> None:
        """``cost.png``: seconds per training step of each mode."""
        grouped_bars(MAIN, {"seconds per training step": [m.seconds_per_step for m in self.models.values()]},
                     setup.study_dir / "cost.png", ylabel=f"seconds per step (batch {self.batch_size})",
                     title=f"Training cost per step, {setup.where}")

    def figures(self) -> list[dict[str, str]]:
        """The figure entries of the experiment (file, caption)."""
        return [{"file": "cost.png", "caption": "Median wall-clock seconds per training step of each mode."}]

    def claims(self) -> list[Claim]:
        """The claims of seed 000 the experiment checks."""
        nm, at = self.models["noise modulation"], self.models["adversarial"]
        return [Claim("Noise modulation costs less per training step (hence per epoch) than PGD adversarial training",
                      "000", "cost.png", "s/step noise modulation", nm.seconds_per_step, "<", "s/step adversarial",
                      at.seconds_per_step)]

    def table(self) -> dict[str, Any]:
        """The experiment's table of the report."""
        standard = self.models["standard"].seconds_per_step
        return {"title": "Training cost per step", "columns": ["mode", "seconds per step", "× standard"],
                "rows": [[label, round(m.seconds_per_step, 4), round(m.seconds_per_step / standard, 3)]
                         for label, m in self.models.items()]}


# --------------------------------------------------------------------------------- the experiments
def _modes(config: NoiseModulationConfig, betas: list[float], noises: list[str]) -> dict[str, Any]:
    """Every model of the study by a readable label: the comparison, the β sweep, the carriers."""
    modes: dict[str, Any] = {
        "standard": Standard(),
        "noise modulation": NoiseModulation(config.beta, config.noise),
        "adversarial": Adversarial.pgd(config.at_eps, config.at_alpha, config.at_steps),
    }
    for beta in betas:
        modes[_beta_label(beta)] = Standard() if beta == 1.0 else NoiseModulation(beta, config.noise)
    for noise in noises:
        modes[noise] = NoiseModulation(config.beta, noise)
    return modes


def _setup(config: NoiseModulationConfig, study_dir: Path, cache_dir: Path, progress: bool) -> Setup:
    """The modes, x̄ and the seeded random draws of test images (image-folder splits are sorted by class)."""
    betas, noises = parse_betas(config.betas), parse_noises(config.noises)
    modes = _modes(config, betas, noises)
    test_set = load_dataset(config.dataset, split="test", progress=progress)
    if config.n_images > len(test_set):
        raise FreqlensError(f"n_images = {config.n_images} but the test split has {len(test_set)} images")
    n_vii = len(test_set) if config.n_vii == 0 else min(config.n_vii, len(test_set))
    from_zoo = bool(config.zoo) and not config.retrain
    x_bar = training_mean_image(config.dataset, 0 if from_zoo else config.n_train, config.seed)
    vii_index = pick_indices(len(test_set), n_vii, config.seed)
    grid_index = pick_indices(len(test_set), config.n_images, config.seed)
    return Setup(config, betas, noises, modes, list(test_set.classes), n_vii, from_zoo, x_bar,
                 test_set.float_images(vii_index), test_set.labels[vii_index], test_set.float_images(grid_index),
                 test_set.labels[grid_index], study_dir, cache_dir, progress)


def _measure(label: str, mode: Any, setup: Setup) -> MeasuredModel:
    """The model of ``mode`` (zoo or cached training) with its VII, cost per step and grid gradients."""
    config = setup.config
    found = config.study_model(config.model, setup.cache_dir, mode=mode, progress=setup.progress)
    model, step_batch = found.model, slice(0, min(config.batch_size, setup.n_vii))
    return MeasuredModel(
        label, describe_mode(mode), found,
        vii(model, setup.vii_images, setup.vii_labels, setup.x_bar, batch_size=config.batch_images),
        seconds_per_step(model, mode, setup.vii_images[step_batch], setup.vii_labels[step_batch], config.cost_steps),
        _display(loss_gradients(model, setup.grid_images, setup.grid_labels, config.batch_images)),
    )


def _measured_models(setup: Setup) -> dict[str, MeasuredModel]:
    """Label -> its measured model; labels of equal modes share one (measured once, in label order)."""
    by_mode: dict[str, MeasuredModel] = {}
    measured = {}
    for label, mode in setup.modes.items():
        key = json.dumps(describe_mode(mode), sort_keys=True)
        if key not in by_mode:
            by_mode[key] = _measure(label, mode, setup)
        measured[label] = by_mode[key]
    return measured


def _description(setup: Setup) -> str:
    """What the study did, for the report."""
    config = setup.config
    return (
        (f"{config.model} models of the zoo (`freqlens zoo list`: trained on {config.zoo}, {config.epochs} "
         f"epochs each, Adam lr {config.lr:g}, batch {config.batch_size}, seed {config.seed}), analysed on "
         f"{config.dataset}" if setup.from_zoo else
         f"{config.model} models trained for {config.epochs} epochs on {config.dataset} "
         f"({'all' if not config.n_train else config.n_train} training images, Adam lr {config.lr:g}, batch "
         f"{config.batch_size}, seed {config.seed})")
        + f": standard training, noise modulation (β = {config.beta:g}, "
        f"{config.noise} carrier) and PGD adversarial training (L∞, ε = {config.at_eps:.4g}, α = "
        f"{config.at_alpha:.4g}, {config.at_steps} steps). VII (seed 000, Def. 3) on {setup.n_vii} test images (a "
        f"random order seeded by {config.seed}) with the true labels, x̄ = the training mean image; "
        "accuracy = the model's accuracy on the whole test split (zoo: of the shipped float16 weights); "
        f"cost = median wall seconds of one training step (the mode's batch transform, forward, backward, "
        f"Adam step; batch {config.batch_size}) over {config.cost_steps} steps, all modes timed here, one "
        "after the other (an epoch is the same number of steps for every mode). "
        "Gradient maps are summed over channels."
    )


def _summary(comparison: Comparison, distinct: list[MeasuredModel], started: float) -> dict[str, Any]:
    """Headline numbers: accuracy and VII of the comparison, models trained / reused, wall time."""
    models = comparison.models
    return {
        **{f"test accuracy {label}": round(m.accuracy, 4) for label, m in models.items()},
        **{f"VII {label}": round(m.vii, 4) for label, m in models.items()},
        "models trained": sum(not m.found.reused for m in distinct),
        "models reused (zoo or cache)": sum(bool(m.found.reused) for m in distinct),
        "total seconds": round(time.perf_counter() - started, 2),
    }


def _run(run: StudyRun) -> tuple[str, dict[str, Any]]:
    """The study's body (see :func:`freqlens.studies.base.study_runner`): description and results."""
    config = run.config
    setup = _setup(config, run.study_dir, run.cache_dir, run.progress)
    measured = _measured_models(setup)
    distinct = list({id(m): m for m in measured.values()}.values())  # one per distinct mode, first-asked order
    comparison = Comparison({label: measured[label] for label in MAIN})
    sweep = BetaSweep(config.noise, {beta: measured[_beta_label(beta)] for beta in setup.betas})
    carriers = Carriers(config.beta, {noise: measured[noise] for noise in setup.noises}, measured["standard"])
    cost = Cost(comparison.models, config.batch_size)
    experiments = (comparison, sweep, carriers, cost)
    for experiment in experiments:
        experiment.draw(setup)
    return _description(setup), {
        "summary": _summary(comparison, distinct, run.started),
        "figures": [figure for experiment in experiments for figure in experiment.figures()],
        "tables": [experiment.table() for experiment in experiments],
        # the claims table's order: the cost claim follows the comparison it qualifies
        "claims": [claim.to_dict() for e in (comparison, cost, sweep, carriers) for claim in e.claims()],
        "analysed_models": [m.found.analysed(m.label) for m in distinct],
        "models": {label: m.to_dict() for label, m in measured.items()},
        "betas": setup.betas,
        "noises": setup.noises,
    }


#: ``run_noise_modulation(out_dir, config=None, scale="demo", *, cache_dir=None, progress=False, command=None)``;
#: raises :class:`FreqlensError` for an invalid config or more images than the test split has. Models shared
#: by the comparison, the β sweep and the carriers (and with other studies) are trained once.
run_noise_modulation = study_runner(STUDY, TITLE, NoiseModulationConfig, _validate, _run)
