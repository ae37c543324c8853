"""The ``freqlens`` command: a thin face over the library.

User errors (unknown dataset or model, missing or corrupt file, bad flag value) print one readable
line on stderr and exit with status 2, without a traceback; so do filesystem faults (an output folder
that is a file or read-only, a full disk), after which the empty folders the command created are removed
again. Every output folder (the flags named in :data:`OUTPUT_ARGS`) is checked before any work. Warnings
print as ``freqlens: warning: MESSAGE``. Every command takes ``--quiet`` (:func:`add_quiet_flag`): no progress
bars or informational lines on stderr; errors and warnings still print.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import warnings
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import TextIO

from freqlens import __version__
from freqlens.errors import FreqlensError
from freqlens.utils.env import env_positive_int
from freqlens.utils.io import prepare_output_dir, removing_created_dirs_on_error

OUTPUT_ARGS: tuple[str, ...] = ("out", "cache")
"""Attributes of the parsed arguments that name folders a command writes: each one set is checked (and
created) with :func:`~freqlens.utils.io.prepare_output_dir` before the command does any work."""


def number(text: str) -> float:
    """A float flag that also accepts fractions such as ``8/255``."""
    try:
        return float(Fraction(text.strip())) if "/" in text else float(text)
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
    return value


def resolve_device(name: str | None):
    """``None`` → CUDA when available, else CPU; a bad name is a user error."""
    import torch

    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise FreqlensError(f"unknown device {name!r}: {error}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise FreqlensError(f"device {name!r} requested but CUDA is not available")
    return device


def add_dataset_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dataset", required=True, help="mnist, cifar10, demo (the shipped CIFAR-10 sample), demo-cifar10, demo-mnist, or a path to an image folder / .tar(.gz)"
    )
    parser.add_argument("--data-dir", type=Path, default=None, help="folder holding the dataset files")
    parser.add_argument("--download", action="store_true", help="download mnist/cifar10 if missing")


QUIET_HELP = "no progress bars or informational lines on stderr (errors and warnings still print)"
"""The help of ``--quiet``, the same on every command."""


def add_quiet_flag(parser: argparse.ArgumentParser, *, aliases: Sequence[str] = ()) -> None:
    """``--quiet`` (attribute ``quiet``), on every command: no progress bars (tqdm, on stderr) and no
    informational stderr lines; errors and ``freqlens: warning:`` lines still print, and stdout (the results
    some commands print) is unchanged. Without it a command shows its bars: commands pass
    ``progress=progress_enabled(args)`` to the library, whose functions are silent by default
    (``progress=False``).

    ``aliases``: older spellings kept working but hidden from the help (e.g. ``--no-progress`` of ``study``).
    """
    parser.add_argument("--quiet", action="store_true", help=QUIET_HELP)
    for alias in aliases:
        parser.add_argument(alias, dest="quiet", action="store_true", help=argparse.SUPPRESS)


def progress_enabled(args: argparse.Namespace) -> bool:
    """Whether this process shows progress bars: not ``--quiet``, and rank 0 under ``torchrun``."""
    from freqlens import distributed

    return not getattr(args, "quiet", False) and distributed.is_main()


def add_shard_flag(parser: argparse.ArgumentParser, default: int, what: str = "results") -> None:
    """``--shard-size``: images per work unit (the unit shared among torchrun processes and of random
    seeding)."""
    parser.add_argument("--shard-size", type=positive_int, default=default,
                        help="images per work unit: the unit shared among torchrun processes and of random "
                             f"seeding ({what} depend on it, not on the number of processes; default {default})")


def pick_images(dataset, count: int, seed: int, device, skip: int = 0):
    """``(images, labels)`` of ``count`` images of ``dataset`` on ``device``, drawn at random from ``seed``
    (entries ``skip ..`` of one permutation, see :func:`freqlens.data.pick_indices`) — not the first
    ``count``: image folders list their images class by class."""
    from freqlens.data import pick_indices

    chosen = pick_indices(len(dataset), count, seed, skip=skip)
    return dataset.float_images(chosen).to(device), dataset.labels[chosen].to(device)


def _cmd_demo(args: argparse.Namespace) -> int:
    from freqlens.studies import run_demo

    studies = [name.strip() for name in args.studies.split(",") if name.strip()] if args.studies else None
    report = run_demo(args.out, studies, cache_dir=args.cache, progress=not args.quiet)
    print(f"report written to {report}")
    return 0


def _training_mode(args: argparse.Namespace, model):
    """The training mode of ``freqlens train`` from its flags (``model``: the model being trained)."""
    from freqlens.training import Adversarial, NoiseModulation, Standard

    if args.mode == "standard":
        return Standard()
    if args.mode == "noise-modulation":
        return NoiseModulation(beta=args.beta, noise=args.noise)  # TrainingConfigError: one-line exit 2
    if not args.eps > 0 or (args.alpha is not None and not args.alpha > 0):
        raise FreqlensError(f"--eps and --alpha must be positive, got {args.eps} and {args.alpha}")
    if args.attack == "fast-fgsm":
        if args.attack_norm != "inf":
            raise FreqlensError("--attack fast-fgsm is an L∞ attack; use --attack-norm inf or --attack pgd")
        return Adversarial.fast(eps=args.eps, alpha=1.25 * args.eps if args.alpha is None else args.alpha)
    from freqlens.attacks import FGSM, PGD

    if args.attack == "fgsm":
        if args.attack_norm != "inf":
            raise FreqlensError("--attack fgsm is an L∞ attack; use --attack-norm inf or --attack pgd")
        return Adversarial(FGSM(model, eps=args.eps))
    alpha = 2 / 255 if args.alpha is None else args.alpha
    return Adversarial(PGD(model, eps=args.eps, alpha=alpha, steps=args.steps, norm=args.attack_norm))


def _cmd_train(args: argparse.Namespace) -> int:
    from freqlens import distributed

    device = distributed.local_device(resolve_device(args.device))
    with distributed.session(device):
        return _train(args, device)


def _train(args: argparse.Namespace, device) -> int:
    """``freqlens train`` (data-parallel under torchrun: the global --batch-size is split among the ranks)."""
    from freqlens import distributed
    from freqlens.data import load_dataset
    from freqlens.studies.common import model_for_dataset
    from freqlens.training import train

    progress = progress_enabled(args)
    train_set = load_dataset(args.dataset, split="train", root=args.data_dir, download=args.download,
                             progress=progress)
    val_set = load_dataset(args.dataset, split=args.val_split, root=args.data_dir, download=args.download,
                           progress=progress)
    model = model_for_dataset(args.model, train_set, seed=args.seed)
    if args.antialias is not None:  # recorded in the spec: checkpoints rebuild the twin
        from freqlens.models import antialias

        model = antialias(model, args.antialias)
    model = model.to(device)
    mode = _training_mode(args, model)
    history = train(
        model,
        train_set,
        val_set,
        mode=mode,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        optimizer=args.optimizer,
        weight_decay=args.weight_decay,
        lr_schedule=args.lr_schedule,
        channels_last=args.channels_last,
        augment=args.augment,
        out_dir=args.out,
        resume=args.resume,
        seed=args.seed,
        device=device,
        progress=not args.quiet,
        max_batches_per_epoch=args.max_batches,
        log_vii=args.vii,
    )
    if not distributed.is_main():
        return 0
    best = max((e["val_accuracy"] for e in history if e.get("val_accuracy") is not None), default=None)
    last = history[-1] if history else {}
    print(
        f"trained {args.model} for {len(history)} epochs; last epoch: train accuracy "
        f"{last.get('train_accuracy', float('nan')):.4f}, {args.val_split} accuracy "
        f"{last.get('val_accuracy') if last.get('val_accuracy') is not None else float('nan'):.4f}; "
        f"best {args.val_split} accuracy {best if best is not None else float('nan'):.4f}; "
        f"checkpoints in {args.out}"
    )
    return 0


def _forgrad_value(text: str) -> float | str:
    if text.strip().lower() == "auto":
        return "auto"
    value = number(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"--forgrad takes a positive σ or 'auto', got {text!r}")
    return value


def _cmd_explain(args: argparse.Namespace) -> int:
    from freqlens import distributed

    device = distributed.local_device(resolve_device(args.device))
    with distributed.session(device):
        return _explain(args, device)


def _explain_units(model, method: str, images, labels, sigma: float | None, args: argparse.Namespace,
                   settings: dict | None = None):
    """Maps (and FORGrad maps at ``sigma``) of ``images`` computed per work unit of ``--shard-size`` images,
    each with a generator seeded from ``(seed, unit)``; units shared among the ranks, merged in order.
    ``settings``: the method's settings (``--method-args``)."""
    import torch
    from tqdm.auto import tqdm

    from freqlens import distributed
    from freqlens.analysis.explain import explain_images

    units = distributed.work_units(images.shape[0], args.shard_size)

    def step():
        done, bar = [], None
        mine = distributed.shard(list(enumerate(units)))
        for index, unit in mine:
            part = slice(unit.start, unit.stop)
            target = labels[part] if args.target == "label" else None
            try:
                result = explain_images(model, images[part], method, target=target, forgrad=sigma, shape=args.shape,
                                        mode=args.forgrad_mode,
                                        batch_size=args.batch_size, settings=settings,
                                        seed=distributed.stream_seed("freqlens.explain", args.seed, "unit", index))
            except ValueError as error:  # e.g. GradCAM on a model without convolutions
                raise FreqlensError(f"{method}: {error}") from None
            done.append((index, (result.target.cpu(), result.maps.detach().cpu(),
                                 None if result.forgrad_maps is None else result.forgrad_maps.detach().cpu())))
            if bar is None:  # shown from the first finished unit on: a failing method prints only its error line
                bar = tqdm(total=sum(u.stop - u.start for _, u in mine), desc="explain", unit="img",
                           disable=not progress_enabled(args))
            bar.update(unit.stop - unit.start)
        if bar is not None:
            bar.close()
        return done

    parts = distributed.gather_ordered(distributed.run_everywhere(step))
    target = torch.cat([p[0] for p in parts])
    maps = torch.cat([p[1] for p in parts])
    forgrad_maps = None if sigma is None else torch.cat([p[2] for p in parts])
    return target, maps, forgrad_maps


