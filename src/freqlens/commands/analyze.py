"""``freqlens analyze NAME``: the frequency analyses of seed 001 §3 and seed 003, each writing JSON + PNG.

Names: ``footprints`` (Fourier footprint of attribution methods), ``linearization`` (residual of the
first-order model with FORGrad-filtered gradients), ``layer-hf`` (HF content of the gradient along
depth for the model, its pooling-swapped twin and an untrained copy), ``occluded-frequency``
(per-DCT-band logit drop, per class), ``attack-spectra`` (RCT maps of FGSM, PGD, CW, SimBA),
``robust-dataset`` (representation inversion, DCT difference of robust and non-robust counterparts),
``attribution-shift`` (Occluded-Frequency profiles per class of the model and of ``--compare``, e.g. an
adversarially trained twin, and their low-band shares).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

import torch

from freqlens.commands._common import (
    add_image_run_flags,
    dataset_from_args,
    number,
    positive_int,
    progress_enabled,
    resolve_device,
)
from freqlens.commands._model import add_model_flags, model_from_args
from freqlens.data.sampling import pick_images
from freqlens.errors import FreqlensError

ANALYSES = ("footprints", "linearization", "layer-hf", "occluded-frequency", "attack-spectra", "robust-dataset",
            "attribution-shift")


def add_parser(commands: Any) -> None:
    parser = commands.add_parser("analyze", help="frequency analyses (JSON + PNG): " + ", ".join(ANALYSES))
    parser.add_argument("analysis", choices=ANALYSES)
    add_image_run_flags(parser, n_images=32)
    parser.add_argument("--methods", default="saliency,gradient_input,integrated_gradients,smoothgrad,occlusion,rise",
                        help="attribution methods for footprints (comma-separated)")
    parser.add_argument("--eps", type=number, default=None, help="attack budget for attack-spectra (L∞; default 8/255)")
    parser.add_argument("--steps", type=positive_int, default=None, help="steps of robust-dataset (default 200)")
    add_model_flags(parser, prefix="compare-", checkpoint_flag="--compare",
                    what="attribution-shift: the robust (e.g. adversarially trained) model to compare with")
    parser.set_defaults(run=_cmd_analyze)


def _cmd_analyze(args: argparse.Namespace) -> int:
    from freqlens.utils import atomic_write_json

    device = resolve_device(args.device)
    model, record = model_from_args(args, device)
    compare = model_from_args(args, device, prefix="compare_", checkpoint_attr="compare", checkpoint_flag="--compare",
                              required=False)
    if compare is not None and args.analysis != "attribution-shift":
        raise FreqlensError(f"--compare and --compare-model are for attribution-shift, not {args.analysis}")
    args.compare_loaded = compare
    dataset = dataset_from_args(args)
    if len(dataset) < args.n_images:
        raise FreqlensError(f"{args.dataset} ({args.split}) has {len(dataset)} images; --n-images is {args.n_images}")
    images, labels = pick_images(dataset, args.n_images, args.seed, device)
    generator = torch.Generator(device=device).manual_seed(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    runner = {
        "footprints": _footprints,
        "linearization": _linearization,
        "layer-hf": _layer_hf,
        "occluded-frequency": _occluded_frequency,
        "attack-spectra": _attack_spectra,
        "robust-dataset": _robust_dataset,
        "attribution-shift": _attribution_shift,
    }[args.analysis]
    try:
        summary = runner(model, images, labels, generator, args, dataset)
    except ValueError as error:  # e.g. a method that does not apply to this model
        raise FreqlensError(f"{args.analysis}: {error}") from None
    summary = {"analysis": args.analysis, "checkpoint": None if args.checkpoint is None else str(args.checkpoint),
               "model": record, "dataset": args.dataset,
               "split": args.split, "n_images": args.n_images, "seed": args.seed, **summary}
    name = args.analysis.replace("-", "_")
    atomic_write_json(args.out / f"{name}.json", summary)
    print(f"{args.analysis}: results in {args.out / (name + '.json')} ({', '.join(summary.get('figures', []))})")
    return 0


def _footprints(model, images, labels, generator, args, dataset) -> dict:
    from freqlens.analysis.footprints import method_footprints
    from freqlens.report.figures import save_footprint_figures

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    result = method_footprints(model, images, labels, methods=methods, batch_size=args.batch_size,
                               generator=generator, progress=progress_enabled(args))
    figures = [Path(p).name for p in save_footprint_figures(result, args.out)]
    return {**result.to_dict(), "figures": figures}


def _linearization(model, images, labels, generator, args, dataset) -> dict:
    from freqlens.analysis import default_sigmas
    from freqlens.metrics.linearization import linearization_residual
    from freqlens.report.figures import line_plot

    height, width = images.shape[-2:]
    sigmas = default_sigmas(height, width, "box", n=6)
    radii = [0.01, 0.03, 0.1, 0.3, 1.0, 3.0]
    residual = linearization_residual(model, images, labels, sigmas, radii, n_dirs=32, generator=generator,
                                      batch_size=args.batch_size, progress=progress_enabled(args))
    series = {f"σ={s:g}": (radii, residual[i].tolist()) for i, s in enumerate(sigmas)}
    line_plot(series, args.out / "linearization.png", xlabel="radius r of ε", logx=True, logy=True,
              ylabel="|f(x+ε) − f(x) − ⟨ε, ∇^σ f(x)⟩|", title="Linearization residual (seed 001, Fig 4)")
    return {"sigmas": sigmas, "radii": radii, "residual": residual.tolist(), "figures": ["linearization.png"]}


def _layer_hf(model, images, labels, generator, args, dataset) -> dict:
    from freqlens.metrics.layers import layer_hf_content
    from freqlens.models import build, model_spec, swap_pooling
    from freqlens.report.figures import line_plot

    spec = model_spec(model)
    torch.manual_seed(args.seed + 1)
    untrained = build(spec["name"], **spec["kwargs"]).to(images.device).eval()
    variants = {"trained": model, "trained, avg-pool swap": swap_pooling(model, "avg"), "untrained": untrained}
    results, series = {}, {}
    for label, variant in variants.items():
        values = layer_hf_content(variant, images, labels, measure="hf_power", batch_size=args.batch_size,
                                  progress=progress_enabled(args))
        results[label] = [{"layer": name, "hf_power": value} for name, value in values]
        series[label] = (list(range(1, len(values) + 1)), [value for _, value in values])
    line_plot(series, args.out / "layer_hf.png", xlabel="layer (forward order)", ylabel="HF power ratio of ∂f/∂layer",
              title="High-frequency content along depth (seed 001, Fig 5)")
    return {"measure": "hf_power", "layers": results, "figures": ["layer_hf.png"]}


def _occluded_frequency(model, images, labels, generator, args, dataset) -> dict:
    from freqlens.analysis.occluded_frequency import occluded_frequency
    from freqlens.report.figures import line_plot

    scores = occluded_frequency(model, images, labels, baseline="zero", batch_size=args.batch_size,
                                progress=progress_enabled(args))
    by_class = {}
    for c in labels.unique().tolist():
        by_class[dataset.classes[c]] = scores[labels == c].mean(dim=0).tolist()
    bands = list(range(scores.shape[1]))
    line_plot({name: (bands, profile) for name, profile in by_class.items()}, args.out / "occluded_frequency.png",
              xlabel="DCT band i + j", ylabel="logit drop when the band is removed",
              title="Occluded Frequency per class (seed 003)")
    return {"bands": len(bands), "mean_profile": scores.mean(dim=0).tolist(), "by_class": by_class,
            "per_image": scores.tolist(), "figures": ["occluded_frequency.png"]}


def _attack_spectra(model, images, labels, generator, args, dataset) -> dict:
    from freqlens.analysis.attack_spectra import attack_spectra
    from freqlens.attacks import CW, FGSM, PGD, SimBA
    from freqlens.report.figures import save_rct_figure

    eps = args.eps if args.eps is not None else 8 / 255
    attacks = {
        "FGSM": FGSM(model, eps=eps),
        "PGD": PGD(model, eps=eps, alpha=eps / 4, steps=10, generator=generator),
        "CW": CW(model, steps=50),
        "SimBA": SimBA(model, eps=0.2, max_queries=200, generator=generator),
    }
    result = attack_spectra(model, images, labels, attacks, batch_size=args.batch_size,
                            progress=progress_enabled(args))
    save_rct_figure(result, args.out / "attack_spectra.png")
    payload = result.to_dict() if hasattr(result, "to_dict") else result
    return {**_jsonable(payload), "eps": eps, "figures": ["attack_spectra.png"]}


def _robust_dataset(model, images, labels, generator, args, dataset) -> dict:
    from freqlens.analysis.robust_dataset import other_image_indices, robust_dataset
    from freqlens.report.figures import attribution_grid, heatmaps
    from freqlens.spectral import dct2

    partner = other_image_indices(images.shape[0], torch.Generator().manual_seed(args.seed)).to(images.device)
    init = images[partner]  # a random *other* image of the batch
    steps = args.steps or 200
    robust, distances = robust_dataset(model, images, init, steps=steps, step_size=0.1, batch_size=args.batch_size,
                                       return_history=True, progress=progress_enabled(args))
    # non-robust counterpart (Ilyas et al. 2019): a small targeted L2 step toward a random other class
    from freqlens.attacks import PGD

    offsets = torch.randint(1, len(dataset.classes), labels.shape, generator=torch.Generator().manual_seed(args.seed))
    targets = (labels + offsets.to(labels.device)) % len(dataset.classes)
    non_robust = PGD(model, eps=3.0, alpha=0.3, steps=20, norm="2", targeted=True, generator=generator)(images, targets)
    difference = (dct2(robust) - dct2(images)).abs().mean(dim=(0, 1))
    non_robust_difference = (dct2(non_robust) - dct2(images)).abs().mean(dim=(0, 1))
    heatmaps({"robust: |dct2(x_r) − dct2(x)|": torch.log1p(difference),
              "non-robust: |dct2(x_nr) − dct2(x)|": torch.log1p(non_robust_difference)},
             args.out / "robust_dct_difference.png",
             title="DCT difference of robust / non-robust counterparts (seed 003, Fig 3)", colorbar_label="log(1 + |Δ|)")
    attribution_grid(images, [("x_r − x", (robust - images).sum(dim=1))], args.out / "robust_images.png",
                     title="sources (top) and the change to their robust counterparts")
    return {"steps": steps, "feature_distance_first": distances[0].tolist(), "feature_distance_last": distances[-1].tolist(),
            "dct_difference": difference.tolist(), "non_robust_dct_difference": non_robust_difference.tolist(),
            "non_robust_target_reached": float((model(non_robust).argmax(dim=1) == targets).float().mean()),
            "figures": ["robust_dct_difference.png", "robust_images.png"]}


def _attribution_shift(model, images, labels, generator, args, dataset) -> dict:
    from freqlens.analysis.attribution_shift import attribution_shift
    from freqlens.report.figures import line_plot

    if args.compare_loaded is None:
        raise FreqlensError("attribution-shift needs --compare CKPT or --compare-model PKG.MODULE:FACTORY (the robust "
                            "model to compare with)")
    robust, compare_record = args.compare_loaded
    shift = attribution_shift(model, robust, images, labels, batch_size=args.batch_size, generator=generator,
                              progress=progress_enabled(args))
    bands = list(range(images.shape[-2] + images.shape[-1] - 1))
    series = {}
    for c in sorted(shift.natural):
        series[f"{dataset.classes[c]} natural"] = (bands, shift.natural[c].tolist())
        series[f"{dataset.classes[c]} robust"] = (bands, shift.robust[c].tolist())
    line_plot(series, args.out / "attribution_shift.png", xlabel="DCT band i + j",
              ylabel="logit drop when the band is removed", title="Attribution shift natural → robust (seed 003, Fig 1)")
    return {"compare": compare_record["spec"], "compare_model": compare_record, **shift.to_dict(dataset.classes),
            "figures": ["attribution_shift.png"]}


def _jsonable(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.tolist() if value.numel() > 1 else value.item()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
