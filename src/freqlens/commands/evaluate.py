"""``freqlens evaluate``: faithfulness table and ranking of attribution methods, original and FORGrad*
(seed 001, Tables 1–2) -> OUT/results.json and OUT/table.md."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from freqlens.cli import add_dataset_flags, number, positive_int, resolve_device
from freqlens.errors import FreqlensError


def _forgrad_flag(text: str) -> float | str | None:
    value = text.strip().lower()
    if value in ("auto", "none"):
        return None if value == "none" else "auto"
    sigma = number(text)
    if not sigma > 0:
        raise argparse.ArgumentTypeError(f"--forgrad takes auto, none or a positive σ, got {text!r}")
    return sigma


def _explainers(spec: str, model, batch_size, generator) -> tuple[list[tuple[str, object]], list[str]]:
    """Build the requested explainers; ``all`` skips (and notes) methods that do not apply to the model."""
    from freqlens.attribution.registry import METHOD_NAMES, canonical_method, make_explainer

    use_all = spec.strip().lower() == "all"
    if use_all:
        names = list(METHOD_NAMES)
    else:
        try:
            names = [canonical_method(part) for part in spec.split(",") if part.strip()]
        except ValueError as error:
            raise FreqlensError(str(error)) from None
        if not names:
            raise FreqlensError("--methods is empty")
        if len(set(names)) != len(names):
            raise FreqlensError(f"--methods names a method twice: {spec}")
    built, skipped = [], []
    for name in names:
        try:
            built.append((name, make_explainer(name, model, batch_size=batch_size, generator=generator)))
        except (FreqlensError, ValueError) as error:
            if not use_all:
                raise FreqlensError(f"{name}: {error}") from None
            skipped.append(f"{name}: {str(error).splitlines()[0]}")
    return built, skipped


def _cmd_evaluate(args: argparse.Namespace) -> int:
    import torch

    from freqlens.analysis.ranking import rank_methods
    from freqlens.data import load_dataset
    from freqlens.models import load
    from freqlens.utils import atomic_write_json, atomic_write_text

    device = resolve_device(args.device)
    model = load(args.checkpoint, map_location=device)
    generator = torch.Generator(device=device).manual_seed(args.seed)
    dataset = load_dataset(args.dataset, split=args.split, root=args.data_dir, download=args.download)
    needed = args.n_images + (args.calibration if args.forgrad == "auto" else 0)
    if len(dataset) < needed:
        raise FreqlensError(f"{args.dataset} ({args.split}) has {len(dataset)} images; {needed} are needed")
    explainers, skipped = _explainers(args.methods, model, args.batch_size, generator)
    for note in skipped:
        print(f"skipped {note}", file=sys.stderr)
    if not explainers:
        raise FreqlensError("no requested method applies to this model")
    images = dataset.float_images(range(args.n_images)).to(device)
    calibration = None
    if args.forgrad == "auto":  # held out: the images right after the evaluated ones
        calibration = (dataset.float_images(range(args.n_images, needed)).to(device), None)
    try:
        ranking = rank_methods(
            model, images, None, methods=explainers, forgrad=args.forgrad or False, calibration=calibration,
            steps=args.steps, mufidelity_samples=args.samples, batch_size=args.batch_size, generator=generator,
            progress=not args.quiet,
        )
    except ValueError as error:
        raise FreqlensError(str(error)) from None
    results = {
        "checkpoint": str(args.checkpoint), "dataset": args.dataset, "split": args.split,
        "n_images": args.n_images, "calibration_images": args.calibration if calibration is not None else 0,
        "forgrad_setting": args.forgrad, "steps": args.steps, "mufidelity_samples": args.samples, "seed": args.seed,
        "target": "predicted", "skipped": skipped, **ranking.to_dict(),
    }
    atomic_write_json(args.out / "results.json", results)
    atomic_write_text(args.out / "table.md", ranking.to_markdown())
    print(f"evaluated {len(explainers)} method(s) on {args.n_images} images; best: {ranking.order[0]}"
          + (f", best FORGrad*: {ranking.forgrad_order[0]}*" if ranking.forgrad_rows else "")
          + f"; results in {args.out}")
    return 0


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "evaluate", help="faithfulness table + ranking of methods (and FORGrad*): OUT/results.json, OUT/table.md"
    )
    parser.add_argument("--checkpoint", type=Path, required=True, help="a checkpoint written by freqlens train")
    add_dataset_flags(parser)
    parser.add_argument("--split", default="test")
    parser.add_argument("--methods", default="all", help="all (every method that applies) or a comma list")
    parser.add_argument("--forgrad", type=_forgrad_flag, default="auto", metavar="auto|none|SIGMA",
                        help="σ* searched per method on held-out images (auto), none, or a fixed σ")
    parser.add_argument("--n-images", type=positive_int, default=32, help="evaluated images (the first N)")
    parser.add_argument("--calibration", type=positive_int, default=16,
                        help="held-out images (after the evaluated ones) for --forgrad auto")
    parser.add_argument("--steps", type=positive_int, default=20, help="Deletion/Insertion steps")
    parser.add_argument("--samples", type=positive_int, default=128, help="MuFidelity samples")
    parser.add_argument("--batch-size", type=positive_int, default=None, help="max images per forward pass")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default=None)
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--out", type=Path, required=True)
    parser.set_defaults(run=_cmd_evaluate)