def _explain(args: argparse.Namespace, device) -> int:
    """``freqlens explain``; under torchrun the work units are shared among the ranks and rank 0 writes."""
    import torch

    from freqlens import distributed
    from freqlens.analysis.explain import Explanation
    from freqlens.analysis.sigma_search import search_sigma
    from freqlens.attribution.registry import canonical_method, make_explainer
    from freqlens.commands._methods import announce_passes, check_model_runs, method_settings_from_args
    from freqlens.commands._model import model_from_args
    from freqlens.data import load_dataset

    try:
        method = canonical_method(args.method)
    except ValueError as error:
        raise FreqlensError(str(error)) from None
    settings = method_settings_from_args(args, [method])[method]
    model, record = model_from_args(args, device)
    dataset = load_dataset(args.dataset, split=args.split, root=args.data_dir, download=args.download,
                           progress=progress_enabled(args))
    needed = args.n_images + (args.calibration if args.forgrad == "auto" else 0)
    if len(dataset) < needed:
        raise FreqlensError(f"{args.dataset} ({args.split}) has {len(dataset)} images; {needed} are needed")
    images, labels = pick_images(dataset, args.n_images, args.seed, device)
    check_model_runs(model, images, method)
    try:  # the passes it will take (on the explained and held-out images), before the long work
        planned = announce_passes(args, method, make_explainer(method, model, batch_size=args.batch_size,
                                                               settings=settings), *images.shape[-2:], needed)
    except ValueError as error:  # e.g. GradCAM on a model without convolutions, a bad --method-args value
        raise FreqlensError(f"{method}: {error}") from None
    search, sigma = None, None if args.forgrad is None else args.forgrad
    if args.forgrad == "auto":  # on held-out images (other images of the same draw), by rank 0

        def find_sigma():
            if not distributed.is_main():
                return None
            held_out, _ = pick_images(dataset, needed - args.n_images, args.seed, device, skip=args.n_images)
            generator = torch.Generator(device=device).manual_seed(
                distributed.stream_seed("freqlens.explain", args.seed, "sigma"))
            try:
                found = search_sigma(make_explainer(method, model, batch_size=args.batch_size, generator=generator,
                                                    settings=settings),
                                     model, held_out, None, shape=args.shape, batch_size=args.batch_size,
                                     mode=args.forgrad_mode, progress=progress_enabled(args))
            except ValueError as error:
                raise FreqlensError(f"{method}: {error}") from None
            return {"sigma_star": found.sigma_star, "sigmas": list(found.sigmas), "scores": found.scores.cpu(),
                    "deletion": found.deletion.cpu(), "insertion": found.insertion.cpu(), "summary": found.to_dict()}

        search = distributed.broadcast_object(distributed.run_everywhere(find_sigma))
        sigma = float(search["sigma_star"])
    target, maps, forgrad_maps = _explain_units(model, method, images, labels, sigma, args, settings)
    result = Explanation(method=method, images=images.cpu(), target=target, maps=maps, forgrad_maps=forgrad_maps,
                         sigma=sigma, shape=args.shape, mode=args.forgrad_mode)
    # rank 0 writes; a failure there stops every rank at once (instead of the others timing out)
    distributed.run_everywhere(
        lambda: _write_explanation(args, method, images.cpu(), labels.cpu(), result, search, record,
                                   settings=settings, planned=planned)
        if distributed.is_main() else None, catch=(FreqlensError, OSError))
    return 0


