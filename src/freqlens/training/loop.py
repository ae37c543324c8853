"""The training loop: seedable, resumable bit for bit, with atomic checkpoints.

``train`` runs ``epochs`` epochs of mini-batch training (cross-entropy, Adam by default as in
seed 000: lr 1e-3, batch 64) in which a :class:`~freqlens.training.modes.TrainingMode` chooses the
batch the optimiser step sees, validates after each epoch, and (with ``out_dir``) writes
``best.pt``, ``last.pt`` and ``history.json`` atomically after every epoch.

Reproducibility: every random draw of epoch ``e`` (shuffling, augmentation, the mode's noise, and
torch's global RNG for dropout) comes from generators seeded from ``(seed, e)`` alone, so an epoch
does not depend on what ran before it and ``resume=True`` after a crash gives the same weights as an
uninterrupted run. The global RNG is forked per epoch, so the caller's global RNG state is left as it
was (checkpoints store it as ``rng_state``; a resumed run restores it). The initial weights are the caller's business: call ``torch.manual_seed(seed)``
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
epoch). Validation and VII are sharded over the ranks and summed. Rank 0 writes the checkpoints.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import math
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from freqlens import distributed
from freqlens.data.dataset import mean_image as mean_image_of
from freqlens.errors import CheckpointError, ModelError, TrainingError
from freqlens.metrics import vii as vii_metric
from freqlens.metrics.vii import vii_per_image
from freqlens.models import checkpoint_dict, load_state, model_spec
from freqlens.models.checkpoint import FORMAT_KEY, FORMAT_VERSION
from freqlens.training.augment import TrainingConfigError, augment_batch, parse_augment
from freqlens.training.batches import TensorData, as_tensor_data, split_batches
from freqlens.training.modes import Standard, TrainingMode, describe_mode, evaluating, mode_name
from freqlens.utils import atomic_save_torch, atomic_write_json

OPTIMIZERS = ("adam", "sgd")
LR_SCHEDULES = ("constant", "cosine")
SGD_MOMENTUM = 0.9
LAST, BEST, HISTORY = "last.pt", "best.pt", "history.json"

#: settings that determine the trajectory: a resumed run must use the same ones
_RESUME_KEYS = ("batch_size", "lr", "optimizer", "weight_decay", "augment", "seed", "mode_config",
                "max_batches_per_epoch", "train_samples", "image_shape", "lr_schedule", "schedule_epochs")


# --------------------------------------------------------------------------------------------- helpers
def _stream_seed(seed: int, epoch: int, stream: str) -> int:
    """A 63-bit seed for one random stream of one epoch, a function of ``(seed, epoch, stream)`` only."""
    digest = hashlib.blake2b(f"freqlens.train/{seed}/{epoch}/{stream}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


def _generator(seed: int, epoch: int, stream: str, device: torch.device | str = "cpu") -> torch.Generator:
    generator = torch.Generator(device=device)
    generator.manual_seed(_stream_seed(seed, epoch, stream))
    return generator


@contextlib.contextmanager
def _seeded_global_rng(seed: int, device: torch.device) -> Iterator[None]:
    """Torch's global RNG (used by dropout) seeded with ``seed`` inside; the caller's state restored after."""
    cuda = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        torch.default_generator.manual_seed(seed)
        if cuda:
            with torch.cuda.device(device):
                torch.cuda.manual_seed(seed)
        yield


def _model_name(model: nn.Module) -> str:
    try:
        return repr(model_spec(model)["name"])
    except ModelError:
        return f"the {type(model).__name__}"


def _resolve_device(model: nn.Module, device: torch.device | str | None) -> torch.device:
    if device is None:
        parameter = next(iter(model.parameters()), None)
        return parameter.device if parameter is not None else torch.device("cpu")
    device = torch.device(device)
    model.to(device)
    return device


def _probe(model: nn.Module, data: TensorData, device: torch.device, what: str) -> int:
    """One eval-mode forward on two images of ``data``: :class:`ModelError` if the model cannot take them
    or if a label is not among its outputs; returns the number of outputs."""
    x, _ = data.batch(slice(0, 2), device)
    shape = "×".join(map(str, data.image_shape))
    prefix = f"the {what} images ({shape}, {len(data)} images) do not fit the model {_model_name(model)}"
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
        raise ModelError(f"the model {_model_name(model)} must return B×classes logits; got {got} for a "
                         f"batch of {x.shape[0]} {what} images")
    outputs = int(logits.shape[1])
    top = int(data.labels.max())
    if top >= outputs:
        raise ModelError(
            f"the {what} labels go up to {top} but the model {_model_name(model)} has {outputs} outputs; "
            f"build it with num_classes={top + 1} (or more)"
        )
    return outputs


def _check_positive_int(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise TrainingConfigError(f"{name} must be an int >= {minimum}, got {value!r}")
    return value


def _check_number(name: str, value: Any, positive: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or (
        value <= 0 if positive else value < 0
    ):
        raise TrainingConfigError(f"{name} must be a finite number {'> 0' if positive else '>= 0'}, got {value!r}")
    return float(value)


def epoch_lr(lr: float, schedule: str, epoch: int, epochs: int) -> float:
    """The learning rate of ``epoch`` (1-based) of ``epochs``: ``lr`` for ``"constant"``; for ``"cosine"``
    (Loshchilov & Hutter 2017, without restarts, stepped once per epoch)
    ``lr · (1 + cos(π (epoch − 1) / epochs)) / 2`` — ``lr`` at the first epoch, decaying towards 0."""
    if schedule == "cosine":
        return lr * 0.5 * (1.0 + math.cos(math.pi * (epoch - 1) / epochs))
    return lr


def _make_optimizer(model: nn.Module, name: str, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    parameters = [p for p in model.parameters() if p.requires_grad]
    if not parameters:
        raise TrainingConfigError(f"the model {_model_name(model)} has no trainable parameters")
    if name == "adam":
        return torch.optim.Adam(parameters, lr=lr, weight_decay=weight_decay)
    return torch.optim.SGD(parameters, lr=lr, momentum=SGD_MOMENTUM, weight_decay=weight_decay)


def _checkpoint(model: nn.Module, **extra: Any) -> dict[str, Any]:
    """:func:`freqlens.models.checkpoint_dict`; a model not built by ``freqlens.models.build`` is stored
    under its class name (resumable, but :func:`freqlens.models.load` cannot rebuild it)."""
    try:
        return checkpoint_dict(model, **extra)
    except ModelError:
        return {FORMAT_KEY: FORMAT_VERSION, "model": {"name": type(model).__name__, "kwargs": {}},
                "model_state": model.state_dict(), **extra}


@torch.no_grad()
def _evaluate_data(model: nn.Module, data: TensorData, batch_size: int, device: torch.device,
                   progress: bool = False, desc: str = "evaluate") -> dict[str, float]:
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    indices = torch.arange(len(data))
    if distributed.active():  # each rank its contiguous share; the sums are added up below
        indices = indices.tensor_split(distributed.world_size())[distributed.rank()]
    chunks = indices.split(batch_size)
    with evaluating(model):
        for index in tqdm(chunks, desc=desc, disable=not progress, leave=False, file=sys.stderr, unit="batch"):
            x, y = data.batch(index, device)
            logits = model(x)
            loss_sum += F.cross_entropy(logits.float(), y, reduction="sum").double()
            correct += (logits.argmax(dim=1) == y).sum()
    if distributed.active():
        loss_sum, correct = distributed.all_reduce_sum(loss_sum), distributed.all_reduce_sum(correct)
    n = len(data)
    return {"loss": float(loss_sum) / n, "accuracy": int(correct) / n}


def _validation_vii(model: nn.Module, data: TensorData, mean_image: Tensor, images: int, batch_size: int,
                    device: torch.device) -> float:
    """VII (seed 000) of ``model`` on the first ``images`` validation images, with their labels."""
    if not distributed.active():
        x, y = data.batch(slice(0, images), device)
        return vii_metric(model, x, y, mean_image.to(device), batch_size=batch_size)
    share = torch.arange(images).tensor_split(distributed.world_size())[distributed.rank()]
    total = torch.zeros((), dtype=torch.float64, device=device)
    if share.numel():
        x, y = data.batch(share, device)
        total += vii_per_image(model, x, y, mean_image.to(device), batch_size).double().sum()
    return float(distributed.all_reduce_sum(total)) / images


class _NonFiniteLoss(Exception):
    def __init__(self, batch: int, value: float) -> None:
        super().__init__(batch, value)
        self.batch, self.value = batch, value


def _merge_small(batches: list[Tensor], minimum: int) -> list[Tensor]:
    """A last batch of fewer than ``minimum`` indices merged into the previous one."""
    if len(batches) > 1 and batches[-1].numel() < minimum:
        batches[-2:] = [torch.cat(batches[-2:])]
    return batches


def _train_epoch(model: nn.Module, data: TensorData, mode: TrainingMode, optimizer: torch.optim.Optimizer,
                 *, epoch: int, epochs: int, seed: int, batch_size: int, augment: str | None,
                 max_batches: int | None, device: torch.device, progress: bool,
                 forward: nn.Module | None = None, channels_last: bool = False) -> tuple[dict[str, float], Any]:
    """One epoch of training; returns ``({"loss", "accuracy"}, progress bar)``. ``forward``: the module
    that computes the training logits (the DDP wrapper of ``model`` when distributed)."""
    world, rank = distributed.world_size(), distributed.rank()
    if world > 1:
        return _train_epoch_distributed(
            model, forward or model, data, mode, optimizer, epoch=epoch, epochs=epochs, seed=seed,
            batch_size=batch_size, augment=augment, max_batches=max_batches, device=device,
            progress=progress and rank == 0, world=world, rank=rank,
        )
    order = torch.randperm(len(data), generator=_generator(seed, epoch, "shuffle"))
    augment_generator = _generator(seed, epoch, "augment")
    mode_generator = _generator(seed, epoch, "mode", device)
    batches = split_batches(order, batch_size, max_batches)
    loss_sum, correct, seen = 0.0, 0, 0
    bar = tqdm(total=len(batches), desc=f"epoch {epoch}/{epochs}", disable=not progress, file=sys.stderr,
               unit="batch", dynamic_ncols=True)
    model.train()
    for number, index in enumerate(batches, start=1):
        x, y = data.batch(index, device)
        x = augment_batch(x, augment, augment_generator)
        x_train = mode.transform(model, x, y, generator=mode_generator)
        if not isinstance(x_train, Tensor) or x_train.shape != x.shape:
            got = tuple(x_train.shape) if isinstance(x_train, Tensor) else type(x_train).__name__
            raise TrainingError(f"training mode {mode_name(mode)!r} returned {got} for a batch of shape "
                                f"{tuple(x.shape)}; transform must keep the shape")
        x_train = x_train.detach()
        if channels_last:
            x_train = x_train.contiguous(memory_format=torch.channels_last)
        model.train()  # the mode may have run the model in eval mode (e.g. an attack)
        optimizer.zero_grad(set_to_none=True)
        logits = model(x_train)
        loss = F.cross_entropy(logits, y)
        loss_value = float(loss.detach())
        if not math.isfinite(loss_value):
            bar.close()
            raise _NonFiniteLoss(number, loss_value)
        loss.backward()
        optimizer.step()
        size = int(y.shape[0])
        loss_sum += loss_value * size
        correct += int((logits.detach().argmax(dim=1) == y).sum())
        seen += size
        bar.update(1)
        bar.set_postfix(loss=f"{loss_sum / seen:.4f}", acc=f"{correct / seen:.4f}", refresh=False)
    return {"loss": loss_sum / seen, "accuracy": correct / seen}, bar


def _checked_transform(mode: TrainingMode, model: nn.Module, x: Tensor, y: Tensor,
                       generator: torch.Generator) -> Tensor:
    x_train = mode.transform(model, x, y, generator=generator)
    if not isinstance(x_train, Tensor) or x_train.shape != x.shape:
        got = tuple(x_train.shape) if isinstance(x_train, Tensor) else type(x_train).__name__
        raise TrainingError(f"training mode {mode_name(mode)!r} returned {got} for a batch of shape "
                            f"{tuple(x.shape)}; transform must keep the shape")
    return x_train.detach()


def _train_epoch_distributed(model: nn.Module, forward: nn.Module, data: TensorData, mode: TrainingMode,
                             optimizer: torch.optim.Optimizer, *, epoch: int, epochs: int, seed: int,
                             batch_size: int, augment: str | None, max_batches: int | None,
                             device: torch.device, progress: bool, world: int,
                             rank: int) -> tuple[dict[str, float], Any]:
    """One epoch on ``world`` ranks: the global batches of one process, each rank its contiguous share;
    the loss is scaled so that DDP's gradient mean is the gradient of the global-batch mean loss; the
    reported loss / accuracy are summed over the ranks (the same on every rank)."""
    order = torch.randperm(len(data), generator=_generator(seed, epoch, "shuffle"))
    augment_generator = _generator(seed, epoch, f"augment/rank{rank}")
    mode_generator = _generator(seed, epoch, f"mode/rank{rank}", device)
    batches = _merge_small(split_batches(order, batch_size), 2 * world)
    batches = batches if max_batches is None else batches[:max_batches]
    totals = torch.zeros(3, dtype=torch.float64)  # loss sum, correct, images over all ranks
    bar = tqdm(total=len(batches), desc=f"epoch {epoch}/{epochs}", disable=not progress, file=sys.stderr,
               unit="batch", dynamic_ncols=True)
    model.train()
    for number, index in enumerate(batches, start=1):
        share = index.tensor_split(world)[rank]
        x, y = data.batch(share, device)
        x = augment_batch(x, augment, augment_generator)
        x_train = _checked_transform(mode, model, x, y, mode_generator)
        model.train()  # the mode may have run the model in eval mode (e.g. an attack)
        optimizer.zero_grad(set_to_none=True)
        logits = forward(x_train)
        loss_sum = F.cross_entropy(logits, y, reduction="sum")
        stats = torch.stack([loss_sum.detach().double(), (logits.detach().argmax(dim=1) == y).sum().double(),
                             torch.tensor(float(y.shape[0]), dtype=torch.float64, device=logits.device)])
        stats = distributed.all_reduce_sum(stats).cpu()
        batch_loss = float(stats[0] / stats[2])
        if not math.isfinite(batch_loss):  # the same decision on every rank (global sums)
            bar.close()
            raise _NonFiniteLoss(number, batch_loss)
        (loss_sum * (world / index.numel())).backward()  # DDP averages: Σ_ranks loss_sum / global batch
        optimizer.step()
        totals += stats
        bar.update(1)
        bar.set_postfix(loss=f"{float(totals[0] / totals[2]):.4f}", acc=f"{float(totals[1] / totals[2]):.4f}",
                        refresh=False)
    return {"loss": float(totals[0] / totals[2]), "accuracy": float(totals[1] / totals[2])}, bar


def _broadcast_buffers(model: nn.Module) -> None:
    """Rank 0's buffers (BatchNorm running statistics) on every rank."""
    for buffer in model.buffers():
        torch.distributed.broadcast(buffer, src=0)


