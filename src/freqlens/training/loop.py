"""The training loop: seedable, resumable bit for bit, with atomic checkpoints.

``train`` runs ``epochs`` epochs of mini-batch training (cross-entropy, Adam by default as in
seed 000: lr 1e-3, batch 64) in which a :class:`~freqlens.training.modes.TrainingMode` chooses the
batch the optimiser step sees, validates after each epoch, and (with ``out_dir``) writes
``best.pt``, ``last.pt`` and ``history.json`` atomically after every epoch
(:mod:`freqlens.training.checkpoints`); then ``on_epoch_end(entry)`` is called. ``resume=True`` continues
from ``out_dir/last.pt`` (weights, optimizer, history, best accuracy) with epoch + 1 .. ``epochs``.

Reproducibility: every random draw of epoch ``e`` (shuffling, augmentation, the mode's noise, and
torch's global RNG for dropout) comes from generators seeded from ``(seed, e)`` alone
(:mod:`freqlens.training.seeding`), so an epoch does not depend on what ran before it and ``resume=True``
after a crash gives the same weights as an uninterrupted run. The global RNG is forked per epoch, so the
caller's global RNG state is left as it was (checkpoints store it as ``rng_state``; a resumed run restores
it). The initial weights are the caller's business: call ``torch.manual_seed(seed)``
before building the model. Float results are bit-identical only with the same device, torch build
and number of threads (``torch.set_num_threads``).

Distributed (``torchrun``, after :func:`freqlens.distributed.init`): the model is wrapped in
DistributedDataParallel; every rank draws the same per-epoch permutation, cuts the same global batches
of ``batch_size`` images and takes its contiguous share of each (per-rank batch = global / world size,
sizes differing by at most one image). Each rank's loss is its *sum* scaled by ``world / global batch``,
so DDP's gradient averaging gives the gradient of the mean loss over the global batch, as in one
process, even for uneven shares; a last global batch smaller than ``2 × world`` images is merged into
the previous one (no rank gets fewer than two images). Augmentation, the mode's noise / attack starts
and dropout use per-rank streams (same distribution, other draws than one process); BatchNorm statistics
are computed per rank on its share and rank 0's running statistics are kept (broadcast after each
epoch). Validation and VII are sharded over the ranks and summed. Rank 0 writes the checkpoints; the
history is the same on every rank and ``on_epoch_end`` is called on every rank.

The pieces: :mod:`~freqlens.training.config` (settings, optimiser, schedule, model checks),
:mod:`~freqlens.training.epoch` (one epoch, validation), :mod:`~freqlens.training.checkpoints` (files,
resume), :mod:`~freqlens.training.seeding` (random streams).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from freqlens import distributed
from freqlens.data.dataset import mean_image as mean_image_of
from freqlens.errors import TrainingError
from freqlens.training.batches import TensorData, as_tensor_data
from freqlens.training.checkpoints import BEST, HISTORY, LAST, RunState, save_epoch, start_run
from freqlens.training.config import (
    LR_SCHEDULES,
    OPTIMIZERS,
    SGD_MOMENTUM,
    TrainSettings,
    check_positive_int,
    check_settings,
    epoch_lr,
    make_optimizer,
    probe,
    resolve_device,
)
from freqlens.training.epoch import (
    NonFiniteLoss,
    broadcast_buffers,
    evaluate_data,
    train_epoch,
    validation_vii,
)
from freqlens.training.modes import TrainingMode, mode_name
from freqlens.training.seeding import epoch_seed, seeded_global_rng

__all__ = ["BEST", "HISTORY", "LAST", "LR_SCHEDULES", "OPTIMIZERS", "SGD_MOMENTUM", "epoch_lr", "evaluate",
           "train"]


@dataclasses.dataclass(frozen=True)
class _Run:
    """What every epoch of one :func:`train` call works with."""

    model: nn.Module
    forward: nn.Module  # the DDP wrapper of ``model`` when distributed, else ``model``
    optimizer: torch.optim.Optimizer
    train_data: TensorData
    val_data: TensorData | None
    mean_image: Tensor | None  # x̄ of the logged VII; None: VII not logged
    settings: TrainSettings
    device: torch.device


def train(model: nn.Module, train_set: Any, val_set: Any = None, mode: TrainingMode | None = None,
          epochs: int = 10, batch_size: int = 64, lr: float = 1e-3, *, optimizer: str = "adam",
          weight_decay: float = 0.0, lr_schedule: str = "constant", channels_last: bool = False,
          augment: bool | str | None = False, out_dir: str | Path | None = None, resume: bool = False,
          seed: int = 0, device: torch.device | str | None = None, eval_batch_size: int = 512,
          progress: bool = False, on_epoch_end: Callable[[dict[str, Any]], None] | None = None,
          max_batches_per_epoch: int | None = None, log_vii: bool | int = False) -> list[dict[str, Any]]:
    """Train ``model`` (in place) on ``train_set`` (module docstring: files, resume, seeding, torchrun).

    Args:
        model: The network (on ``device``, or where its parameters are).
        train_set: An :class:`~freqlens.data.ImageDataset`, an ``(images, labels)`` pair of tensors, or any
            dataset of ``(image, label)`` items with ``uint8`` or float [0, 1] ``C×H×W`` images.
        val_set: Validation data of the same kinds, evaluated after every epoch (``None``: none).
        mode: A :class:`TrainingMode` (default :class:`~freqlens.training.Standard`).
        epochs: The last epoch to train.
        batch_size: Images per optimiser step (the global batch under ``torchrun``).
        lr: The learning rate (of the first epoch).
        optimizer: ``"adam"`` or ``"sgd"`` (momentum 0.9), with ``weight_decay``.
        weight_decay: The optimiser's weight decay.
        lr_schedule: ``"constant"`` or ``"cosine"`` (:func:`epoch_lr`, set at the start of every epoch).
        channels_last: Train in the channels-last memory format (about 1.5× faster for ResNets on CPU,
            slower for tiny models; results equal up to float rounding).
        augment: ``"flip"``, ``"crop"`` (4-px zero padding), ``"flip+crop"`` (= ``True``) or ``False``.
        out_dir: Where ``best.pt``, ``last.pt`` and ``history.json`` are written after every epoch.
        resume: Continue from ``out_dir/last.pt``, bit-identical to an uninterrupted run.
        seed: Seeds every random stream of the run (not the initial weights).
        device: Default: the model's parameter device.
        eval_batch_size: Images per forward pass of the validation.
        progress: A tqdm bar per epoch on stderr; off by default, as everywhere in the library.
        on_epoch_end: Called with (a copy of) each epoch's history entry, after its files are written.
        max_batches_per_epoch: Cut every epoch after this many batches.
        log_vii: Also record the VII of seed 000 (x̄ = the training set's mean image) on the first 512
            validation images (or on ``log_vii`` images when an int) after every epoch.

    Returns:
        The history, one dict per epoch: ``epoch`` (1-based), ``train_loss``, ``train_accuracy`` (on the
            batches the optimiser saw, in train mode), ``val_loss``, ``val_accuracy``, ``val_vii``
            (``None`` when not measured), ``seconds``, ``lr``, ``mode``.

    Raises:
        ModelError: The images or labels do not fit the model (before training).
        CheckpointError: ``last.pt`` holds another model.
        TrainingError: The loss became NaN/inf (the checkpoints of the last complete epoch are kept).
    """
    settings = check_settings(
        mode, epochs=epochs, batch_size=batch_size, lr=lr, optimizer=optimizer, weight_decay=weight_decay,
        lr_schedule=lr_schedule, augment=augment, seed=seed, eval_batch_size=eval_batch_size,
        max_batches_per_epoch=max_batches_per_epoch, log_vii=log_vii, channels_last=channels_last,
        progress=progress, resume=resume, out_dir=out_dir)
    run = _prepare(model, train_set, val_set, settings, device)
    config = settings.record(run.train_data)
    out = None if out_dir is None else Path(out_dir)
    state = start_run(out, resume, settings.main, model, run.optimizer, config)
    if state.start > settings.epochs:
        return state.history
    if settings.world > 1:  # built after resuming: DDP broadcasts rank 0's weights and buffers
        run = dataclasses.replace(run, forward=_data_parallel(model, run.device))
    for epoch in range(state.start, settings.epochs + 1):
        try:
            entry = _run_epoch(run, epoch)
        except NonFiniteLoss as error:
            raise TrainingError(_non_finite_message(error, epoch, out, state, settings.lr)) from None
        improved = state.record(entry)
        if out is not None and settings.main:
            save_epoch(out, model, run.optimizer, state, config, improved)
        if settings.world > 1:
            distributed.barrier()  # the checkpoints of this epoch are complete before any rank goes on
        if on_epoch_end is not None:
            on_epoch_end(dict(entry))
    return state.history


def _prepare(model: nn.Module, train_set: Any, val_set: Any, settings: TrainSettings,
             device: torch.device | str | None) -> _Run:
    """The data, device, optimiser and x̄ of a run, after checking that the data fit the model.

    Args:
        model: The network (moved to ``device``; to channels-last when asked).
        train_set: The training data, in a form :func:`as_tensor_data` takes.
        val_set: The validation data, or ``None``.
        settings: The run's checked settings.
        device: The device asked for (``None``: the model's).

    Returns:
        The run (its ``forward`` is ``model``).

    Raises:
        ModelError: The images or labels do not fit the model.
    """
    device = resolve_device(model, device)
    train_data = as_tensor_data(train_set, "train_set")
    val_data = None if val_set is None else as_tensor_data(val_set, "val_set")
    probe(model, train_data, device, "training")
    if val_data is not None:
        probe(model, val_data, device, "validation")
    if settings.channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = make_optimizer(model, settings.optimizer, settings.lr, settings.weight_decay)
    mean_image = mean_image_of(train_data.images) if settings.vii_images and val_data is not None else None
    return _Run(model, model, optimizer, train_data, val_data, mean_image, settings, device)


def _data_parallel(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` wrapped in DistributedDataParallel (on ``device`` when it is a GPU)."""
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)


def _run_epoch(run: _Run, epoch: int) -> dict[str, Any]:
    """Train epoch ``epoch`` at its learning rate, with torch's global RNG seeded for it, then validate.

    Args:
        run: What the run works with.
        epoch: The epoch (1-based).

    Returns:
        The epoch's history entry (see :func:`train`).

    Raises:
        NonFiniteLoss: A batch's loss was NaN or infinite.
    """
    settings, model = run.settings, run.model
    started = time.perf_counter()
    for group in run.optimizer.param_groups:
        group["lr"] = epoch_lr(settings.lr, settings.schedule, epoch, settings.epochs)
    stream = "global" if settings.world == 1 else f"global/rank{settings.rank}"
    with seeded_global_rng(epoch_seed(settings.seed, epoch, stream), run.device):
        metrics, bar = train_epoch(model, run.forward, run.train_data, run.optimizer, settings, epoch, run.device)
    if settings.world > 1:
        broadcast_buffers(model)
    val_data = run.val_data
    val = None if val_data is None else evaluate_data(model, val_data, settings.eval_batch_size, run.device)
    entry = {
        "epoch": epoch,
        "train_loss": metrics["loss"],
        "train_accuracy": metrics["accuracy"],
        "val_loss": None if val is None else val["loss"],
        "val_accuracy": None if val is None else val["accuracy"],
        "val_vii": None if run.mean_image is None or val_data is None else validation_vii(
            model, val_data, run.mean_image, min(settings.vii_images, len(val_data)), settings.eval_batch_size,
            run.device),
        "seconds": time.perf_counter() - started,
        "lr": float(run.optimizer.param_groups[0]["lr"]),
        "mode": mode_name(settings.mode),
    }
    bar.set_postfix(loss=f"{entry['train_loss']:.4f}", acc=f"{entry['train_accuracy']:.4f}",
                    **({} if val is None else {"val_acc": f"{val['accuracy']:.4f}"}))
    bar.close()
    return entry


def _non_finite_message(error: NonFiniteLoss, epoch: int, out: Path | None, state: RunState, lr: float) -> str:
    """The message of a NaN / infinite loss: where, which checkpoint is kept, what to try."""
    if out is not None and state.history:
        kept = f"the last good checkpoint (epoch {state.history[-1]['epoch']}) is kept at {out / LAST}"
    elif out is not None:
        kept = f"no checkpoint was written to {out} (no epoch completed)"
    else:
        kept = "no checkpoint is kept (out_dir was not given)"
    return (f"loss became {'NaN' if math.isnan(error.value) else error.value} at epoch {epoch}, batch "
            f"{error.batch}; {kept}; try a lower learning rate (lr={lr:g})")


def evaluate(model: nn.Module, dataset: Any, batch_size: int = 512, device: torch.device | str | None = None,
             *, progress: bool = False) -> dict[str, float]:
    """Mean cross-entropy ``loss`` and ``accuracy`` of ``model`` on ``dataset`` (eval mode, no gradients;
    the model's train/eval flags are restored).

    Args:
        model: The model.
        dataset: As ``train_set`` of :func:`train`.
        batch_size: Images per forward pass.
        device: Default: the model's parameter device.
        progress: A tqdm bar on stderr.

    Returns:
        ``{"loss", "accuracy"}``.

    Raises:
        ModelError: The images or labels do not fit the model.
    """
    batch_size = check_positive_int("batch_size", batch_size)
    device = resolve_device(model, device)
    data = as_tensor_data(dataset, "dataset")
    probe(model, data, device, "evaluation")
    return evaluate_data(model, data, batch_size, device, progress=progress)