def _write_explanation(args: argparse.Namespace, method: str, images, labels, result, search,
                       record: dict, *, settings: dict | None = None, planned: dict | None = None) -> None:
    """OUT/maps.pt, the PNG grids and OUT/explain.json (rank 0; ``record``: how the model was loaded;
    ``settings``: the method's ``--method-args``; ``planned``: its planned passes)."""
    import math

    from freqlens import distributed
    from freqlens.attribution import reduce_channels
    from freqlens.report import attribution_grid
    from freqlens.utils import atomic_save_torch, atomic_write_json

    out = args.out
    saved = {"method": method, "images": images.cpu(), "labels": labels.cpu(), "target": result.target.cpu(),
             "maps": result.maps.cpu()}
    if result.forgrad_maps is not None:
        saved.update(forgrad_maps=result.forgrad_maps.cpu(), sigma=result.sigma, shape=result.shape, mode=result.mode)
    atomic_save_torch(out / "maps.pt", saved)
    spectra = result.log_spectrum()
    figures = []
    for start in range(0, args.n_images, args.grid_size):
        part = slice(start, min(start + args.grid_size, args.n_images))
        rows = [(method, reduce_channels(result.maps[part], "sum"))]
        if result.forgrad_maps is not None:
            rows.append((f"FORGrad σ={result.sigma:.3g}", reduce_channels(result.forgrad_maps[part], "sum")))
        rows.append(("log power", spectra[part], "magnitude"))
        titles = [f"y={int(y)} t={int(t)}" for y, t in zip(labels[part], result.target[part])]
        path = attribution_grid(images[part], rows, out / f"grid_{start // args.grid_size:03d}.png", titles=titles)
        figures.append(path.name)
    summary = {
        "checkpoint": None if args.checkpoint is None else str(args.checkpoint), "model": record,
        "dataset": args.dataset, "split": args.split, "method": method,
        "n_images": args.n_images, "target": args.target, "forgrad": args.forgrad, "shape": args.shape,
        "forgrad_mode": args.forgrad_mode,
        "sigma": result.sigma, "figures": figures, "maps": "maps.pt", "shard_size": args.shard_size,
        "processes": distributed.world_size(), "method_args": settings or {}, "planned_passes": planned,
    }
    if search is not None:
        summary["sigma_search"] = {
            "calibration_images": args.calibration, "sigma_star": search["sigma_star"], "sigmas": search["sigmas"],
            "insertion_minus_deletion": search["scores"].tolist(), "deletion": search["deletion"].tolist(),
            "insertion": search["insertion"].tolist(), **search.get("summary", {}),
        }
    atomic_write_json(out / "explain.json", summary)
    sigma_text = "" if result.sigma is None or math.isnan(result.sigma) else f", FORGrad σ={result.sigma:.4g}"
    print(f"explained {args.n_images} images with {method}{sigma_text}; maps and {len(figures)} grid(s) in {out}")


