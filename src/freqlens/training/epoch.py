"""One epoch of training, and the validation after it.

In one process an epoch steps on the mean cross-entropy of each batch. Under ``torchrun`` every rank draws
the same permutation, cuts the same global batches and takes its contiguous share of each; its loss is its
*sum* scaled by ``world / global batch`` so that DDP's gradient averaging gives the gradient of the global
batch's mean loss (module :mod:`freqlens.training.loop`). The two loops stay apart: the distributed
scaling rounds differently from the plain mean, and single-process results must not move.
"""

from __future__ import annotations

import math
import sys
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from freqlens import distributed
from freqlens.errors import TrainingError
from freqlens.metrics import vii as vii_metric
from freqlens.metrics.vii import vii_per_image
from freqlens.training.augment import augment_batch
from freqlens.training.batches import TensorData, split_batches
from freqlens.training.config import TrainSettings
from freqlens.training.modes import TrainingMode, evaluating, mode_name
from freqlens.training.seeding import epoch_generator


class NonFiniteLoss(Exception):
    """The loss of a batch was NaN or infinite.

    Args:
        batch: The batch's number in its epoch (1-based).
        value: The loss.
    """

    def __init__(self, batch: int, value: float) -> None:
        super().__init__(batch, value)
        self.batch, self.value = batch, value


def checked_transform(mode: TrainingMode, model: nn.Module, x: Tensor, y: Tensor,
                      generator: torch.Generator) -> Tensor:
    """``mode.transform(model, x, y)`` detached: the batch the optimiser step sees.

    Args:
        mode: The training mode.
        model: The model trained.
        x: The (augmented) batch.
        y: Its labels.
        generator: The epoch's stream of the mode.

    Returns:
        The transformed batch, of the shape of ``x``.

    Raises:
        TrainingError: The mode returned something else than a tensor of the shape of ``x``.
    """
    x_train = mode.transform(model, x, y, generator=generator)
    if not isinstance(x_train, Tensor) or x_train.shape != x.shape:
        got = tuple(x_train.shape) if isinstance(x_train, Tensor) else type(x_train).__name__
        raise TrainingError(f"training mode {mode_name(mode)!r} returned {got} for a batch of shape "
                            f"{tuple(x.shape)}; transform must keep the shape")
    return x_train.detach()


def _epoch_bar(batches: int, epoch: int, settings: TrainSettings) -> Any:
    """The tqdm bar of an epoch (stderr; shown on rank 0 when ``settings.progress``)."""
    shown = settings.progress and settings.main
    return tqdm(total=batches, desc=f"epoch {epoch}/{settings.epochs}", disable=not shown, file=sys.stderr,
                unit="batch", dynamic_ncols=True)


def _merge_small(batches: list[Tensor], minimum: int) -> list[Tensor]:
    """A last batch of fewer than ``minimum`` indices merged into the previous one."""
    if len(batches) > 1 and batches[-1].numel() < minimum:
        batches[-2:] = [torch.cat(batches[-2:])]
    return batches


def train_epoch(model: nn.Module, forward: nn.Module, data: TensorData, optimizer: torch.optim.Optimizer,
                settings: TrainSettings, epoch: int, device: torch.device) -> tuple[dict[str, float], Any]:
    """One epoch of training, in one process or, under ``torchrun``, on this rank's shares.

    Args:
        model: The model trained (in place).
        forward: The module that computes the training logits (the DDP wrapper of ``model`` when distributed).
        data: The training data.
        optimizer: The optimiser.
        settings: The run's settings.
        epoch: The epoch (1-based): seeds its random streams.
        device: Where the model trains.

    Returns:
        ``({"loss", "accuracy"} over the batches the optimiser saw, the epoch's open progress bar)``.

    Raises:
        NonFiniteLoss: A batch's loss was NaN or infinite (the bar is closed).
        TrainingError: The mode changed the shape of a batch.
    """
    if settings.world > 1:
        return _train_epoch_distributed(model, forward, data, optimizer, settings, epoch, device)
    seed = settings.seed
    order = torch.randperm(len(data), generator=epoch_generator(seed, epoch, "shuffle"))
    augment_generator = epoch_generator(seed, epoch, "augment")
    mode_generator = epoch_generator(seed, epoch, "mode", device)
    batches = split_batches(order, settings.batch_size, settings.max_batches)
    loss_sum, correct, seen = 0.0, 0, 0
    bar = _epoch_bar(len(batches), epoch, settings)
    model.train()
    for number, index in enumerate(batches, start=1):
        x, y = data.batch(index, device)
        x = augment_batch(x, settings.augment, augment_generator)
        x_train = checked_transform(settings.mode, model, x, y, mode_generator)
        if settings.channels_last:
            x_train = x_train.contiguous(memory_format=torch.channels_last)
        model.train()  # the mode may have run the model in eval mode (e.g. an attack)
        optimizer.zero_grad(set_to_none=True)
        logits = model(x_train)
        loss = F.cross_entropy(logits, y)
        loss_value = float(loss.detach())
        if not math.isfinite(loss_value):
            bar.close()
            raise NonFiniteLoss(number, loss_value)
        loss.backward()
        optimizer.step()
        size = int(y.shape[0])
        loss_sum += loss_value * size
        correct += int((logits.detach().argmax(dim=1) == y).sum())
        seen += size
        bar.update(1)
        bar.set_postfix(loss=f"{loss_sum / seen:.4f}", acc=f"{correct / seen:.4f}", refresh=False)
    return {"loss": loss_sum / seen, "accuracy": correct / seen}, bar


