"""``freqlens attack``: robust accuracy of a checkpoint under an attack, and the RCT map (seed 003).

Writes ``OUT/attack.json`` (clean / robust accuracy, success rate, mean perturbation norms, SimBA
queries, settings), ``OUT/rct.pt`` (the RCT map ``[H, W]`` and the per-image outcome) and
``OUT/rct.png`` (heat map with a colour bar, DC at the top left).

The images are attacked in work units of ``--shard-size`` images, each with a random stream seeded from
``(seed, unit)``; under ``torchrun`` the units are shared among the processes and gathered in image
order (the same files as one process), and rank 0 writes them.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from freqlens.attacks import ATTACKS, make_attack
from freqlens.commands._common import (
    add_image_run_flags,
    add_shard_flag,
    dataset_from_args,
    distributed_command,
    number,
    positive_int,
    progress_enabled,
)
from freqlens.commands._model import model_from_args
from freqlens.data.sampling import pick_images
from freqlens.errors import FreqlensError


def _attack_units(model, images, labels, args: argparse.Namespace):
    """:func:`~freqlens.attacks.run_attack` per work unit of ``--shard-size`` images, each attack with a
    generator seeded from ``(seed, unit)``; the units shared among the ranks and merged in image order."""
    import torch

    from freqlens import distributed
    from freqlens.attacks import run_attack
    from freqlens.attacks.evaluation import AttackResult

    units = distributed.work_units(images.shape[0], args.shard_size)

    def step():
        done = []
        for index, unit in distributed.shard(list(enumerate(units))):
            generator = torch.Generator().manual_seed(distributed.stream_seed("freqlens.attack", args.seed, index))
            attack = make_attack(args.attack, model, eps=args.eps, steps=args.steps, alpha=args.alpha, c=args.c,
                                 kappa=args.kappa, lr=args.lr, binary_search_steps=args.binary_search_steps, cutoff=args.cutoff, basis=args.basis, order=args.order,
                                 restarts=args.restarts, generator=generator)
            part = slice(unit.start, unit.stop)
            try:
                result = run_attack(model, images[part], labels[part], attack, batch_size=args.batch_size,
                                    progress=progress_enabled(args))
            except (ValueError, RuntimeError) as error:  # e.g. images that do not fit the model
                raise _user_error(args, error) from None
            done.append((index, (result.adversarial.cpu(), result.labels.cpu(), result.clean_correct.cpu(),
                                 result.adversarial_correct.cpu(),
                                 None if result.queries is None else result.queries.cpu())))
        return done

    parts = distributed.gather_ordered(distributed.run_everywhere(step))
    queries = [p[4] for p in parts]
    return AttackResult(
        inputs=images.cpu(), adversarial=torch.cat([p[0] for p in parts]), labels=torch.cat([p[1] for p in parts]),
        clean_correct=torch.cat([p[2] for p in parts]), adversarial_correct=torch.cat([p[3] for p in parts]),
        queries=None if any(q is None for q in queries) else torch.cat(queries),
    )


def _user_error(args: argparse.Namespace, error: Exception) -> FreqlensError:
    """``ATTACK on DATASET: <first line of error>``: the one-line message of a failure of the attack."""
    text = str(error).strip()
    first_line = text.splitlines()[0] if text else type(error).__name__
    return FreqlensError(f"{args.attack} on {args.dataset}: {first_line}")


def _check_label_range(model, images, labels, args: argparse.Namespace) -> None:
    """Refuse labels outside the model's classes before any work unit, over *all* the drawn images (a
    unit alone would only see, and report the range of, its own labels).

    Raises:
        FreqlensError: ``ATTACK on DATASET: labels must lie in [0, K) ..., got values in [LOW, HIGH]``
            with LOW and HIGH over every image, or a failure of the model on the first image.
    """
    from freqlens.attacks.base import check_labels
    from freqlens.utils.tensors import predict

    if labels.numel() == 0:
        return
    try:
        classes = predict(model, images[:1]).shape[1]
        check_labels(labels, labels.shape[0], classes, labels.device)
    except (ValueError, RuntimeError) as error:
        raise _user_error(args, error) from None


def _attack(args: argparse.Namespace, device) -> int:
    """``freqlens attack``; under torchrun the work units are shared among the ranks and rank 0 writes."""
    from freqlens import distributed

    model, record = model_from_args(args, device)
    attack = make_attack(args.attack, model, eps=args.eps, steps=args.steps, alpha=args.alpha, c=args.c,
                         kappa=args.kappa, lr=args.lr, binary_search_steps=args.binary_search_steps, cutoff=args.cutoff, basis=args.basis, order=args.order,
                         restarts=args.restarts)  # the settings (and user errors) before any work
    dataset = dataset_from_args(args)
    count = min(args.n_images, len(dataset))
    images, labels = pick_images(dataset, count, args.seed, device)
    _check_label_range(model, images, labels, args)
    result = _attack_units(model, images, labels, args)
    # rank 0 writes; a failure there stops every rank at once (instead of the others timing out)
    distributed.run_everywhere(lambda: _write(args, attack, result, count, record) if distributed.is_main() else None,
                               catch=(FreqlensError, OSError))
    return 0


def _write(args: argparse.Namespace, attack, result, count: int, record: dict) -> None:
    """OUT/rct.pt, OUT/rct.png and OUT/attack.json (rank 0; ``record``: how the model was loaded)."""
    from freqlens import distributed
    from freqlens.report.figures import rct_heatmap
    from freqlens.spectral import rct
    from freqlens.utils import atomic_save_torch, atomic_write_json

    rct_map = rct(result.inputs, result.adversarial).cpu()
    out: Path = args.out
    atomic_save_torch(out / "rct.pt", {
        "rct": rct_map, "labels": result.labels.cpu(), "clean_correct": result.clean_correct.cpu(),
        "adversarial_correct": result.adversarial_correct.cpu(),
        "queries": None if result.queries is None else result.queries.cpu(),
    })
    rct_heatmap(rct_map, out / "rct.png", log_scale=args.log_scale, title=f"RCT, {args.attack} on {count} images")
    summary = {
        **result.summary(),
        "attack": args.attack,
        "settings": attack.describe(),
        "checkpoint": None if args.checkpoint is None else str(args.checkpoint),
        "model": record,
        "dataset": args.dataset,
        "split": args.split,
        "seed": args.seed,
        "batch_size": args.batch_size,
        "shard_size": args.shard_size,
        "processes": distributed.world_size(),
        "rct": {"map": "rct.pt", "figure": "rct.png", "log_scale": args.log_scale,
                "mean": float(rct_map.mean()), "max": float(rct_map.max())},
    }
    summary = {key: (None if isinstance(value, float) and math.isnan(value) else value)
               for key, value in summary.items()}  # strict JSON: undefined rates are null
    atomic_write_json(out / "attack.json", summary)
    rate = "n/a" if summary["success_rate"] is None else f"{summary['success_rate']:.4f}"
    print(f"{args.attack} on {count} images: clean accuracy {summary['clean_accuracy']:.4f}, robust accuracy "
          f"{summary['robust_accuracy']:.4f}, success rate {rate}; results in {out}")


def add_parser(commands) -> None:
    """Add ``attack`` to the ``freqlens`` sub-commands."""
    parser = commands.add_parser("attack", help="robust accuracy under an attack + RCT map: OUT/attack.json, rct.png")
    add_image_run_flags(parser, n_images=256, batch_help="images attacked at once")
    parser.add_argument("--attack", required=True, help=", ".join(ATTACKS))
    parser.add_argument("--eps", type=number, default=None,
                        help="budget (accepts 8/255); default 8/255 (L∞), 0.5 (pgd-l2), 0.2 (simba step)")
    parser.add_argument("--alpha", type=number, default=None, help="PGD step size (default eps/4, pgd-l2 eps/5)")
    parser.add_argument("--steps", type=positive_int, default=None,
                        help="iterations (PGD 10, CW 100) or SimBA's query budget per image (1000)")
    parser.add_argument("--restarts", type=positive_int, default=1, help="PGD random restarts")
    parser.add_argument("--c", type=number, default=1.0, help="CW trade-off constant (initial, per image)")
    parser.add_argument("--binary-search-steps", type=positive_int, default=5,
                        help="CW: rounds of Carlini-Wagner's binary search over c (1 = fixed c; default 5)")
    parser.add_argument("--kappa", type=number, default=0.0, help="CW confidence margin")
    parser.add_argument("--lr", type=number, default=0.01, help="CW Adam learning rate")
    parser.add_argument("--cutoff", type=positive_int, default=8, help="lfpgd: DCT bands i + j < cutoff")
    parser.add_argument("--basis", default="dct", choices=["pixel", "dct"], help="SimBA basis")
    parser.add_argument("--order", default="diagonal", choices=["random", "strided", "diagonal"], help="SimBA order")
    add_shard_flag(parser, 32)
    parser.add_argument("--log-scale", action="store_true", help="logarithmic colour scale for rct.png")
    parser.set_defaults(run=distributed_command(_attack))