def _cmd_report(args: argparse.Namespace) -> int:
    from freqlens.report import write_report
    from freqlens.studies.registry import STUDIES

    print(f"report written to {write_report(args.out, order=list(STUDIES))}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="freqlens",
        description="Frequency-aware explanation of image classifiers.",
    )
    parser.add_argument("--version", action="version", version=f"freqlens {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for user errors")
    parser.add_argument("--threads", type=positive_int, default=None, metavar="N",
                        help="torch CPU threads (default $FREQLENS_THREADS, else torch's choice); on a busy machine "
                             "fewer threads than cores avoid oversubscription")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    demo = commands.add_parser(
        "demo", help="the four studies at demo scale on the embedded sample -> OUT/report.html (no download)"
    )
    demo.add_argument("--out", type=Path, default=Path("demo-out"), help="output folder (default: demo-out)")
    demo.add_argument("--studies", default=None, metavar="A,B",
                      help="comma-separated subset of the studies (default: all four)")
    demo.add_argument("--cache", type=Path, default=None, help="trained-model cache (default OUT/cache)")
    add_quiet_flag(demo)
    demo.set_defaults(run=_cmd_demo)

    trainer = commands.add_parser("train", help="train a model: OUT/best.pt, OUT/last.pt, OUT/history.json")
    add_dataset_flags(trainer)
    trainer.add_argument("--model", required=True, help="mlp, fcnn, lenet, vgg11, vgg16, resnet18, resnet_small, ...")
    trainer.add_argument("--antialias", type=int, default=None, choices=range(1, 8), metavar="N",
                         help="anti-aliased twin (Zhang 2019): blur-then-subsample with a binomial filter of size N "
                              "in place of every stride-2 conv / max-pool")
    trainer.add_argument("--mode", default="standard", choices=["standard", "noise-modulation", "adversarial"])
    trainer.add_argument("--beta", type=number, default=0.5,
                         help="noise modulation: constant ratio β of the carrier, in [0, 1] (default 0.5)")
    trainer.add_argument("--noise", default="gaussian",
                         help="noise modulation carrier: gaussian, uniform, laplace, gamma, exponential, rayleigh")
    trainer.add_argument("--attack", default="pgd", choices=["pgd", "fgsm", "fast-fgsm"],
                         help="adversarial training attack (default pgd: Madry PGD-AT)")
    trainer.add_argument("--eps", type=number, default=8 / 255,
                         help="adversarial budget ε in pixel units [0, 1] (default 8/255; pick e.g. 0.3 for MNIST)")
    trainer.add_argument("--alpha", type=number, default=None,
                         help="attack step size (default 2/255 for pgd, 1.25·ε for fast-fgsm)")
    trainer.add_argument("--steps", type=positive_int, default=7, help="PGD steps (default 7)")
    trainer.add_argument("--attack-norm", default="inf", choices=["inf", "2"], help="PGD threat model (default inf)")
    trainer.add_argument("--epochs", type=positive_int, default=10)
    trainer.add_argument("--max-batches", type=positive_int, default=None,
                         help="advanced: at most this many batches per epoch (quick runs)")
    trainer.add_argument("--batch-size", type=positive_int, default=64,
                         help="global batch size (under torchrun split among the processes; default 64)")
    trainer.add_argument("--lr", type=number, default=1e-3, help="(initial) learning rate (default 1e-3)")
    trainer.add_argument("--optimizer", default="adam", choices=["adam", "sgd"],
                         help="adam (default) or sgd (momentum 0.9)")
    trainer.add_argument("--weight-decay", type=number, default=0.0, help="L2 weight decay (default 0)")
    trainer.add_argument("--lr-schedule", default="constant", choices=["constant", "cosine"],
                         help="constant (default) or cosine decay over --epochs, stepped per epoch")
    trainer.add_argument("--channels-last", action="store_true",
                         help="channels-last memory format (faster for ResNets on CPU)")
    trainer.add_argument(
        "--augment", default=False, nargs="?", const=True, choices=[True, "flip", "crop", "flip+crop"],
        help="random flip and/or crop augmentation (bare flag: flip+crop)",
    )
    trainer.add_argument("--val-split", default="test", help="split used for validation (default: test)")
    trainer.add_argument("--seed", type=int, default=0)
    trainer.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: cuda if available)")
    trainer.add_argument("--vii", action="store_true", help="log the VII of seed 000 on 512 validation images per epoch")
    trainer.add_argument("--resume", action="store_true", help="continue from OUT/last.pt after an interruption")
    trainer.add_argument("--out", type=Path, required=True)
    add_quiet_flag(trainer)
    trainer.set_defaults(run=_cmd_train)

    explain = commands.add_parser("explain", help="attribution maps (+ FORGrad) of N images: OUT/maps.pt, grids")
    from freqlens.commands._model import add_model_flags

    add_model_flags(explain)
    add_dataset_flags(explain)
    explain.add_argument("--split", default="test")
    explain.add_argument("--method", required=True, help="saliency, gradient_input, integrated_gradients, "
                         "smoothgrad, smoothgrad_sq, vargrad, gradcam, gradcam_pp, occlusion, rise, sobol, hsic")
    from freqlens.commands._methods import add_method_args_flag

    add_method_args_flag(explain, several=False)
    explain.add_argument("--forgrad", type=_forgrad_value, default=None, metavar="SIGMA|auto",
                         help="low-pass the maps at σ (cycles per image), or search σ* on held-out images")
    explain.add_argument("--shape", default="box", choices=["box", "disk", "gaussian"], help="FORGrad filter shape")
    explain.add_argument("--forgrad-mode", default="magnitude", choices=["magnitude", "signed"],
                         help="FORGrad pipeline: magnitude (as published: |low-pass(|channel mean|)|, one map per "
                              "image) or signed (per-channel low-pass of the signed maps, seed 001 Prop. 3.1)")
    explain.add_argument("--calibration", type=positive_int, default=32,
                         help="held-out images for --forgrad auto (default 32)")
    explain.add_argument("--n-images", type=positive_int, default=16)
    explain.add_argument("--target", default="predicted", choices=["predicted", "label"])
    explain.add_argument("--batch-size", type=positive_int, default=None, help="max images per forward pass")
    explain.add_argument("--grid-size", type=positive_int, default=16, help="images per PNG grid")
    add_shard_flag(explain, 8, "the maps")
    explain.add_argument("--seed", type=int, default=0)
    explain.add_argument("--device", default=None)
    explain.add_argument("--out", type=Path, required=True)
    add_quiet_flag(explain)
    explain.set_defaults(run=_cmd_explain)

    import importlib

    from freqlens.commands import COMMAND_MODULES

    for module_name in COMMAND_MODULES:
        importlib.import_module(f"freqlens.commands.{module_name}").add_parser(commands)

    report = commands.add_parser("report", help="(re)build DIR/report.html from the study results in DIR")
    report.add_argument("out", metavar="DIR", type=Path, help="the study folder (also where report.html goes)")
    add_quiet_flag(report)
    report.set_defaults(run=_cmd_report)
    return parser


