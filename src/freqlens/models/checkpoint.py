"""Checkpoints: a model's name, arguments and weights (plus training extras) in one torch file.

Format (``torch.save`` of a dict, loadable with ``torch.load(..., weights_only=True)``)::

    {"freqlens_checkpoint": 1,
     "model": {"name": str, "kwargs": dict},     # model_spec(model)
     "model_state": state_dict,
     ...}                                         # extras: "optimizer_state", "epoch", "history", ...
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from freqlens.errors import CheckpointError, ModelError
from freqlens.models.registry import build, canonical_spec, describe_spec, model_spec, state_shapes
from freqlens.utils import atomic_save_torch

FORMAT_KEY = "freqlens_checkpoint"
FORMAT_VERSION = 1
_RESERVED = (FORMAT_KEY, "model", "model_state")


def checkpoint_dict(model: nn.Module, **extra: Any) -> dict[str, Any]:
    """The checkpoint of ``model`` (built by :func:`~freqlens.models.build`) with ``extra`` keys."""
    clash = sorted(set(extra) & set(_RESERVED))
    if clash:
        raise ValueError(f"checkpoint_dict: {', '.join(clash)} are reserved keys of a checkpoint")
    # cloned: a dict kept in memory (e.g. the best epoch so far) must not follow later training steps
    state = {key: value.detach().clone() for key, value in model.state_dict().items()}
    return {FORMAT_KEY: FORMAT_VERSION, "model": model_spec(model), "model_state": state, **extra}


def save_model(model: nn.Module, path: str | os.PathLike, **extra: Any) -> Path:
    """Write :func:`checkpoint_dict` atomically to ``path`` (parents created).

    Args:
        model: a model built by :func:`~freqlens.models.build`.
        path: the checkpoint file.
        **extra: extra keys of the checkpoint (optimizer state, epoch, ...; not the reserved ones).

    Returns:
        The path written.

    Raises:
        ValueError: an ``extra`` key is reserved.
    """
    return atomic_save_torch(path, checkpoint_dict(model, **extra))


def _validate(checkpoint: Any, where: str) -> dict[str, Any]:
    if not isinstance(checkpoint, Mapping) or FORMAT_KEY not in checkpoint:
        raise CheckpointError(f"{where} is not a freqlens checkpoint (no {FORMAT_KEY!r} key)")
    version = checkpoint[FORMAT_KEY]
    if not isinstance(version, int) or version < 1:
        raise CheckpointError(f"{where} has an invalid format version {version!r}")
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{where} has format version {version}, newer than this freqlens reads ({FORMAT_VERSION}); upgrade"
        )
    spec = checkpoint.get("model")
    if not (isinstance(spec, Mapping) and isinstance(spec.get("name"), str)
            and isinstance(spec.get("kwargs"), Mapping)
            and all(isinstance(key, str) and key != "name" for key in spec["kwargs"])):
        raise CheckpointError(
            f"{where} is damaged: its 'model' entry is not {{'name': str, 'kwargs': dict of str keys}}"
        )
    state = checkpoint.get("model_state")
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{where} is damaged: its 'model_state' is not a state dict of tensors")
    return dict(checkpoint)


def _check_archive(path: Path) -> None:
    """Verify the CRC-32 of every member of a zip-format torch file (``torch.load`` does not check
    the tensor data, so a damaged file would otherwise load silently wrong weights)."""
    if not zipfile.is_zipfile(path):
        return  # truncated zips and legacy files are left to torch.load's own errors
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as error:
        raise CheckpointError(f"checkpoint {path} is corrupt: {error}") from error
    if bad is not None:
        raise CheckpointError(f"checkpoint {path} is corrupt: checksum mismatch in {bad!r}")


def read_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    """The checkpoint dict at ``path`` (``torch.load(weights_only=True)``), validated.

    Args:
        path: the checkpoint file.
        map_location: ``torch.load``'s ``map_location`` (where the tensors are loaded).

    Returns:
        The checkpoint dict (format version, ``"model"`` spec, ``"model_state"`` and the extras).

    Raises:
        CheckpointError: naming the path when it is missing, truncated, corrupt or not ours.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} not found")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} is not a file")
    _check_archive(path)
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # torch raises many types for damaged files (zip, pickle, EOF, ...)
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(
            f"checkpoint {path} cannot be read (truncated, corrupt or not a weights-only torch file): "
            f"{message[:300]}"
        ) from error
    return _validate(checkpoint, f"checkpoint {path}")


def check_finite(state: Mapping[str, torch.Tensor], where: str) -> None:
    """Refuse weights that hold NaN or infinity (a model trained into divergence, or a damaged file).

    Args:
        state: A state dict.
        where: What it comes from (e.g. ``"checkpoint run/best.pt"``), for the message.

    Raises:
        CheckpointError: Naming the first floating-point tensor with a non-finite value.
    """
    for key, tensor in state.items():
        if (tensor.is_floating_point() or tensor.is_complex()) and not tensor.is_meta \
                and not bool(torch.isfinite(tensor).all()):
            raise CheckpointError(f"{where}: weight {key!r} holds NaN/inf values")


