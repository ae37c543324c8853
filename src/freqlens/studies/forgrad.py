"""FORGrad study (seed 001, "Gradient strikes back"): Fourier footprints of attribution methods (Figs 2–3),
the linearization residual of low-passed gradients (Fig 4), high-frequency content along depth with a
pooling swap and a randomly initialised twin (Fig 5), the σ sweep of FORGrad (Fig 6) and the
faithfulness table and ranking of methods, original and FORGrad* (Tables 1–2), for a ResNet, a ViT and
a ConvNeXt (``resnet_small``, ``vit_tiny``, ``convnext_tiny`` at our scale).

Writes ``out_dir/forgrad/results.json`` and the PNG figures listed there.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from freqlens.analysis import default_sigmas, method_footprints, rank_methods
from freqlens.attribution import (
    RISE,
    GradCAM,
    GradCAMPlusPlus,
    GradientInput,
    IntegratedGradients,
    Occlusion,
    Saliency,
    SmoothGrad,
    SmoothGradSq,
    VarGrad,
    reduce_channels,
)
from freqlens.attribution.registry import canonical_method
from freqlens.data import load_dataset, pick_indices
from freqlens.errors import FreqlensError
from freqlens.metrics.layers import LAYER_MEASURES, layer_hf_content
from freqlens.metrics.linearization import linearization_residual
from freqlens.models import build, model_spec, swap_pooling
from freqlens.models.registry import MODEL_NAMES
from freqlens.report.figures import attribution_grid, grouped_bars, line_plot
from freqlens.spectral import lowpass, nyquist_sigma
from freqlens.studies.base import Claim, check_scale, study_folders, trained_model, write_results

STUDY = "forgrad"
TITLE = "FORGrad: Fourier footprints, gradient noise and low-passed gradient explanations"

#: gradient-based methods (FORGrad applies to them); the others are prediction-based (CAM, black-box)
GRADIENT_METHODS = ("saliency", "gradient_input", "integrated_gradients", "smoothgrad", "smoothgrad_sq", "vargrad")

Factory = Callable[[torch.nn.Module, "ForgradConfig", torch.Generator], Any]

#: method name -> explainer with the study's budgets (config fields)
FACTORIES: dict[str, Factory] = {
    "saliency": lambda m, c, g: Saliency(m),
    "gradient_input": lambda m, c, g: GradientInput(m),
    "integrated_gradients": lambda m, c, g: IntegratedGradients(m, steps=c.ig_steps),
    "smoothgrad": lambda m, c, g: SmoothGrad(Saliency(m), n=c.n_samples, noise_level=c.noise_level, generator=g),
    "smoothgrad_sq": lambda m, c, g: SmoothGradSq(Saliency(m), n=c.n_samples, noise_level=c.noise_level,
                                                  generator=g),
    "vargrad": lambda m, c, g: VarGrad(Saliency(m), n=c.n_samples, noise_level=c.noise_level, generator=g),
    "gradcam": lambda m, c, g: GradCAM(m),
    "gradcam_pp": lambda m, c, g: GradCAMPlusPlus(m),
    "occlusion": lambda m, c, g: Occlusion(m, patch=c.occlusion_patch, stride=c.occlusion_stride),
    "rise": lambda m, c, g: RISE(m, n_masks=c.rise_masks, generator=g),
}


@dataclasses.dataclass(frozen=True)
class ForgradConfig:
    """Every number of the study in one place (defaults = the ``demo`` scale)."""

    models: str = "resnet_small,vit_tiny,convnext_tiny"  # the first is the reference model of Figs 2, 3, 5
    dataset: str = "demo"
    epochs: int = 4  # demo: resnet_small ~0.93, convnext_tiny ~0.83, vit_tiny ~0.31 test accuracy on the sample
    batch_size: int = 64
    lr: float = 1e-3
    n_train: int = 0  # first n_train training images, 0: all (image folders are sorted by class: prefer 0)
    methods: str = "saliency,gradient_input,smoothgrad,gradcam,occlusion"
    sigma_method: str = "gradient_input"  # the method of the σ sweep (seed 001 Fig 6: Gradient Input)
    n_images: int = 6  # evaluated test images (Table 1, footprints, linearization, layer HF)
    n_calibration: int = 6  # held-out test images (after the evaluated ones) on which σ* is searched
    steps: int = 10  # Deletion / Insertion steps (also in the σ search)
    mufidelity_samples: int = 24
    n_sigmas: int = 5  # size of the σ grid (default_sigmas, box filter; its last value is the identity)
    ig_steps: int = 16
    n_samples: int = 8  # noisy copies of SmoothGrad / SmoothGrad² / VarGrad
    noise_level: float = 0.15
    occlusion_patch: int = 7
    occlusion_stride: int = 7
    rise_masks: int = 200
    n_dirs: int = 16  # random directions of the linearization test
    radii: str = "0.01,0.03,0.1,0.3,1,3"  # L2 radii of the linearization test
    lin_fractions: str = "0.25,0.5"  # filtered σ of the linearization test, as fractions of the Nyquist σ
    claim_fraction: float = 0.5  # the filtered σ the "closely align" claim looks at (one of lin_fractions)
    align_ratio: float = 1.25  # "closely align": geometric-mean residual ratio filtered / unfiltered at most this
    random_gap: float = 0.1  # "no discrepancy trained vs random": relative gap of the mean layer HF at most this
    layer_measure: str = "hf_power"  # compression | hf_power | laplacian
    example_sigmas: str = "2,4,8"  # σ of the example FORGrad maps (Fig 6), with σ* and the unfiltered map
    seed: int = 0

    @classmethod
    def for_scale(cls, scale: str) -> ForgradConfig:
        """Preset of a scale: ``demo`` (seconds), ``cpu`` (minutes, CIFAR-10), ``paper`` (seed-like numbers)."""
        check_scale(scale)
        if scale == "demo":
            return cls()
        if scale == "cpu":
            return cls(dataset="cifar10", epochs=2, n_train=0, n_images=48, n_calibration=32, steps=16,
                       mufidelity_samples=48, n_sigmas=8, ig_steps=32, n_samples=16, rise_masks=300,
                       occlusion_patch=8, occlusion_stride=4,
                       methods="saliency,gradient_input,integrated_gradients,smoothgrad,gradcam,occlusion,rise",
                       n_dirs=32)
        return cls(dataset="cifar10", epochs=30, n_train=0, n_images=1000, n_calibration=1000, steps=20,
                   mufidelity_samples=128, n_sigmas=16, ig_steps=50, n_samples=50, rise_masks=8000, n_dirs=100,
                   occlusion_patch=4, occlusion_stride=2,
                   methods="saliency,gradient_input,integrated_gradients,smoothgrad,vargrad,gradcam,gradcam_pp,"
                           "occlusion,rise")


def _names(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _numbers(text: str, key: str) -> list[float]:
    try:
        values = [float(part) for part in _names(text)]
    except ValueError:
        raise FreqlensError(f"{key} must be a comma-separated list of numbers, got {text!r}") from None
    if not values or not all(math.isfinite(v) and v > 0 for v in values):
        raise FreqlensError(f"{key} must hold positive finite numbers, got {text!r}")
    return values


def _methods(config: ForgradConfig) -> list[str]:
    try:
        names = [canonical_method(name) for name in _names(config.methods)]
    except ValueError as error:
        raise FreqlensError(f"methods: {error}") from None
    unknown = [name for name in names if name not in FACTORIES]
    if unknown:
        raise FreqlensError(f"methods: {', '.join(unknown)} not supported by this study; choose from "
                            f"{', '.join(FACTORIES)}")
    if len(set(names)) != len(names):
        raise FreqlensError(f"methods names a method twice: {config.methods}")
    if not any(n in GRADIENT_METHODS for n in names) or all(n in GRADIENT_METHODS for n in names):
        raise FreqlensError("methods must hold at least one gradient-based and one prediction-based method")
    return names


def _validate(config: ForgradConfig) -> tuple[list[str], list[str]]:
    """Check every field; returns the model and method names."""
    for name in ("epochs", "batch_size", "n_images", "n_calibration", "steps", "mufidelity_samples", "ig_steps",
                 "n_samples", "occlusion_patch", "occlusion_stride", "rise_masks", "n_dirs"):
        if getattr(config, name) < 1:
            raise FreqlensError(f"{name} must be >= 1, got {getattr(config, name)}")
    if config.n_sigmas < 2:
        raise FreqlensError(f"n_sigmas must be >= 2, got {config.n_sigmas}")
    if config.n_train < 0:
        raise FreqlensError(f"n_train must be >= 0 (0 = all), got {config.n_train}")
    if config.occlusion_stride > config.occlusion_patch:
        raise FreqlensError("occlusion_stride must be <= occlusion_patch")
    for name in ("lr", "noise_level", "align_ratio", "random_gap"):
        if not getattr(config, name) > 0:
            raise FreqlensError(f"{name} must be > 0, got {getattr(config, name)}")
    models = _names(config.models)
    unknown = [name for name in models if name not in MODEL_NAMES]
    if not models or unknown:
        raise FreqlensError(f"models: unknown {', '.join(unknown) or '(empty)'}; choose from {', '.join(MODEL_NAMES)}")
    if len(set(models)) != len(models):
        raise FreqlensError(f"models names a model twice: {config.models}")
    methods = _methods(config)
    try:
        sigma_method = canonical_method(config.sigma_method)
    except ValueError as error:
        raise FreqlensError(f"sigma_method: {error}") from None
    if sigma_method not in methods or sigma_method not in GRADIENT_METHODS:
        raise FreqlensError(f"sigma_method {config.sigma_method!r} must be one of the gradient-based methods "
                            f"in methods ({config.methods})")
    _numbers(config.radii, "radii")
    _numbers(config.example_sigmas, "example_sigmas")
    fractions = _numbers(config.lin_fractions, "lin_fractions")
    if any(f >= 1 for f in fractions) or config.claim_fraction not in fractions:
        raise FreqlensError(f"lin_fractions must lie in (0, 1) and contain claim_fraction = {config.claim_fraction}")
    if config.layer_measure not in LAYER_MEASURES:
        raise FreqlensError(f"layer_measure must be one of {', '.join(LAYER_MEASURES)}, got {config.layer_measure!r}")
    return models, methods


class _Named:
    """An explainer under the study's method name (for :func:`method_footprints`)."""

    def __init__(self, name: str, explainer: Any) -> None:
        self.name, self.explainer = name, explainer
        self.family = str(getattr(explainer, "family", "gradient"))

    def attribute(self, inputs: torch.Tensor, target: Any = None) -> torch.Tensor:
        return self.explainer.attribute(inputs, target)