def _train_epoch_distributed(model: nn.Module, forward: nn.Module, data: TensorData,
                             optimizer: torch.optim.Optimizer, settings: TrainSettings, epoch: int,
                             device: torch.device) -> tuple[dict[str, float], Any]:
    """One epoch on ``settings.world`` ranks: the global batches of one process, each rank its contiguous
    share; the loss is scaled so that DDP's gradient mean is the gradient of the global-batch mean loss;
    the reported loss / accuracy are summed over the ranks (the same on every rank)."""
    seed, world, rank = settings.seed, settings.world, settings.rank
    order = torch.randperm(len(data), generator=epoch_generator(seed, epoch, "shuffle"))
    augment_generator = epoch_generator(seed, epoch, f"augment/rank{rank}")
    mode_generator = epoch_generator(seed, epoch, f"mode/rank{rank}", device)
    batches = _merge_small(split_batches(order, settings.batch_size), 2 * world)
    batches = batches if settings.max_batches is None else batches[:settings.max_batches]
    totals = torch.zeros(3, dtype=torch.float64)  # loss sum, correct, images over all ranks
    bar = _epoch_bar(len(batches), epoch, settings)
    model.train()
    for number, index in enumerate(batches, start=1):
        share = index.tensor_split(world)[rank]
        x, y = data.batch(share, device)
        x = augment_batch(x, settings.augment, augment_generator)
        x_train = checked_transform(settings.mode, model, x, y, mode_generator)
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
            raise NonFiniteLoss(number, batch_loss)
        (loss_sum * (world / index.numel())).backward()  # DDP averages: Σ_ranks loss_sum / global batch
        optimizer.step()
        totals += stats
        bar.update(1)
        bar.set_postfix(loss=f"{float(totals[0] / totals[2]):.4f}", acc=f"{float(totals[1] / totals[2]):.4f}",
                        refresh=False)
    return {"loss": float(totals[0] / totals[2]), "accuracy": float(totals[1] / totals[2])}, bar


def broadcast_buffers(model: nn.Module) -> None:
    """Rank 0's buffers (BatchNorm running statistics) on every rank."""
    for buffer in model.buffers():
        torch.distributed.broadcast(buffer, src=0)


@torch.no_grad()
def evaluate_data(model: nn.Module, data: TensorData, batch_size: int, device: torch.device,
                  progress: bool = False, desc: str = "evaluate") -> dict[str, float]:
    """Mean cross-entropy and accuracy of ``model`` on ``data`` in eval mode (sharded over the ranks and
    summed under ``torchrun``).

    Args:
        model: The model.
        data: The images and labels.
        batch_size: Images per forward pass.
        device: Where the model runs.
        progress: A tqdm bar on stderr.
        desc: The bar's label.

    Returns:
        ``{"loss", "accuracy"}``.
    """
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


def validation_vii(model: nn.Module, data: TensorData, mean_image: Tensor, images: int, batch_size: int,
                   device: torch.device) -> float:
    """VII (seed 000) of ``model`` on the first ``images`` validation images, with their labels.

    Args:
        model: The model.
        data: The validation data.
        mean_image: x̄, the training set's mean image.
        images: How many validation images.
        batch_size: Images per pass.
        device: Where the model runs.

    Returns:
        The mean VII over the images (sharded over the ranks and summed under ``torchrun``).
    """
    if not distributed.active():
        x, y = data.batch(slice(0, images), device)
        return vii_metric(model, x, y, mean_image.to(device), batch_size=batch_size)
    share = torch.arange(images).tensor_split(distributed.world_size())[distributed.rank()]
    total = torch.zeros((), dtype=torch.float64, device=device)
    if share.numel():
        x, y = data.batch(share, device)
        total += vii_per_image(model, x, y, mean_image.to(device), batch_size).double().sum()
    return float(distributed.all_reduce_sum(total)) / images
