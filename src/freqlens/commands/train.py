"""``freqlens train``: train a model -> ``OUT/best.pt``, ``OUT/last.pt``, ``OUT/history.json``.

Modes: ``standard``, ``noise-modulation`` (seed 000) and ``adversarial`` (PGD, FGSM or fast FGSM). Under
``torchrun`` the training is data-parallel: the global ``--batch-size`` is split among the processes.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from freqlens.commands._common import (
    add_dataset_flags,
    add_quiet_flag,
    distributed_command,
    number,
    positive_int,
    progress_enabled,
)
from freqlens.errors import FreqlensError


def _training_mode(args: argparse.Namespace, model: Any) -> Any:
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


def _train(args: argparse.Namespace, device: Any) -> int:
    """``freqlens train`` (data-parallel under torchrun: the global --batch-size is split among the ranks)."""
    from freqlens import distributed
    from freqlens.data import load_dataset, normalization_stats
    from freqlens.models import model_for_dataset
    from freqlens.training import train

    progress = progress_enabled(args)
    train_set = load_dataset(args.dataset, split="train", root=args.data_dir, download=args.download,
                             progress=progress)
    val_set = load_dataset(args.dataset, split=args.val_split, root=args.data_dir, download=args.download,
                           progress=progress)
    model = model_for_dataset(args.model, train_set, *normalization_stats(train_set.images), seed=args.seed)
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


def _add_mode_flags(trainer: argparse.ArgumentParser) -> None:
    """``--mode`` and the flags of the noise-modulation and adversarial modes."""
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


def add_parser(commands: Any) -> None:
    """Add ``train`` to the ``freqlens`` sub-commands."""
    trainer = commands.add_parser("train", help="train a model: OUT/best.pt, OUT/last.pt, OUT/history.json")
    add_dataset_flags(trainer)
    trainer.add_argument("--model", required=True, help="mlp, fcnn, lenet, vgg11, vgg16, resnet18, resnet_small, ...")
    trainer.add_argument("--antialias", type=int, default=None, choices=range(1, 8), metavar="N",
                         help="anti-aliased twin (Zhang 2019): blur-then-subsample with a binomial filter of size N "
                              "in place of every stride-2 conv / max-pool")
    _add_mode_flags(trainer)
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
    trainer.set_defaults(run=distributed_command(_train))
