"""Trained models cached by their training settings, so that studies (and benchmarks) asking for the
same training share one model.

``cache_dir/<config_hash(settings)>/`` holds what :func:`~freqlens.training.train` writes (``best.pt``,
``last.pt``, ``history.json``: seconds per epoch, losses, accuracies) and ``settings.json`` (the key in
clear). :func:`trained_model` returns the model with its history, read from ``history.json`` when the
cache is reused.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

from torch import nn

from freqlens.data.sampling import pick_indices
from freqlens.errors import FreqlensError
from freqlens.training.checkpoints import BEST, HISTORY
from freqlens.utils import atomic_write_json

__all__ = ["TrainedModel", "config_hash", "trained_model", "training_key"]


def config_hash(config: Any) -> str:
    """16 hex digits of the SHA-256 of the canonical JSON of a dataclass or mapping.

    Args:
        config: A dataclass instance or a mapping (values JSON-able, else written with ``str``).

    Returns:
        The hash: equal configs give equal hashes, whatever the order of a mapping's keys.
    """
    data = dataclasses.asdict(config) if dataclasses.is_dataclass(config) else dict(config)
    text = json.dumps(data, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclasses.dataclass(frozen=True)
class TrainedModel:
    """A model of the cache.

    Attributes:
        model: The network with the weights of ``best.pt``.
        checkpoint: The path of ``best.pt``.
        history: The training history (:func:`~freqlens.training.train`), one entry per epoch.
        reused: Found in the cache (not trained by this call).
    """

    model: nn.Module
    checkpoint: Path
    history: list[dict[str, Any]]
    reused: bool


def training_key(name: str, dataset: str, epochs: int, seed: int, *, batch_size: int, lr: float,
                 n_train: int | None, mode: Any, augment: bool | str | None) -> dict[str, Any]:
    """The settings that key the cache (their :func:`config_hash` names the folder).

    Args:
        name, dataset, epochs, seed, batch_size, lr, n_train, mode, augment: As in :func:`trained_model`.

    Returns:
        The settings; standard training without augmentation keeps the key it had before modes existed.
    """
    from freqlens.training.modes import describe_mode

    settings: dict[str, Any] = {"model": name, "dataset": dataset, "epochs": epochs, "seed": seed,
                                "batch_size": batch_size, "lr": lr, "n_train": n_train}
    if mode is not None and describe_mode(mode)["name"] != "standard":
        settings["mode"] = describe_mode(mode)
    if augment:
        settings["augment"] = augment
    if n_train is not None:
        settings["subset"] = "random"  # not the first n_train images (the rule before pick_indices)
    return settings


def trained_model(name: str, dataset: str, epochs: int, seed: int, cache_dir: str | Path, *, batch_size: int = 64,
                  lr: float = 1e-3, n_train: int | None = None, mode: Any = None,
                  augment: bool | str | None = False, progress: bool = False) -> TrainedModel:
    """A ``name`` model trained on ``dataset``, from the cache when it holds one trained the same way.

    Args:
        name: A model name of :func:`freqlens.models.build`, sized for the dataset, its normalisation
            inside (:func:`freqlens.models.model_for_dataset`), initialised from ``seed``.
        dataset: Trained on ``load_dataset(dataset, "train")``, validated on its test split.
        epochs: Epochs trained.
        seed: Seeds the weights, the training and the ``n_train`` draw.
        cache_dir: The cache folder.
        batch_size: Images per optimiser step.
        lr: The learning rate.
        n_train: Train on this many images drawn at random from ``seed`` (:func:`pick_indices`).
        mode: A :class:`~freqlens.training.TrainingMode` (default :class:`~freqlens.training.Standard`); its
            description is part of the cache key, as is ``augment``.
        augment: As in :func:`~freqlens.training.train`.
        progress: Progress bars on stderr.

    Returns:
        The model (``best.pt``), its checkpoint, its training history and whether the cache was reused.

    Raises:
        FreqlensError: ``n_train`` is not in ``1..`` the size of the training split.
    """
    from freqlens.data import load_dataset, normalization_stats
    from freqlens.models import load, model_for_dataset
    from freqlens.training import train

    settings = training_key(name, dataset, epochs, seed, batch_size=batch_size, lr=lr, n_train=n_train, mode=mode,
                            augment=augment)
    folder = Path(cache_dir) / config_hash(settings)
    checkpoint = folder / BEST
    if checkpoint.is_file():
        return TrainedModel(load(checkpoint), checkpoint, json.loads((folder / HISTORY).read_text()), True)
    train_set = load_dataset(dataset, split="train", progress=progress)
    if n_train is not None:
        if not 0 < n_train <= len(train_set):
            raise FreqlensError(f"n_train must be in 1..{len(train_set)}, got {n_train}")
        train_set = train_set.subset(pick_indices(len(train_set), n_train, seed))
    test_set = load_dataset(dataset, split="test", progress=progress)
    model = model_for_dataset(name, train_set, *normalization_stats(train_set.images), seed=seed)
    history = train(model, train_set, test_set, mode=mode, epochs=epochs, batch_size=batch_size, lr=lr,
                    out_dir=folder, seed=seed, augment=augment, progress=progress)
    atomic_write_json(folder / "settings.json", dict(settings))
    return TrainedModel(load(checkpoint), checkpoint, history, False)