def _resolve(checkpoint: str | os.PathLike | Mapping[str, Any], map_location: Any) -> tuple[dict, str]:
    """The validated checkpoint dict (weights finite) and how to name it in messages."""
    if isinstance(checkpoint, Mapping):
        resolved, where = _validate(checkpoint, "the checkpoint"), "the checkpoint"
    else:
        resolved, where = read_checkpoint(checkpoint, map_location), f"checkpoint {Path(checkpoint)}"
    check_finite(resolved["model_state"], where)
    return resolved, where


def _check_fits(planned: Mapping[str, tuple[int, ...]], checkpoint: dict[str, Any], where: str) -> None:
    """Refuse, before the model is allocated, a state dict that does not hold the tensors its spec builds
    (so a small file cannot make :func:`load` allocate a large model). Missing 0-d buffers (BatchNorm's
    ``num_batches_tracked``) are left to ``load_state_dict``, which fills them in."""
    state = checkpoint["model_state"]
    problems = []
    for key, shape in planned.items():
        if key not in state:
            if shape:
                problems.append(f"missing {key!r}")
        elif tuple(state[key].shape) != shape:
            problems.append(f"{key!r} is {tuple(state[key].shape)} instead of {shape}")
    problems += [f"unexpected {key!r}" for key in state if key not in planned]
    if problems:
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise CheckpointError(
            f"{where} holds a {describe_spec(checkpoint['model'])} whose weights do not fit it: "
            f"{'; '.join(problems[:5])}{more}"
        )


def _load_weights(model: nn.Module, checkpoint: dict[str, Any], where: str, model_desc: str) -> None:
    try:
        model.load_state_dict(checkpoint["model_state"], strict=True)
    except RuntimeError as error:
        detail = " ".join(str(error).split())
        raise CheckpointError(
            f"{where} holds a {describe_spec(checkpoint['model'])} whose weights do not fit {model_desc}: "
            f"{detail[:500]}"
        ) from error


def load(checkpoint_path: str | os.PathLike, map_location: Any = "cpu") -> nn.Module:
    """Rebuild the model saved at ``checkpoint_path`` from its spec and load its weights strictly.

    Nothing is allocated for the model before its arguments passed the bounds of
    :func:`~freqlens.models.build` and the checkpoint's tensors matched the shapes those arguments give;
    weights holding NaN/inf are refused.

    Args:
        checkpoint_path: the checkpoint file, or ``"zoo:NAME"`` for the sha256-verified weights of a
            model shipped in the package (:func:`freqlens.models.zoo.load`).
        map_location: ``torch.load``'s ``map_location``; the model is moved there when it is a device.

    Returns:
        The model in eval mode (on ``map_location`` when that is a device).

    Raises:
        CheckpointError: all of the refusals above, and a missing or damaged file.
    """
    if isinstance(checkpoint_path, (str, os.PathLike)) and os.fspath(checkpoint_path).startswith("zoo:"):
        from freqlens.models.zoo import load as load_zoo_model

        return load_zoo_model(os.fspath(checkpoint_path), map_location=map_location)
    checkpoint, where = _resolve(checkpoint_path, map_location)
    spec = checkpoint["model"]
    try:
        _check_fits(state_shapes(spec["name"], **dict(spec["kwargs"])), checkpoint, where)
        model = build(spec["name"], **dict(spec["kwargs"]))
    except ModelError as error:
        raise CheckpointError(f"{where} holds a model that cannot be built: {error}") from error
    _load_weights(model, checkpoint, where, f"a freshly built {spec['name']!r}")
    if isinstance(map_location, (str, torch.device)):
        model.to(map_location)
    return model.eval()


def load_state(model: nn.Module, checkpoint: str | os.PathLike | Mapping[str, Any],
               map_location: Any = "cpu") -> dict[str, Any]:
    """Load the weights of ``checkpoint`` into ``model``.

    Args:
        model: the model to fill (built by :func:`~freqlens.models.build` or not).
        checkpoint: a path or a checkpoint dict.
        map_location: ``torch.load``'s ``map_location`` when ``checkpoint`` is a path.

    Returns:
        The checkpoint dict (for its extras: optimizer state, epoch, ...).

    Raises:
        CheckpointError: naming both architectures when the checkpoint holds another model (other name
            or arguments) or when its state dict does not fit; naming the first tensor that holds
            NaN/inf values.
    """
    checkpoint, where = _resolve(checkpoint, map_location)
    saved = checkpoint["model"]
    try:
        current = model_spec(model)
    except ModelError:
        current = None
    if current is not None:
        try:
            saved_canonical = canonical_spec(saved["name"], dict(saved["kwargs"]))
        except ModelError:
            saved_canonical = dict(saved)
        if saved_canonical != current:
            differing = sorted(
                key for key in set(saved_canonical["kwargs"]) | set(current["kwargs"])
                if saved_canonical["kwargs"].get(key) != current["kwargs"].get(key)
            )
            hint = "" if saved_canonical["name"] != current["name"] else f" (differing: {', '.join(differing)})"
            raise CheckpointError(
                f"{where} holds a {describe_spec(saved_canonical)} but the model is a "
                f"{describe_spec(current)}{hint}"
            )
        model_desc = f"the model {describe_spec(current)}"
    else:
        model_desc = f"the model (a {type(model).__name__} not built by freqlens.models.build)"
    _load_weights(model, checkpoint, where, model_desc)
    return checkpoint
