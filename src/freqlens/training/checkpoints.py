"""The files of a training run in ``out_dir``, written atomically after every epoch: ``best.pt`` (when the
validation accuracy improves; every epoch without validation data), then ``last.pt``, then
``history.json``; and resuming a run from its ``last.pt``.
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from freqlens.errors import CheckpointError, ModelError
from freqlens.models import checkpoint_dict, load_state
from freqlens.models.checkpoint import FORMAT_KEY, FORMAT_VERSION
from freqlens.training.augment import TrainingConfigError
from freqlens.training.config import RESUME_KEYS
from freqlens.utils import atomic_save_torch, atomic_write_json

LAST, BEST, HISTORY = "last.pt", "best.pt", "history.json"


@dataclass
class RunState:
    """Where a run stands.

    Attributes:
        history: One entry per completed epoch.
        best_accuracy: The best validation accuracy so far (``None`` without validation data).
        best_epoch: The epoch of ``best.pt``.
        start: The next epoch to train (1-based).
    """

    history: list[dict[str, Any]] = field(default_factory=list)
    best_accuracy: float | None = None
    best_epoch: int | None = None
    start: int = 1

    def record(self, entry: dict[str, Any]) -> bool:
        """Append an epoch's history ``entry``; whether it is the best epoch so far (always, without
        validation data)."""
        self.history.append(entry)
        accuracy = entry["val_accuracy"]
        improved = accuracy is None or self.best_accuracy is None or accuracy > self.best_accuracy
        if improved:
            self.best_accuracy, self.best_epoch = accuracy, entry["epoch"]
        return improved


def checkpoint_payload(model: nn.Module, **extra: Any) -> dict[str, Any]:
    """:func:`freqlens.models.checkpoint_dict` of ``model`` with ``extra``; a model not built by
    ``freqlens.models.build`` is stored under its class name (resumable, but :func:`freqlens.models.load`
    cannot rebuild it)."""
    try:
        return checkpoint_dict(model, **extra)
    except ModelError:
        return {FORMAT_KEY: FORMAT_VERSION, "model": {"name": type(model).__name__, "kwargs": {}},
                "model_state": model.state_dict(), **extra}


def resume_state(model: nn.Module, optimizer: torch.optim.Optimizer, path: Path,
                 config: dict[str, Any]) -> dict[str, Any]:
    """Load ``path`` (a ``last.pt``) into ``model`` and ``optimizer``.

    Args:
        model: The model, of the checkpoint's architecture.
        optimizer: Its optimiser.
        path: The checkpoint.
        config: The ``train_config`` of the run that resumes.

    Returns:
        The checkpoint dict.

    Raises:
        CheckpointError: The checkpoint holds another model, was not written by ``train`` or its optimiser
            state does not fit.
        TrainingConfigError: It was trained with other settings (:data:`RESUME_KEYS`).
    """
    checkpoint = load_state(model, path, map_location="cpu")  # CheckpointError naming both architectures
    missing = [key for key in ("optimizer_state", "epoch", "history", "train_config") if key not in checkpoint]
    if missing:
        raise CheckpointError(f"checkpoint {path} was not written by freqlens.training.train "
                              f"(no {', '.join(missing)}); cannot resume from it")
    saved = checkpoint["train_config"]
    differing = [f"{key}: {saved.get(key)!r} in the checkpoint, {config[key]!r} now"
                 for key in RESUME_KEYS if key in saved and saved[key] != config[key]]
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


def start_run(out: Path | None, resume: bool, main: bool, model: nn.Module, optimizer: torch.optim.Optimizer,
              config: dict[str, Any]) -> RunState:
    """The state a run starts from: fresh, or that of ``out/last.pt`` when resuming (weights, optimiser,
    history, best accuracy and torch's global RNG state restored). Creates ``out``.

    Args:
        out: The run's folder (``None``: no files).
        resume: Continue from ``out/last.pt`` when it exists (a warning when it does not).
        main: Whether this process warns (rank 0).
        model: The model.
        optimizer: Its optimiser.
        config: The run's ``train_config``.

    Returns:
        The run state; a fresh one warns when ``out`` already holds an earlier run's checkpoints.
    """
    if out is None:
        return RunState()
    out.mkdir(parents=True, exist_ok=True)
    last_path = out / LAST
    if resume and last_path.exists():
        checkpoint = resume_state(model, optimizer, last_path, config)
        rng_state = checkpoint.get("rng_state")
        if isinstance(rng_state, Tensor) and rng_state.dtype == torch.uint8:
            torch.set_rng_state(rng_state)
        return RunState([dict(entry) for entry in checkpoint["history"]], checkpoint.get("best_val_accuracy"),
                        checkpoint.get("best_epoch"), int(checkpoint["epoch"]) + 1)
    if resume:
        if main:  # stacklevel 3: the caller of train
            warnings.warn(f"resume: {last_path} not found; training from scratch", RuntimeWarning, stacklevel=3)
    elif last_path.exists() and main:
        warnings.warn(f"{out} already holds checkpoints of an earlier run; they will be overwritten "
                      "(pass resume=True to continue that run instead)", RuntimeWarning, stacklevel=3)
    return RunState()


def save_epoch(out: Path, model: nn.Module, optimizer: torch.optim.Optimizer, state: RunState,
               config: dict[str, Any], improved: bool) -> None:
    """Write the files of the epoch just recorded in ``state``: ``best.pt`` when ``improved``, then
    ``last.pt``, then ``history.json`` (best before last: a crash in between re-runs the epoch on resume
    and rewrites ``best.pt``).

    Args:
        out: The run's folder.
        model: The model.
        optimizer: Its optimiser.
        state: The run state after the epoch.
        config: The run's ``train_config``.
        improved: Whether the epoch is the best so far.
    """
    extra = {
        "optimizer_state": optimizer.state_dict(), "epoch": state.history[-1]["epoch"],
        "history": copy.deepcopy(state.history), "best_val_accuracy": state.best_accuracy,
        "best_epoch": state.best_epoch, "train_config": dict(config), "mode": config["mode_config"],
        "rng_state": torch.get_rng_state(),
    }
    if improved:
        atomic_save_torch(out / BEST, checkpoint_payload(model, **extra))
    atomic_save_torch(out / LAST, checkpoint_payload(model, **extra))
    atomic_write_json(out / HISTORY, state.history)