def _set_threads(threads: int | None) -> None:
    """``torch.set_num_threads`` from ``--threads`` or ``$FREQLENS_THREADS`` (a positive integer)."""
    if threads is None:
        threads = env_positive_int("FREQLENS_THREADS")
        if threads is None:
            return
    import torch

    torch.set_num_threads(threads)


def _show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                  file: TextIO | None = None, line: str | None = None) -> None:
    """``warnings.showwarning`` of the command line: ``freqlens: warning: MESSAGE`` on stderr (no source
    file, line number or code line, which mean nothing to a user of the command)."""
    print(f"freqlens: warning: {message}", file=sys.stderr if file is None else file)


def _prepare_outputs(args: argparse.Namespace) -> None:
    """Check (and create) every output folder of the command (:data:`OUTPUT_ARGS`) before any work; a
    ``--dry-run`` writes nothing, so its folders are left alone."""
    if getattr(args, "dry_run", False):
        return
    for name in OUTPUT_ARGS:
        value = getattr(args, name, None)
        if isinstance(value, Path):
            setattr(args, name, prepare_output_dir(value))


def _os_error_line(error: OSError) -> str:
    """One line for a filesystem fault: ``FILE: REASON`` (e.g. ``run/x.pt: Permission denied``)."""
    reason = error.strerror or str(error) or type(error).__name__
    return reason if error.filename is None else f"{error.filename}: {reason}"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``freqlens`` command line.

    Args:
        argv: The arguments (default ``sys.argv[1:]``).

    Returns:
        The exit status: 0 on success, 2 on a user error or a filesystem fault (one line on stderr, no
        traceback unless ``--debug``; the empty folders the command created are removed), 130 when
        interrupted.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        with warnings.catch_warnings(), removing_created_dirs_on_error():
            warnings.showwarning = _show_warning
            _set_threads(args.threads)
            _prepare_outputs(args)
            return int(args.run(args) or 0)
    except FreqlensError as error:
        if args.debug:
            raise
        print(f"freqlens: error: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `freqlens zoo list | head`: the reader left; not an error of ours
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 1  # as the Python documentation advises (signal.SIGPIPE is not restored)
    except OSError as error:
        if args.debug:
            raise
        print(f"freqlens: error: {_os_error_line(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("freqlens: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
