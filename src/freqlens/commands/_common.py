"""What the sub-commands of ``freqlens`` share: flag types and flags, device choice, progress, work sharing.

Flag types: :func:`number` (also ``8/255``) and :func:`positive_int`. Flags: :func:`add_dataset_flags`,
:func:`add_quiet_flag` (every command takes ``--quiet``) and :func:`add_shard_flag`. :func:`resolve_device`
turns ``--device`` into a torch device, :func:`distributed_command` runs a command on it inside a
``torchrun`` session, :func:`progress_enabled` says whether to show progress bars and
:func:`shared_among_ranks` spreads per-item work over the processes. :func:`~freqlens.data.pick_images`
(the images a command works on) lives in :mod:`freqlens.data.sampling`; its name here is kept for older
imports.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
from collections.abc import Callable, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any, TypeVar

from freqlens.data.sampling import pick_images
from freqlens.errors import FreqlensError

Item = TypeVar("Item")
Result = TypeVar("Result")


def number(text: str) -> float:
    """A float flag that also accepts fractions such as ``8/255``.

    Args:
        text: The flag's value.

    Returns:
        Its value as a float.

    Raises:
        argparse.ArgumentTypeError: ``text`` is not a number.
    """
    try:
        return float(Fraction(text.strip())) if "/" in text else float(text)
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def positive_int(text: str) -> int:
    """A positive integer flag.

    Args:
        text: The flag's value.

    Returns:
        Its value.

    Raises:
        argparse.ArgumentTypeError: ``text`` is not an integer, or not positive.
    """
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
    return value


def resolve_device(name: str | None) -> Any:
    """The ``torch.device`` of ``--device``: ``None`` → CUDA when available, else CPU.

    Raises:
        FreqlensError: An unknown device name, or CUDA requested without CUDA.
    """
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


def distributed_command(body: Callable[[argparse.Namespace, Any], int]) -> Callable[[argparse.Namespace], int]:
    """The handler of a command that can run under ``torchrun``.

    Args:
        body: The command itself, called as ``body(args, device)``.

    Returns:
        A handler (for ``set_defaults(run=...)``) that resolves ``--device`` (each rank its own GPU under
        ``torchrun``) and calls ``body`` inside a :func:`freqlens.distributed.session` on that device.
    """

    @functools.wraps(body)
    def run(args: argparse.Namespace) -> int:
        from freqlens import distributed

        device = distributed.local_device(resolve_device(args.device))
        with distributed.session(device):
            return body(args, device)

    return run


def add_dataset_flags(parser: argparse.ArgumentParser) -> None:
    """``--dataset`` (required), ``--data-dir`` and ``--download``."""
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


def add_image_run_flags(parser: argparse.ArgumentParser, *, n_images: int, n_images_help: str | None = None,
                        batch_help: str = "max images per forward pass") -> None:
    """The flags of every command that runs a model on images drawn from a dataset (explain, evaluate, attack,
    analyze), defined once: the model (:func:`freqlens.commands._model.add_model_flags`), the dataset
    (:func:`add_dataset_flags`), ``--split``, ``--n-images``, ``--batch-size``, ``--seed``, ``--device``,
    ``--out`` and ``--quiet``.

    Args:
        parser: the sub-command's parser.
        n_images: the default of ``--n-images``.
        n_images_help: its help text (default none).
        batch_help: the help of ``--batch-size``.
    """
    from freqlens.commands._model import add_model_flags

    add_model_flags(parser)
    add_dataset_flags(parser)
    parser.add_argument("--split", default="test")
    parser.add_argument("--n-images", type=positive_int, default=n_images, help=n_images_help)
    parser.add_argument("--batch-size", type=positive_int, default=None, help=batch_help)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default=None)
    parser.add_argument("--out", type=Path, required=True)
    add_quiet_flag(parser)


def images_needed(args: argparse.Namespace) -> int:
    """Images a FORGrad command draws: ``--n-images``, plus ``--calibration`` held-out ones with ``--forgrad auto``.

    Args:
        args: the parsed flags of ``explain`` or ``evaluate``.

    Returns:
        The count.
    """
    return args.n_images + (args.calibration if args.forgrad == "auto" else 0)


def dataset_from_args(args: argparse.Namespace, needed: int | None = None) -> Any:
    """The dataset named by the flags of :func:`add_image_run_flags` (``--dataset``, ``--split``,
    ``--data-dir``, ``--download``), loaded with a progress bar unless ``--quiet``.

    Args:
        args: the parsed flags.
        needed: when given, the fewest images the split must hold.

    Returns:
        The :class:`freqlens.data.ImageDataset`.

    Raises:
        FreqlensError: the split holds fewer than ``needed`` images (and any error of loading it).
    """
    from freqlens.data import load_dataset

    dataset = load_dataset(args.dataset, split=args.split, root=args.data_dir, download=args.download,
                           progress=progress_enabled(args))
    if needed is not None and len(dataset) < needed:
        raise FreqlensError(f"{args.dataset} ({args.split}) has {len(dataset)} images; {needed} are needed")
    return dataset


def forgrad_arg(text: str) -> float | str | None:
    """``--forgrad`` of every command: ``auto`` (σ* searched on held-out images), ``none`` (no FORGrad) or a
    positive σ in cycles per image (fractions such as ``32/3`` accepted).

    Args:
        text: the flag's value.

    Returns:
        ``"auto"``, ``None`` or the σ.

    Raises:
        argparse.ArgumentTypeError: anything else.
    """
    value = text.strip().lower()
    if value in ("auto", "none"):
        return None if value == "none" else "auto"
    sigma = number(text)
    if not sigma > 0:
        raise argparse.ArgumentTypeError(f"--forgrad takes auto, none or a positive σ, got {text!r}")
    return sigma


FORGRAD_MODE_HELP = ("FORGrad pipeline: magnitude (as published: |low-pass(|channel mean|)|, one map per image) or "
                     "signed (per-channel low-pass of the signed maps, seed 001 Prop. 3.1); the original maps they "
                     "are compared with use the same convention")
"""The help of ``--forgrad-mode``, the same on every command."""


def add_forgrad_flags(parser: argparse.ArgumentParser, *, default: str | None, forgrad_help: str,
                      calibration: int, calibration_help: str) -> None:
    """The FORGrad flags of ``explain`` and ``evaluate``: ``--forgrad`` (:func:`forgrad_arg`), ``--forgrad-mode``
    and ``--calibration`` (the held-out images of ``--forgrad auto``).

    Args:
        parser: the sub-command's parser.
        default: the default of ``--forgrad`` (``"auto"`` or ``None``).
        forgrad_help: its help text.
        calibration: the default of ``--calibration``.
        calibration_help: its help text.
    """
    parser.add_argument("--forgrad", type=forgrad_arg, default=default, metavar="auto|none|SIGMA", help=forgrad_help)
    parser.add_argument("--forgrad-mode", default="magnitude", choices=["magnitude", "signed"], help=FORGRAD_MODE_HELP)
    parser.add_argument("--calibration", type=positive_int, default=calibration, help=calibration_help)


@dataclasses.dataclass(frozen=True)
class ImageDraw:
    """The model and the images of a FORGrad command (``explain``, ``evaluate``), from its flags.

    Attributes:
        model: the model of ``--model`` (and its flags), on the device.
        record: its description for the command's JSON.
        images: the ``--n-images`` images of the ``--seed`` draw, on the device.
        labels: their labels.
        calibration: with ``--forgrad auto``, the ``--calibration`` held-out images of the same draw (disjoint
            from ``images``), else ``None``.
    """

    model: Any
    record: dict[str, Any]
    images: Any
    labels: Any
    calibration: Any

    @property
    def needed(self) -> int:
        """Images drawn in all (:func:`images_needed`)."""
        return len(self.images) + (0 if self.calibration is None else len(self.calibration))


def draw_images(args: argparse.Namespace, device: Any) -> ImageDraw:
    """Load the model and the dataset of a FORGrad command's flags and draw its images.

    Args:
        args: the parsed flags of ``explain`` or ``evaluate``.
        device: the torch device of the run.

    Returns:
        The model, its record, the images and, with ``--forgrad auto``, the held-out images.

    Raises:
        FreqlensError: the model or the dataset cannot be loaded, or the split holds too few images.
    """
    from freqlens.commands._model import model_from_args

    model, record = model_from_args(args, device)
    dataset = dataset_from_args(args, images_needed(args))
    images, labels = pick_images(dataset, args.n_images, args.seed, device)
    calibration = None
    if args.forgrad == "auto":
        calibration, _ = pick_images(dataset, args.calibration, args.seed, device, skip=args.n_images)
    return ImageDraw(model, record, images, labels, calibration)


def add_shard_flag(parser: argparse.ArgumentParser, default: int, what: str = "results") -> None:
    """``--shard-size``: images per work unit (the unit shared among torchrun processes and of random
    seeding)."""
    parser.add_argument("--shard-size", type=positive_int, default=default,
                        help="images per work unit: the unit shared among torchrun processes and of random "
                             f"seeding ({what} depend on it, not on the number of processes; default {default})")


def shared_among_ranks(items: Sequence[Item], work: Callable[[Item], Result]) -> list[Result]:
    """``[work(item) for item in items]``, each item worked on by one process under ``torchrun`` (round-robin:
    item ``i`` by rank ``i % world size``) and the results gathered in item order on every rank.

    Args:
        items: What to work on.
        work: The work of one item; its result must pickle (tensors on the CPU).

    Returns:
        The results in the order of ``items``, on every rank.

    Raises:
        FreqlensError: ``work`` raised one on some rank (every rank raises it, see
            :func:`freqlens.distributed.run_everywhere`).
    """
    from freqlens import distributed

    def step() -> list[tuple[int, Result]]:
        return [(index, work(item)) for index, item in distributed.shard(list(enumerate(items)))]

    return distributed.gather_ordered(distributed.run_everywhere(step))
