"""The settings of a training run, checked before anything is trained, and the checks of the model and
the data: the optimiser, the learning-rate schedule, the device, whether the images and labels fit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from freqlens import distributed
from freqlens.errors import ModelError
from freqlens.models import model_spec
from freqlens.training.augment import TrainingConfigError, parse_augment
from freqlens.training.batches import TensorData
from freqlens.training.modes import Standard, TrainingMode, describe_mode, evaluating

OPTIMIZERS = ("adam", "sgd")
LR_SCHEDULES = ("constant", "cosine")
SGD_MOMENTUM = 0.9

RESUME_KEYS = ("batch_size", "lr", "optimizer", "weight_decay", "augment", "seed", "mode_config",
               "max_batches_per_epoch", "train_samples", "image_shape", "lr_schedule", "schedule_epochs")
"""Settings that determine the trajectory: a resumed run must use the same ones."""


def check_positive_int(name: str, value: Any, minimum: int = 1) -> int:
    """``value`` when it is an int ``>= minimum`` (not a bool).

    Args:
        name: The setting's name, for the message.
        value: The value given.
        minimum: The smallest value allowed.

    Returns:
        ``value``.

    Raises:
        TrainingConfigError: Otherwise.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise TrainingConfigError(f"{name} must be an int >= {minimum}, got {value!r}")
    return value