def _resume_state(model: nn.Module, optimizer: torch.optim.Optimizer, path: Path,
                  config: dict[str, Any]) -> dict[str, Any]:
    """Load ``path`` (last.pt) into ``model`` and ``optimizer``; the checkpoint dict."""
    checkpoint = load_state(model, path, map_location="cpu")  # CheckpointError naming both architectures
    missing = [key for key in ("optimizer_state", "epoch", "history", "train_config") if key not in checkpoint]
    if missing:
        raise CheckpointError(f"checkpoint {path} was not written by freqlens.training.train "
                              f"(no {', '.join(missing)}); cannot resume from it")
    saved = checkpoint["train_config"]
    differing = [f"{key}: {saved.get(key)!r} in the checkpoint, {config[key]!r} now"
                 for key in _RESUME_KEYS if key in saved and saved[key] != config[key]]
    if differing:
        raise TrainingConfigError(
            f"cannot resume from {path}: it was trained with other settings ({'; '.join(differing)}); "
            "use the same settings, or another out_dir to start afresh"
        )
    try:
        optimizer.load_state_dict(checkpoint["optimizer_state"])
    except (ValueError, KeyError, RuntimeError) as error:
        raise CheckpointError(f"checkpoint {path}: its optimizer state does not fit: {error}") from error
    return checkpoint


