"""The ``freqlens`` command: a thin face over the library.

User errors (unknown dataset or model, missing or corrupt file, bad flag value) print one readable
line on stderr and exit with status 2, without a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

from freqlens import __version__
from freqlens.errors import FreqlensError


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


def _resolve_device(name: str | None):
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


def _add_dataset_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dataset", required=True, help="mnist, cifar10, demo, or a path to an image folder / .tar(.gz)"
    )
    parser.add_argument("--data-dir", type=Path, default=None, help="folder holding the dataset files")
    parser.add_argument("--download", action="store_true", help="download mnist/cifar10 if missing")


def _cmd_demo(args: argparse.Namespace) -> int:
    from freqlens.studies import run_demo

    report = run_demo(args.out, progress=not args.quiet)
    print(f"report written to {report}")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    import torch

    from freqlens.data import load_dataset, normalization_stats
    from freqlens.models import build
    from freqlens.training import Standard, train

    train_set = load_dataset(args.dataset, split="train", root=args.data_dir, download=args.download)
    val_set = load_dataset(args.dataset, split=args.val_split, root=args.data_dir, download=args.download)
    if args.mode != "standard":
        raise FreqlensError(f"training mode {args.mode!r} is not available in this version")
    device = _resolve_device(args.device)
    mean, std = normalization_stats(train_set.images)
    torch.manual_seed(args.seed)
    model = build(
        args.model,
        in_channels=train_set.images.shape[1],
        num_classes=len(train_set.classes),
        image_size=tuple(train_set.images.shape[-2:]),
        mean=mean,
        std=std,
    ).to(device)
    history = train(
        model,
        train_set,
        val_set,
        mode=Standard(),
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        augment=args.augment,
        out_dir=args.out,
        resume=args.resume,
        seed=args.seed,
        device=device,
        progress=not args.quiet,
    )
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


def _cmd_report(args: argparse.Namespace) -> int:
    from freqlens.report import write_report

    print(f"report written to {write_report(args.dir)}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="freqlens",
        description="Frequency-aware explanation of image classifiers.",
    )
    parser.add_argument("--version", action="version", version=f"freqlens {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for user errors")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    demo = commands.add_parser("demo", help="the main job on the embedded sample -> OUT/report.html")
    demo.add_argument("--out", type=Path, default=Path("demo-out"), help="output folder (default: demo-out)")
    demo.add_argument("--quiet", action="store_true", help="no progress bars")
    demo.set_defaults(run=_cmd_demo)

    trainer = commands.add_parser("train", help="train a model: OUT/best.pt, OUT/last.pt, OUT/history.json")
    _add_dataset_flags(trainer)
    trainer.add_argument("--model", required=True, help="mlp, fcnn, lenet, vgg11, vgg16, resnet18, resnet_small, ...")
    trainer.add_argument("--mode", default="standard", choices=["standard", "noise-modulation", "adversarial"])
    trainer.add_argument("--epochs", type=positive_int, default=10)
    trainer.add_argument("--batch-size", type=positive_int, default=64)
    trainer.add_argument("--lr", type=number, default=1e-3)
    trainer.add_argument(
        "--augment", default=False, nargs="?", const=True, choices=[True, "flip", "crop", "flip+crop"],
        help="random flip and/or crop augmentation (bare flag: flip+crop)",
    )
    trainer.add_argument("--val-split", default="test", help="split used for validation (default: test)")
    trainer.add_argument("--seed", type=int, default=0)
    trainer.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: cuda if available)")
    trainer.add_argument("--resume", action="store_true", help="continue from OUT/last.pt after an interruption")
    trainer.add_argument("--out", type=Path, required=True)
    trainer.add_argument("--quiet", action="store_true", help="no progress bars")
    trainer.set_defaults(run=_cmd_train)

    report = commands.add_parser("report", help="(re)build DIR/report.html from the study results in DIR")
    report.add_argument("dir", type=Path)
    report.set_defaults(run=_cmd_report)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except FreqlensError as error:
        if args.debug:
            raise
        print(f"freqlens: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("freqlens: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