def _explainers(model: torch.nn.Module, methods: list[str], config: ForgradConfig) -> tuple[list, list[str]]:
    """``(name, explainer)`` pairs of the methods that apply to ``model`` and the names of those that do not
    (e.g. Grad-CAM on a ViT: "n.a." as in seed 001 Table 1). Fresh generators seeded from ``config.seed``."""
    built, skipped = [], []
    for name in methods:
        generator = torch.Generator().manual_seed(config.seed)
        try:
            built.append((name, FACTORIES[name](model, config, generator)))
        except (FreqlensError, ValueError):
            skipped.append(name)
    return built, skipped


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else math.nan


def _history(checkpoint: Path) -> dict[str, float]:
    history = json.loads((checkpoint.parent / "history.json").read_text())
    accuracies = [e["val_accuracy"] for e in history if e.get("val_accuracy") is not None]
    return {"test accuracy": round(max(accuracies), 4) if accuracies else math.nan,
            "train seconds": round(sum(e["seconds"] for e in history), 2)}


def _method_scores(ranking: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per method of a ``Ranking.to_dict()``: family, σ*, and the means of the metrics, original and *."""
    starred = {row["method"]: row for row in ranking["forgrad"]}
    out = {}
    for row in ranking["methods"]:
        star = starred[row["method"]]
        out[row["method"]] = {
            "family": row["family"],
            "sigma_star": star["sigma"],
            **{name: row["metrics"][name]["mean"] for name in row["metrics"]},
            **{f"{name}*": star["metrics"][name]["mean"] for name in star["metrics"]},
            "passes_per_image": row["cost"]["passes_per_image"],
        }
    return out


def compute_claim_numbers(results: dict[str, Any], config: ForgradConfig) -> dict[str, tuple[float, float]]:
    """The ``(left, right)`` numbers of each claim, from the raw measures of ``results`` (also used by tests)."""
    models = _names(config.models)
    reference = models[0]
    numbers: dict[str, tuple[float, float]] = {}

    footprints = results["footprints"]["methods"]
    grad_hf = [m["hf_power_ratio"]["mean"] for m in footprints.values() if m["gradient_based"]]
    pred_hf = [m["hf_power_ratio"]["mean"] for m in footprints.values() if not m["gradient_based"]]
    numbers["footprints"] = (_mean(grad_hf), _mean(pred_hf))

    scores = {name: _method_scores(results["models"][name]["ranking"]) for name in models}
    gradient = [s for per_model in scores.values() for s in per_model.values() if s["family"] == "gradient"]
    numbers["score"] = (_mean([s["score*"] for s in gradient]), _mean([s["score"] for s in gradient]))
    numbers["fidelity"] = (_mean([s["mufidelity*"] for s in gradient]), _mean([s["mufidelity"] for s in gradient]))
    best_gradient, best_prediction = [], []
    for per_model in scores.values():
        starred = [s["score*"] for s in per_model.values() if s["family"] == "gradient"]
        others = [s["score"] for s in per_model.values() if s["family"] != "gradient"]
        if starred and others:
            best_gradient.append(max(starred))
            best_prediction.append(max(others))
    if best_gradient:
        numbers["ranking"] = (_mean(best_gradient), _mean(best_prediction))

    ratios = []
    for name in models:
        lin = results["models"][name]["linearization"]
        row = lin["fractions"].index(config.claim_fraction)
        filtered, unfiltered = lin["residual"][row], lin["residual"][-1]
        ratios += [math.log(f / u) for f, u in zip(filtered, unfiltered) if f > 0 and u > 0]
    numbers["linearization"] = (math.exp(_mean(ratios)), config.align_ratio)

    layers = results["models"][reference]["layer_hf"]
    mean_hf = {variant: _mean([entry["value"] for entry in values]) for variant, values in layers.items()}
    numbers["pooling"] = (mean_hf["avg-pool swap"], mean_hf["trained"])
    numbers["random"] = (abs(mean_hf["trained"] - mean_hf["random init"]) / mean_hf["random init"], config.random_gap)

    fractions = [results["models"][name]["sigma_search"]["sigma_star"] / results["models"][name]["sigma_search"]["nyquist"]
                 for name in models]
    numbers["sigma"] = (max(fractions), 1.0)  # σ* < Nyquist for every model
    return numbers


def _claims(numbers: dict[str, tuple[float, float]], config: ForgradConfig) -> list[Claim]:
    reference = _names(config.models)[0]
    method = canonical_method(config.sigma_method)
    specs = [
        ("footprints", "Gradient-based methods put more power in high frequencies than prediction-based ones",
         "footprints_hf.png", f"mean HF power ratio, gradient methods ({reference})", ">",
         f"mean HF power ratio, prediction-based methods ({reference})"),
        ("score", "FORGrad improves the global faithfulness I+F−D of gradient methods (σ* from held-out images)",
         "faithfulness.png", "mean I+F−D of gradient methods*", ">", "mean I+F−D of gradient methods"),
        ("fidelity", "FORGrad improves MuFidelity of gradient methods although σ* only optimises I−D",
         "faithfulness.png", "mean MuFidelity of gradient methods*", ">", "mean MuFidelity of gradient methods"),
        ("ranking", "With FORGrad the best gradient method matches or beats the best prediction-based method",
         "faithfulness.png", "mean over models of the best gradient* I+F−D", ">=",
         "mean over models of the best prediction-based I+F−D"),
        ("linearization", (f"Low-passed gradients (σ = {config.claim_fraction:g} × Nyquist) linearize the model "
                          "about as well as the full gradient: high frequencies are noise"),
         f"linearization_{reference}.png", "geometric-mean residual ratio filtered / unfiltered", "<=",
         "tolerance"),
        ("pooling", "Average pooling instead of max pooling / strides lowers the gradients' HF content along depth",
         f"layer_hf_{reference}.png", f"mean layer HF, avg-pool swap ({reference})", "<",
         f"mean layer HF, trained ({reference})"),
        ("random", "Trained and randomly initialised CNNs have about the same HF content in their gradients",
         f"layer_hf_{reference}.png", f"relative gap of the mean layer HF, trained vs random ({reference})", "<=",
         "tolerance"),
        ("sigma", f"The optimal cutoff σ* of {method} removes high frequencies for every model (σ* < Nyquist)",
         "sigma_search.png", "largest σ* / Nyquist σ over models", "<", "1 (no filtering)"),
    ]
    return [Claim(text, "001", figure, left_label, numbers[key][0], relation, right_label, numbers[key][1])
            for key, text, figure, left_label, relation, right_label in specs if key in numbers]


def _layer_variants(model: torch.nn.Module, config: ForgradConfig) -> dict[str, torch.nn.Module]:
    """The trained model, its pooling-swapped copy and a randomly initialised twin (seed ``config.seed + 1``)."""
    spec = model_spec(model)
    torch.manual_seed(config.seed + 1)
    untrained = build(spec["name"], **spec["kwargs"]).eval()
    return {"trained": model, "avg-pool swap": swap_pooling(model, "avg"), "random init": untrained}


def run_forgrad(
    out_dir: str | Path,
    config: ForgradConfig | None = None,
    scale: str = "demo",
    *,
    cache_dir: str | Path | None = None,
    progress: bool = True,
    command: str | None = None,
) -> Path:
    """Run the study into ``out_dir/forgrad`` and return the path of its ``results.json``.

    ``config`` defaults to ``ForgradConfig.for_scale(scale)``; trained models are cached under
    ``cache_dir`` (default ``out_dir/cache``).
    """
    config = config or ForgradConfig.for_scale(scale)
    models, methods = _validate(config)
    out_dir, study_dir, cache_dir = study_folders(out_dir, STUDY, cache_dir)
    started = time.perf_counter()

    test_set = load_dataset(config.dataset, split="test")
    needed = config.n_images + config.n_calibration
    if needed > len(test_set):
        raise FreqlensError(f"n_images + n_calibration = {needed} but the test split has {len(test_set)} images")
    # a seeded random draw: image folders (e.g. the CIFAR-10 archive) list the test split class by class
    evaluated = pick_indices(len(test_set), config.n_images, config.seed)
    held_out = pick_indices(len(test_set), config.n_calibration, config.seed, skip=config.n_images)
    images, calibration = test_set.float_images(evaluated), test_set.float_images(held_out)
    height, width = images.shape[-2:]
    nyquist = nyquist_sigma(height, width, "box")
    sigma_grid = default_sigmas(height, width, "box", n=config.n_sigmas)
    fractions = _numbers(config.lin_fractions, "lin_fractions")
    radii = _numbers(config.radii, "radii")
    sigma_method = canonical_method(config.sigma_method)

    per_model: dict[str, dict[str, Any]] = {}
    markdown: dict[str, str] = {}
    seconds: dict[str, float] = {}
    footprints = None
    example_maps: dict[str, torch.Tensor] = {}
    reused_all = True
    bar = tqdm(models, desc="forgrad models", unit="model", disable=not progress)
    for name in bar:
        bar.set_postfix_str(name)
        tick = time.perf_counter()
        model, checkpoint, reused = trained_model(
            name, config.dataset, config.epochs, config.seed, cache_dir, batch_size=config.batch_size, lr=config.lr,
            n_train=config.n_train or None, progress=progress,
        )
        model.eval()
        reused_all = reused_all and reused
        entry: dict[str, Any] = {"checkpoint": str(checkpoint), "reused from cache": reused, **_history(checkpoint)}
        seconds[f"{name}: training / loading"] = time.perf_counter() - tick

        tick = time.perf_counter()
        explainers, skipped = _explainers(model, methods, config)
        ranking = rank_methods(
            model, images, None, methods=explainers, forgrad="auto", sigmas=sigma_grid, calibration=(calibration, None),
            steps=config.steps, mufidelity_samples=config.mufidelity_samples,
            generator=torch.Generator().manual_seed(config.seed), progress=progress,
        )
        entry["not applicable"] = skipped
        entry["ranking"] = ranking.to_dict()
        markdown[name] = ranking.to_markdown()
        search_row = next(row for row in ranking.forgrad_rows if row.method == sigma_method)
        search = search_row.search
        entry["sigma_search"] = {"method": sigma_method, "sigmas": search.sigmas, "sigma_star": search.sigma_star,
                                 "nyquist": nyquist, "insertion_minus_deletion": search.scores.tolist(),
                                 "insertion": search.insertion.tolist(), "deletion": search.deletion.tolist()}
        seconds[f"{name}: Table 1"] = time.perf_counter() - tick

        tick = time.perf_counter()
        lin_sigmas = [f * nyquist for f in fractions] + [math.inf]
        residual = linearization_residual(model, images, None, lin_sigmas, radii, n_dirs=config.n_dirs,
                                          generator=torch.Generator().manual_seed(config.seed))
        entry["linearization"] = {"fractions": fractions + [1.0], "sigmas": [f * nyquist for f in fractions] + [None],
                                  "radii": radii, "residual": residual.double().tolist()}
        line_plot({(f"σ={s:g}" if math.isfinite(s) else "unfiltered"): (radii, residual[i].tolist())
                   for i, s in enumerate(lin_sigmas)},
                  study_dir / f"linearization_{name}.png", xlabel="radius r of ε (L2)", logx=True, logy=True,
                  ylabel="|f(x+ε) − f(x) − ⟨ε, ∇^σ f(x)⟩|",
                  title=f"Linearization residual of low-passed gradients, {name} (seed 001, Fig 4)")
        seconds[f"{name}: linearization"] = time.perf_counter() - tick

        tick = time.perf_counter()
        layer_hf, series = {}, {}
        for label, variant in _layer_variants(model, config).items():
            values = layer_hf_content(variant, images, None, measure=config.layer_measure)
            layer_hf[label] = [{"layer": layer, "value": value} for layer, value in values]
            series[label] = (list(range(1, len(values) + 1)), [value for _, value in values])
        entry["layer_hf"] = layer_hf
        line_plot(series, study_dir / f"layer_hf_{name}.png", xlabel="layer (forward order)",
                  ylabel=f"{config.layer_measure} of ∂f/∂layer",
                  title=f"High-frequency content along depth, {name} (seed 001, Fig 5)")
        seconds[f"{name}: layer HF"] = time.perf_counter() - tick

        if name == models[0]:
            tick = time.perf_counter()
            named = [_Named(label, explainer) for label, explainer in _explainers(model, methods, config)[0]]
            footprints = method_footprints(model, images, None, methods=named, progress=progress)
            footprints.save_figures(study_dir)
            base = reduce_channels(search.base_maps, "sum")
            for sigma in _numbers(config.example_sigmas, "example_sigmas"):
                if sigma < nyquist:
                    example_maps[f"σ={sigma:g}"] = lowpass(base, sigma, "box")
            example_maps[f"σ*={search.sigma_star:g}"] = lowpass(base, search.sigma_star, "box")
            example_maps["unfiltered"] = base
            seconds[f"{name}: footprints"] = time.perf_counter() - tick
        per_model[name] = entry
    bar.close()

    line_plot({name: (per_model[name]["sigma_search"]["sigmas"], per_model[name]["sigma_search"]["insertion_minus_deletion"])
               for name in models}, study_dir / "sigma_search.png", xlabel="FORGrad cutoff σ (cycles per image)",
              ylabel="mean Insertion − Deletion", title=f"σ sweep of FORGrad on {sigma_method} (seed 001, Fig 6)")
    count = min(config.n_calibration, 8)
    attribution_grid(calibration[:count], [(label, maps[:count]) for label, maps in example_maps.items()],
                     study_dir / "forgrad_maps.png",
                     title=f"FORGrad {sigma_method} maps at a few σ, {models[0]} (seed 001, Fig 6)")

    categories, original, starred = [], [], []
    table1, table2_columns = [], ["rank"]
    columns = ["model", "method", "family", "σ*", "Del ↓", "Ins ↑", "Fid ↑", "I+F−D ↑", "HF power ↓", "passes/img"]
    for name in models:
        scores = _method_scores(per_model[name]["ranking"])
        for method in methods:
            if method not in scores:
                table1.append([name, method, "n.a.", "", "n.a.", "n.a.", "n.a.", "n.a.", "n.a.", "n.a."])
                continue
            s = scores[method]
            table1.append([name, method, s["family"], "", round(s["deletion"], 4), round(s["insertion"], 4),
                           round(s["mufidelity"], 4), round(s["score"], 4), round(s["hf_power_ratio"], 4),
                           round(s["passes_per_image"], 1)])
            table1.append([name, f"{method}*", s["family"], s["sigma_star"], round(s["deletion*"], 4),
                           round(s["insertion*"], 4), round(s["mufidelity*"], 4), round(s["score*"], 4),
                           round(s["hf_power_ratio*"], 4), round(s["passes_per_image"], 1)])
            categories.append(f"{name}: {method}")
            original.append(s["score"])
            starred.append(s["score*"])
        table2_columns += [f"{name} original", f"{name} FORGrad"]
    grouped_bars(categories, {"original": original, "FORGrad*": starred}, study_dir / "faithfulness.png",
                 ylabel="mean I + F − D (higher = more faithful)",
                 title="Global faithfulness score per method, original vs FORGrad* (seed 001, Table 1)")
    depth = max(len(per_model[name]["ranking"]["ranking"]["original"]) for name in models)
    table2 = []
    for rank in range(depth):
        row: list[Any] = [rank + 1]
        for name in models:
            order = per_model[name]["ranking"]["ranking"]
            row += [order["original"][rank] if rank < len(order["original"]) else "",
                    order["forgrad"][rank] if rank < len(order["forgrad"]) else ""]
        table2.append(row)

    results: dict[str, Any] = {
        "study": STUDY,
        "title": TITLE,
        "description": (
            f"Models {', '.join(models)} trained for {config.epochs} epoch(s) on {config.dataset}"
            f"{f' (first {config.n_train} training images)' if config.n_train else ''}"
            f"{' (barely trained, low accuracy: the numbers only show that the pipeline works)' if config.epochs < 3 else ''}"
            f". {config.n_images} test images (a seeded random draw) "
            f"are explained with {', '.join(methods)}; FORGrad σ* (box low-pass, grid {sigma_grid}) maximises "
            f"Insertion − Deletion ({config.steps} steps) on {config.n_calibration} other held-out test images. MuFidelity "
            f"uses {config.mufidelity_samples} masks. Figs 2–3 (footprints), 5 (layer HF: trained model, its "
            f"avg-pool swap and a random twin, measure {config.layer_measure}) and the example maps use "
            f"{models[0]}; the linearization test uses {config.n_dirs} random directions per image. Claims with "
            "a tolerance use thresholds fixed in the config before running (align_ratio, random_gap)."
        ),
        "command": command or f"freqlens study {STUDY} --out {out_dir}",
        "config": dataclasses.asdict(config),
        "summary": {
            **{f"{name} test accuracy": per_model[name]["test accuracy"] for name in models},
            **{f"{name} σ* ({sigma_method})": per_model[name]["sigma_search"]["sigma_star"] for name in models},
            "models reused from cache": reused_all,
            **{f"seconds, {key}": round(value, 2) for key, value in seconds.items()},
            "total seconds": round(time.perf_counter() - started, 2),
        },
        "figures": [
            {"file": "footprints_spectra.png", "caption": f"Fourier footprint (mean log power spectrum) of each "
                                                          f"method's maps, {models[0]} (seed 001, Fig 2)."},
            {"file": "footprints_radial.png", "caption": "Radial power profile: gradient methods solid, "
                                                         "prediction-based dashed."},
            {"file": "footprints_hf.png", "caption": "High-frequency measures per method, gradient (blue) vs "
                                                     "prediction-based (orange) (seed 001, Fig 3)."},
            *[{"file": f"linearization_{name}.png",
               "caption": f"Linearization residual of the σ-low-passed gradient vs the radius of ε, {name} "
                          "(seed 001, Fig 4): curves close to the unfiltered one = HF of the gradient is noise."}
              for name in models],
            *[{"file": f"layer_hf_{name}.png",
               "caption": f"{config.layer_measure} of ∂f/∂layer along depth, {name}: trained, avg-pool swap, "
                          "random init (seed 001, Fig 5)."} for name in models],
            {"file": "sigma_search.png", "caption": f"Mean Insertion − Deletion of FORGrad({sigma_method}) vs σ on "
                                                    "the held-out images; σ* is its argmax (seed 001, Fig 6)."},
            {"file": "forgrad_maps.png", "caption": f"{sigma_method} maps of held-out images low-passed at a few σ, "
                                                    f"at σ* and unfiltered, {models[0]} (seed 001, Fig 6)."},
            {"file": "faithfulness.png", "caption": "I + F − D per model and method, original vs FORGrad* "
                                                    "(seed 001, Table 1)."},
        ],
        "tables": [
            {"title": "Table 1: faithfulness per method (mean over images), original and FORGrad* (σ* from "
                      "held-out images)", "columns": columns, "rows": table1},
            {"title": "Table 2: ranking by I+F−D, original and with FORGrad* on the gradient methods",
             "columns": table2_columns, "rows": table2},
        ],
        "models": per_model,
        "test indices": {"evaluated": evaluated, "calibration": held_out},
        "footprints": footprints.to_dict(),
        "markdown": markdown,
    }
    numbers = compute_claim_numbers(results, config)
    results["claims"] = [claim.to_dict() for claim in _claims(numbers, config)]
    return write_results(study_dir, results)