def check_number(name: str, value: Any, positive: bool) -> float:
    """``value`` as a float when it is a finite number ``> 0`` (``positive``) or ``>= 0``.

    Args:
        name: The setting's name, for the message.
        value: The value given.
        positive: Whether 0 is refused.

    Returns:
        ``float(value)``.

    Raises:
        TrainingConfigError: Otherwise.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or (
        value <= 0 if positive else value < 0
    ):
        raise TrainingConfigError(f"{name} must be a finite number {'> 0' if positive else '>= 0'}, got {value!r}")
    return float(value)


def epoch_lr(lr: float, schedule: str, epoch: int, epochs: int) -> float:
    """The learning rate of an epoch under a schedule.

    Args:
        lr: The base learning rate.
        schedule: ``"constant"`` (``lr``) or ``"cosine"`` (Loshchilov & Hutter 2017, without restarts,
            stepped once per epoch: ``lr · (1 + cos(π (epoch − 1) / epochs)) / 2``).
        epoch: The epoch (1-based).
        epochs: The number of epochs of the schedule.

    Returns:
        The rate: ``lr`` at the first epoch, decaying towards 0 for ``"cosine"``.
    """
    if schedule == "cosine":
        return lr * 0.5 * (1.0 + math.cos(math.pi * (epoch - 1) / epochs))
    return lr


@dataclass(frozen=True)
class TrainSettings:
    """The checked settings of one :func:`~freqlens.training.train` call (see its arguments).

    Attributes:
        max_batches: ``max_batches_per_epoch``.
        schedule: ``lr_schedule``, lower case.
        augment: The augmentation's name, ``None`` for none.
        vii_images: Validation images of the VII logged per epoch (0: not logged).
        world, rank: The number of processes and this one's rank (1 and 0 in a single process).
    """

    mode: TrainingMode
    epochs: int
    batch_size: int
    lr: float
    optimizer: str
    weight_decay: float
    schedule: str
    augment: str | None
    seed: int
    eval_batch_size: int
    max_batches: int | None
    vii_images: int
    channels_last: bool
    progress: bool
    world: int
    rank: int

    @property
    def main(self) -> bool:
        """Whether this process writes the checkpoints and shows progress bars (rank 0)."""
        return self.rank == 0

    def record(self, data: TensorData) -> dict[str, Any]:
        """The ``train_config`` stored in every checkpoint (a resumed run must match its
        :data:`RESUME_KEYS`).

        Args:
            data: The training data.

        Returns:
            The settings, the mode's description (``mode_config``) and the data's size and image shape.
        """
        mode_config = describe_mode(self.mode)
        config: dict[str, Any] = {
            "epochs": self.epochs, "batch_size": self.batch_size, "lr": self.lr, "optimizer": self.optimizer,
            "weight_decay": self.weight_decay, "lr_schedule": self.schedule,
            "schedule_epochs": self.epochs if self.schedule != "constant" else None,
            "augment": self.augment or "none", "seed": self.seed,
            "mode": mode_config["name"], "mode_config": mode_config,
            "max_batches_per_epoch": self.max_batches, "train_samples": len(data),
            "image_shape": list(data.image_shape),
        }
        if self.world > 1:
            config["world_size"] = self.world
        return config


def _choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    """``value`` stripped and lower-cased when it is one of ``choices``; :class:`TrainingConfigError` otherwise."""
    chosen = str(value).strip().lower()
    if chosen not in choices:
        raise TrainingConfigError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return chosen


def check_settings(mode: TrainingMode | None, *, epochs: Any, batch_size: Any, lr: Any, optimizer: Any,
                   weight_decay: Any, lr_schedule: Any, augment: bool | str | None, seed: int,
                   eval_batch_size: Any, max_batches_per_epoch: Any, log_vii: bool | int, channels_last: bool,
                   progress: bool, resume: bool, out_dir: str | Path | None) -> TrainSettings:
    """The arguments of :func:`~freqlens.training.train` checked, in its order (the first bad one is named).

    Args:
        mode: The training mode (``None``: :class:`Standard`); the others as in ``train``.

    Returns:
        The checked settings, with this process's world size and rank.

    Raises:
        TrainingConfigError: A setting out of range, ``resume`` without ``out_dir``, or a global batch
            leaving fewer than two images per process.
    """
    mode = Standard() if mode is None else mode
    if not callable(getattr(mode, "transform", None)):
        raise TrainingConfigError(f"mode must be a TrainingMode (with a transform method), got {mode!r}")
    counts = {name: check_positive_int(name, value) for name, value in
              (("epochs", epochs), ("batch_size", batch_size), ("eval_batch_size", eval_batch_size))}
    if max_batches_per_epoch is not None:
        max_batches_per_epoch = check_positive_int("max_batches_per_epoch", max_batches_per_epoch)
    lr = check_number("lr", lr, positive=True)
    weight_decay = check_number("weight_decay", weight_decay, positive=False)
    optimizer = _choice("optimizer", optimizer, OPTIMIZERS)
    schedule = _choice("lr_schedule", lr_schedule, LR_SCHEDULES)
    augment_kind = parse_augment(augment)
    vii_images = 0 if log_vii is False else (512 if log_vii is True else check_positive_int("log_vii", log_vii))
    seed = int(seed)
    if resume and out_dir is None:
        raise TrainingConfigError("resume=True needs the out_dir of the interrupted run")
    world, rank = distributed.world_size(), distributed.rank()
    if world > 1 and counts["batch_size"] < 2 * world:
        raise TrainingConfigError(f"batch_size={batch_size} is the global batch; with {world} processes it must "
                                  f"be >= {2 * world} (at least two images per process)")
    return TrainSettings(mode=mode, lr=lr, optimizer=optimizer, weight_decay=weight_decay, schedule=schedule,
                         augment=augment_kind, seed=seed, max_batches=max_batches_per_epoch,
                         vii_images=vii_images, channels_last=channels_last, progress=progress, world=world,
                         rank=rank, **counts)


def model_name(model: nn.Module) -> str:
    """How messages name ``model``: its zoo name (quoted) or ``the <class name>``."""
    try:
        return repr(model_spec(model)["name"])
    except ModelError:
        return f"the {type(model).__name__}"


def make_optimizer(model: nn.Module, name: str, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """Adam or SGD (momentum :data:`SGD_MOMENTUM`) over the trainable parameters of ``model``.

    Args:
        model: The model trained.
        name: ``"adam"`` or ``"sgd"``.
        lr: The learning rate.
        weight_decay: The weight decay.

    Returns:
        The optimiser.

    Raises:
        TrainingConfigError: The model has no trainable parameter.
    """
    parameters = [p for p in model.parameters() if p.requires_grad]
    if not parameters:
        raise TrainingConfigError(f"the model {model_name(model)} has no trainable parameters")
    if name == "adam":
        return torch.optim.Adam(parameters, lr=lr, weight_decay=weight_decay)
    return torch.optim.SGD(parameters, lr=lr, momentum=SGD_MOMENTUM, weight_decay=weight_decay)


def resolve_device(model: nn.Module, device: torch.device | str | None) -> torch.device:
    """The device a run uses.

    Args:
        model: The model (moved to ``device`` when one is given).
        device: The device asked for, or ``None``.

    Returns:
        ``device``, or the device of the model's parameters (CPU for a model without any) when ``None``.
    """
    if device is None:
        parameter = next(iter(model.parameters()), None)
        return parameter.device if parameter is not None else torch.device("cpu")
    device = torch.device(device)
    model.to(device)
    return device


def probe(model: nn.Module, data: TensorData, device: torch.device, what: str) -> int:
    """One eval-mode forward on two images of ``data``.

    Args:
        model: The model.
        data: The images and labels.
        device: Where the model runs.
        what: What the data is, for the messages (``"training"``, ``"validation"``...).

    Returns:
        The number of outputs of the model.

    Raises:
        ModelError: The model cannot take the images, does not return ``B×classes`` logits, or has fewer
            outputs than the labels need.
    """
    x, _ = data.batch(slice(0, 2), device)
    shape = "×".join(map(str, data.image_shape))
    prefix = f"the {what} images ({shape}, {len(data)} images) do not fit the model {model_name(model)}"
    try:
        with evaluating(model), torch.no_grad():
            logits = model(x)
    except ModelError as error:
        raise ModelError(f"{prefix}: {error}") from error
    except (RuntimeError, ValueError, IndexError) as error:
        detail = " ".join(str(error).split())[:300]
        raise ModelError(f"{prefix} (wrong image size or number of channels?): {detail}") from error
    if not isinstance(logits, Tensor) or logits.dim() != 2 or logits.shape[0] != x.shape[0]:
        got = tuple(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__
        raise ModelError(f"the model {model_name(model)} must return B×classes logits; got {got} for a "
                         f"batch of {x.shape[0]} {what} images")
    outputs = int(logits.shape[1])
    top = int(data.labels.max())
    if top >= outputs:
        raise ModelError(
            f"the {what} labels go up to {top} but the model {model_name(model)} has {outputs} outputs; "
            f"build it with num_classes={top + 1} (or more)"
        )
    return outputs