# ------------------------------------------------------------------------------------------ public API
def train(
    model: nn.Module,
    train_set: Any,
    val_set: Any = None,
    mode: TrainingMode | None = None,
    epochs: int = 10,
    batch_size: int = 64,
    lr: float = 1e-3,
    *,
    optimizer: str = "adam",
    weight_decay: float = 0.0,
    lr_schedule: str = "constant",
    channels_last: bool = False,
    augment: bool | str | None = False,
    out_dir: str | Path | None = None,
    resume: bool = False,
    seed: int = 0,
    device: torch.device | str | None = None,
    eval_batch_size: int = 512,
    progress: bool = False,
    on_epoch_end: Callable[[dict[str, Any]], None] | None = None,
    max_batches_per_epoch: int | None = None,
    log_vii: bool | int = False,
) -> list[dict[str, Any]]:
    """Train ``model`` (in place) on ``train_set``; returns the history, one dict per epoch.

    Datasets: an :class:`~freqlens.data.ImageDataset`, an ``(images, labels)`` pair of tensors, or any
    dataset of ``(image, label)`` items with ``uint8`` or float [0, 1] ``C×H×W`` images (stacked once).
    ``mode``: a :class:`TrainingMode` (default :class:`Standard`). ``optimizer``: ``"adam"`` or
    ``"sgd"`` (momentum 0.9). ``lr_schedule``: ``"constant"`` or ``"cosine"`` (see :func:`epoch_lr`; the
    rate is set at the start of every epoch, so a resumed run follows the same schedule).
    ``channels_last``: train in the channels-last memory format (about 1.5× faster for ResNets on CPU,
    slower for tiny models; results equal up to float rounding). ``augment``: ``"flip"``, ``"crop"`` (4-px zero padding), ``"flip+crop"``
    (= ``True``) or ``False``. ``device``: default the model's parameter device.

    History entry: ``epoch`` (1-based), ``train_loss``, ``train_accuracy`` (on the batches the optimiser
    saw, in train mode), ``val_loss``, ``val_accuracy`` (``None`` without ``val_set``), ``seconds``,
    ``lr``, ``mode``.

    ``out_dir``: after every epoch, atomically, ``best.pt`` (when the validation accuracy improves;
    every epoch without ``val_set``), then ``last.pt``, then ``history.json``; then ``on_epoch_end(entry)``
    is called. ``resume=True`` continues from ``out_dir/last.pt`` (weights, optimizer, history, best
    accuracy) with epoch + 1 .. ``epochs``, bit-identical to an uninterrupted run.

    ``log_vii``: also record ``val_vii``, the VII of seed 000 (:func:`freqlens.metrics.vii`, x̄ = the
    training set's mean image) on the first 512 validation images (or on ``log_vii`` images when an
    int) after every epoch; ``None`` when off or without ``val_set``.

    ``progress``: tqdm bars on stderr (one per epoch, and the evaluation's); off by default, as everywhere
    in the library (``freqlens train`` turns them on unless ``--quiet``).

    Under ``torchrun`` (a process group joined with :func:`freqlens.distributed.init`), training is
    data-parallel (DDP) with the same global ``batch_size``; see the module docstring. The history is
    the same on every rank; only rank 0 writes files; ``on_epoch_end`` is called on every rank.

    Raises :class:`ModelError` before training if the images or labels do not fit the model,
    :class:`CheckpointError` if ``last.pt`` holds another model, :class:`TrainingError` if the loss
    becomes NaN/inf (the checkpoints of the last complete epoch are kept).
    """
    # ---- settings
    mode = Standard() if mode is None else mode
    if not callable(getattr(mode, "transform", None)):
        raise TrainingConfigError(f"mode must be a TrainingMode (with a transform method), got {mode!r}")
    epochs = _check_positive_int("epochs", epochs)
    batch_size = _check_positive_int("batch_size", batch_size)
    eval_batch_size = _check_positive_int("eval_batch_size", eval_batch_size)
    if max_batches_per_epoch is not None:
        max_batches_per_epoch = _check_positive_int("max_batches_per_epoch", max_batches_per_epoch)
    lr = _check_number("lr", lr, positive=True)
    weight_decay = _check_number("weight_decay", weight_decay, positive=False)
    optimizer_name = str(optimizer).strip().lower()
    if optimizer_name not in OPTIMIZERS:
        raise TrainingConfigError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {optimizer!r}")
    schedule = str(lr_schedule).strip().lower()
    if schedule not in LR_SCHEDULES:
        raise TrainingConfigError(f"lr_schedule must be one of {', '.join(LR_SCHEDULES)}, got {lr_schedule!r}")
    augment_kind = parse_augment(augment)
    vii_images = 0 if log_vii is False else (512 if log_vii is True else _check_positive_int("log_vii", log_vii))
    seed = int(seed)
    if resume and out_dir is None:
        raise TrainingConfigError("resume=True needs the out_dir of the interrupted run")
    world, rank = distributed.world_size(), distributed.rank()
    if world > 1 and batch_size < 2 * world:
        raise TrainingConfigError(f"batch_size={batch_size} is the global batch; with {world} processes it must "
                                  f"be >= {2 * world} (at least two images per process)")
    main = rank == 0

    # ---- data, device, model checks
    device = _resolve_device(model, device)
    train_data = as_tensor_data(train_set, "train_set")
    val_data = None if val_set is None else as_tensor_data(val_set, "val_set")
    _probe(model, train_data, device, "training")
    if val_data is not None:
        _probe(model, val_data, device, "validation")
    if channels_last:
        model.to(memory_format=torch.channels_last)
    optim = _make_optimizer(model, optimizer_name, lr, weight_decay)
    mean_image = mean_image_of(train_data.images) if vii_images and val_data is not None else None
    mode_config = describe_mode(mode)
    config: dict[str, Any] = {
        "epochs": epochs, "batch_size": batch_size, "lr": lr, "optimizer": optimizer_name,
        "weight_decay": weight_decay, "lr_schedule": schedule,
        "schedule_epochs": epochs if schedule != "constant" else None,
        "augment": augment_kind or "none", "seed": seed,
        "mode": mode_config["name"], "mode_config": mode_config,
        "max_batches_per_epoch": max_batches_per_epoch, "train_samples": len(train_data),
        "image_shape": list(train_data.image_shape),
    }
    if world > 1:
        config["world_size"] = world

    # ---- resume
    history: list[dict[str, Any]] = []
    best_accuracy: float | None = None
    best_epoch: int | None = None
    start = 1
    out = None if out_dir is None else Path(out_dir)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        last_path = out / LAST
        if resume and last_path.exists():
            checkpoint = _resume_state(model, optim, last_path, config)
            history = [dict(entry) for entry in checkpoint["history"]]
            best_accuracy = checkpoint.get("best_val_accuracy")
            best_epoch = checkpoint.get("best_epoch")
            start = int(checkpoint["epoch"]) + 1
            rng_state = checkpoint.get("rng_state")
            if isinstance(rng_state, Tensor) and rng_state.dtype == torch.uint8:
                torch.set_rng_state(rng_state)
            if start > epochs:
                return history
        elif resume and main:
            warnings.warn(f"resume: {last_path} not found; training from scratch", RuntimeWarning, stacklevel=2)
        elif last_path.exists() and main and not resume:
            warnings.warn(f"{out} already holds checkpoints of an earlier run; they will be overwritten "
                          "(pass resume=True to continue that run instead)", RuntimeWarning, stacklevel=2)

    # ---- epochs
    name = mode_name(mode)
    forward = model
    if world > 1:  # built after resuming: DDP broadcasts rank 0's weights and buffers
        from torch.nn.parallel import DistributedDataParallel

        forward = DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)
    global_stream = "global" if world == 1 else f"global/rank{rank}"
    for epoch in range(start, epochs + 1):
        started = time.perf_counter()
        for group in optim.param_groups:
            group["lr"] = epoch_lr(lr, schedule, epoch, epochs)
        try:
            with _seeded_global_rng(_stream_seed(seed, epoch, global_stream), device):
                metrics, bar = _train_epoch(
                    model, train_data, mode, optim, epoch=epoch, epochs=epochs, seed=seed, batch_size=batch_size,
                    augment=augment_kind, max_batches=max_batches_per_epoch, device=device,
                    progress=progress and main, forward=forward, channels_last=channels_last,
                )
        except _NonFiniteLoss as error:
            if out is not None and history:
                kept = f"the last good checkpoint (epoch {history[-1]['epoch']}) is kept at {out / LAST}"
            elif out is not None:
                kept = f"no checkpoint was written to {out} (no epoch completed)"
            else:
                kept = "no checkpoint is kept (out_dir was not given)"
            raise TrainingError(
                f"loss became {'NaN' if math.isnan(error.value) else error.value} at epoch {epoch}, batch "
                f"{error.batch}; {kept}; try a lower learning rate (lr={lr:g})"
            ) from None
        if world > 1:
            _broadcast_buffers(model)
        val = None if val_data is None else _evaluate_data(model, val_data, eval_batch_size, device)
        entry = {
            "epoch": epoch,
            "train_loss": metrics["loss"],
            "train_accuracy": metrics["accuracy"],
            "val_loss": None if val is None else val["loss"],
            "val_accuracy": None if val is None else val["accuracy"],
            "val_vii": None if mean_image is None else _validation_vii(
                model, val_data, mean_image, min(vii_images, len(val_data)), eval_batch_size, device),
            "seconds": time.perf_counter() - started,
            "lr": float(optim.param_groups[0]["lr"]),
            "mode": name,
        }
        bar.set_postfix(loss=f"{entry['train_loss']:.4f}", acc=f"{entry['train_accuracy']:.4f}",
                        **({} if val is None else {"val_acc": f"{val['accuracy']:.4f}"}))
        bar.close()
        history.append(entry)
        improved = val is None or best_accuracy is None or val["accuracy"] > best_accuracy
        if improved:
            best_accuracy, best_epoch = (None if val is None else val["accuracy"]), epoch
        if out is not None and main:
            extra = {
                "optimizer_state": optim.state_dict(), "epoch": epoch, "history": copy.deepcopy(history),
                "best_val_accuracy": best_accuracy, "best_epoch": best_epoch, "train_config": dict(config),
                "mode": mode_config, "rng_state": torch.get_rng_state(),
            }
            # best before last: a crash in between re-runs the epoch on resume and rewrites best.pt
            if improved:
                atomic_save_torch(out / BEST, _checkpoint(model, **extra))
            atomic_save_torch(out / LAST, _checkpoint(model, **extra))
            atomic_write_json(out / HISTORY, history)
        if world > 1:
            distributed.barrier()  # the checkpoints of this epoch are complete before any rank goes on
        if on_epoch_end is not None:
            on_epoch_end(dict(entry))
    return history


def evaluate(model: nn.Module, dataset: Any, batch_size: int = 512, device: torch.device | str | None = None,
             *, progress: bool = False) -> dict[str, float]:
    """Mean cross-entropy ``loss`` and ``accuracy`` of ``model`` on ``dataset`` (eval mode, no gradients;
    the model's train/eval flags are restored). ``dataset`` as in :func:`train`."""
    batch_size = _check_positive_int("batch_size", batch_size)
    device = _resolve_device(model, device)
    data = as_tensor_data(dataset, "dataset")
    _probe(model, data, device, "evaluation")
    return _evaluate_data(model, data, batch_size, device, progress=progress)


__all__ = ["evaluate", "train"]
