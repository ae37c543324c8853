"""Trained models shipped in the package: a manifest and sha256-verified float16 weights.

Layout of the zoo folder (this package, or ``$FREQLENS_ZOO_DIR``, or the ``root`` argument)::

    manifest.json        {"format": "freqlens-zoo", "version": 1, "entries": [ENTRY, ...]}  (sorted by name)
    weights/NAME.pt      torch.save of the float16 state dict (integer buffers kept as they are)

Every entry records how the weights were made (the exact ``freqlens train`` command, seed, epochs, wall
time) and what they score (full test set, PGD-20 robust accuracy for adversarially trained models, the
shipped sample); see :class:`ZooEntry`. :func:`load` checks the size and sha256 of the file *before*
``torch.load(..., weights_only=True)``, then loads the weights into the model the entry describes, in
float32 and eval mode. ``freqlens.models.load("zoo:NAME")`` and ``--checkpoint zoo:NAME`` call it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import math
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from freqlens.errors import CheckpointError, ModelError
from freqlens.models.registry import build
from freqlens.utils import atomic_write_bytes, atomic_write_text

ZOO_DIR_ENV = "FREQLENS_ZOO_DIR"
ZOO_PREFIX = "zoo:"
MANIFEST_NAME = "manifest.json"
WEIGHTS_DIR = "weights"
MANIFEST_FORMAT = "freqlens-zoo"
MANIFEST_VERSION = 1
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_SHA256 = re.compile(r"[0-9a-f]{64}")

__all__ = ["MANIFEST_NAME", "ZOO_DIR_ENV", "ZOO_PREFIX", "ZooEntry", "entries", "entry", "float16_state",
           "load", "manifest_path", "names", "save_weights", "weights_path", "write_entry", "zoo_dir",
           "zoo_name"]


@dataclasses.dataclass(frozen=True)
class ZooEntry:
    """One trained model of the zoo (one object of ``manifest.json``'s ``entries``).

    Attributes:
        name: unique name, also the weights file stem, e.g. ``"lenet-cifar10-nm0.5-gaussian"``.
        architecture: the :func:`~freqlens.models.build` name, e.g. ``"resnet_small"``.
        kwargs: the constructor arguments (``build(architecture, **kwargs)``, normalisation included).
        dataset: the training data, ``"cifar10"`` or ``"mnist"``.
        mode: training mode (``standard``, ``noise-modulation``, ``adversarial``).
        mode_config: the mode's parameters as the training checkpoint records them (beta, noise, eps...).
        command: the exact command line that trained it (``freqlens ... train ...``).
        seed: the training seed.
        epochs: epochs trained; ``best_epoch``: the epoch whose weights are shipped (best test accuracy).
        minutes: wall time of the training run in minutes (``None`` when unknown).
        test_accuracy: top-1 accuracy of the float16 weights on ``test_images`` images of the full test set.
        robust_accuracy: accuracy under ``robust_eval`` (PGD-20) or ``None`` (not measured).
        sample: the shipped sample (``"demo-cifar10"`` or ``"demo-mnist"``) and ``sample_accuracy`` on its
            ``sample_images`` test images.
        sha256, size: of ``weights/NAME.pt``.
        training: the training settings of the checkpoint (batch size, lr, optimizer, ...).
        notes: free text.
        extra: keys of the manifest entry that this version of freqlens does not know (kept on rewrite).
    """

    name: str
    architecture: str
    kwargs: dict[str, Any]
    dataset: str
    mode: str
    mode_config: dict[str, Any]
    command: str
    seed: int
    epochs: int
    best_epoch: int | None
    minutes: float | None
    test_accuracy: float
    test_images: int
    robust_accuracy: float | None
    robust_eval: dict[str, Any] | None
    sample: str
    sample_accuracy: float
    sample_images: int
    sha256: str
    size: int
    dtype: str = "float16"
    training: dict[str, Any] = dataclasses.field(default_factory=dict)
    freqlens_version: str = ""
    notes: str = ""
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def size_mb(self) -> float:
        """Size of the weights file in MB (10⁶ bytes)."""
        return self.size / 1e6

    def to_dict(self) -> dict[str, Any]:
        """The manifest object of this entry (``extra`` keys merged back in)."""
        record = {field.name: getattr(self, field.name) for field in dataclasses.fields(self) if field.name != "extra"}
        return {**record, **self.extra}


_NUMBER = (int, float)
_OPTIONAL = {"best_epoch", "minutes", "robust_accuracy", "robust_eval"}
_TYPES: dict[str, tuple[type, ...]] = {
    "name": (str,), "architecture": (str,), "kwargs": (dict,), "dataset": (str,), "mode": (str,),
    "mode_config": (dict,), "command": (str,), "seed": (int,), "epochs": (int,), "best_epoch": (int,),
    "minutes": _NUMBER, "test_accuracy": _NUMBER, "test_images": (int,), "robust_accuracy": _NUMBER,
    "robust_eval": (dict,), "sample": (str,), "sample_accuracy": _NUMBER, "sample_images": (int,),
    "sha256": (str,), "size": (int,), "dtype": (str,), "training": (dict,), "freqlens_version": (str,),
    "notes": (str,),
}
_DEFAULTED = {"dtype", "training", "freqlens_version", "notes"}


def _check_name(name: Any) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise CheckpointError(
            f"invalid zoo name {name!r}: use letters, digits, '.', '_' and '-' (at most 100 characters)"
        )
    return name


def entry_from_dict(record: Mapping[str, Any], where: str = "zoo manifest") -> ZooEntry:
    """A :class:`ZooEntry` from a manifest object.

    Args:
        record: one object of the manifest's ``entries`` (keys besides the entry's fields go to
            ``extra``).
        where: how to name the manifest in messages.

    Returns:
        The :class:`ZooEntry`.

    Raises:
        CheckpointError: naming the bad key (missing, wrong type, non-finite), a bad name, sha256 or
            size.
    """
    if not isinstance(record, Mapping):
        raise CheckpointError(f"{where}: an entry is not a JSON object")
    label = f"{where}: entry {record.get('name')!r}"
    for key, types in _TYPES.items():
        if key not in record:
            if key in _DEFAULTED:
                continue
            raise CheckpointError(f"{label} lacks the key {key!r}")
        value = record[key]
        if value is None and key in _OPTIONAL:
            continue
        if isinstance(value, bool) or not isinstance(value, types):
            raise CheckpointError(f"{label}: {key} must be {' or '.join(t.__name__ for t in types)}, got {value!r}")
        if types is _NUMBER and not math.isfinite(value):
            raise CheckpointError(f"{label}: {key} must be finite, got {value!r}")
    _check_name(record["name"])
    if not _SHA256.fullmatch(record["sha256"]) or record["size"] <= 0:
        raise CheckpointError(f"{label}: sha256 must be 64 lowercase hex digits and size positive")
    known = {field.name for field in dataclasses.fields(ZooEntry)} - {"extra"}
    return ZooEntry(**{key: record[key] for key in known if key in record},
                    extra={key: value for key, value in record.items() if key not in known})


def zoo_dir(root: str | os.PathLike | None = None) -> Path:
    """The zoo folder: ``root``, else ``$FREQLENS_ZOO_DIR``, else the one shipped in this package."""
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get(ZOO_DIR_ENV, "").strip()
    return Path(env).expanduser() if env else Path(__file__).resolve().parent


def manifest_path(root: str | os.PathLike | None = None) -> Path:
    """``<zoo dir>/manifest.json``."""
    return zoo_dir(root) / MANIFEST_NAME


def weights_path(name: str, root: str | os.PathLike | None = None) -> Path:
    """``<zoo dir>/weights/NAME.pt``.

    Args:
        name: the entry's name (letters, digits, ``.``, ``_`` and ``-``).
        root: the zoo folder (default ``$FREQLENS_ZOO_DIR`` or the package's, :func:`zoo_dir`).

    Returns:
        The weights file's path (it may not exist).

    Raises:
        CheckpointError: an invalid name.
    """
    return zoo_dir(root) / WEIGHTS_DIR / f"{_check_name(name)}.pt"


def entries(root: str | os.PathLike | None = None) -> list[ZooEntry]:
    """Every entry of the manifest, sorted by name (an absent manifest is an empty zoo).

    Raises:
        CheckpointError: the manifest is not valid JSON, has another format or version, or a bad entry.
    """
    path = manifest_path(root)
    if not path.is_file():
        return []
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"zoo manifest {path} cannot be read: {error}") from error
    if not isinstance(document, dict) or document.get("format") != MANIFEST_FORMAT:
        raise CheckpointError(f"zoo manifest {path} is not a freqlens zoo manifest (format {MANIFEST_FORMAT!r})")
    if document.get("version") != MANIFEST_VERSION or not isinstance(document.get("entries"), list):
        raise CheckpointError(f"zoo manifest {path} has version {document.get('version')!r}; this freqlens reads "
                              f"version {MANIFEST_VERSION} with an 'entries' list")
    found = [entry_from_dict(record, f"zoo manifest {path}") for record in document["entries"]]
    seen = [item.name for item in found]
    if len(set(seen)) != len(seen):
        raise CheckpointError(f"zoo manifest {path} lists a name twice")
    return sorted(found, key=lambda item: item.name)


def names(root: str | os.PathLike | None = None) -> list[str]:
    """The names of the zoo's models, sorted."""
    return [item.name for item in entries(root)]


def entry(name: str, root: str | os.PathLike | None = None) -> ZooEntry:
    """The entry called ``name``.

    Args:
        name: the entry's name (without ``zoo:``).
        root: the zoo folder (default ``$FREQLENS_ZOO_DIR`` or the package's, :func:`zoo_dir`).

    Returns:
        The :class:`ZooEntry`.

    Raises:
        CheckpointError: listing the known names when there is no such entry; or a bad manifest.
    """
    known = entries(root)
    for item in known:
        if item.name == name:
            return item
    listed = f"known: {', '.join(item.name for item in known)}" if known else f"the zoo at {zoo_dir(root)} is empty"
    raise CheckpointError(f"unknown zoo model {name!r}; {listed}")


def zoo_name(reference: Any) -> str | None:
    """``NAME`` when ``reference`` (a str or path) reads ``zoo:NAME``, else ``None``."""
    if isinstance(reference, (str, os.PathLike)):
        text = os.fspath(reference)
        if isinstance(text, str) and text.startswith(ZOO_PREFIX):
            return text[len(ZOO_PREFIX):]
    return None


def _verified_bytes(item: ZooEntry, path: Path) -> bytes:
    """The bytes of ``path`` after checking their size and sha256 against the entry."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"zoo model {item.name!r}: weights file {path} is missing; reinstall freqlens") from None
    except OSError as error:
        raise CheckpointError(f"zoo model {item.name!r}: weights file {path} cannot be read: {error}") from error
    if len(data) != item.size:
        raise CheckpointError(f"zoo model {item.name!r}: weights file {path} has {len(data)} bytes, the manifest "
                              f"says {item.size} (truncated or replaced); reinstall freqlens")
    digest = hashlib.sha256(data).hexdigest()
    if digest != item.sha256:
        raise CheckpointError(f"zoo model {item.name!r}: weights file {path} has sha256 {digest[:16]}…, the "
                              f"manifest says {item.sha256[:16]}… (damaged or tampered with); reinstall freqlens")
    return data


def load(name: str, map_location: Any = "cpu", root: str | os.PathLike | None = None) -> nn.Module:
    """The zoo model ``name`` (``"NAME"`` or ``"zoo:NAME"``) in float32 and eval mode.

    The weights file is checked against the manifest's size and sha256 before ``torch.load`` (with
    ``weights_only=True``) reads it; the model is rebuilt from the entry's architecture and kwargs.

    Args:
        name: the entry's name.
        map_location: moves the model when it is a device (or device string), as in
            :func:`freqlens.models.load`.
        root: the zoo folder (default ``$FREQLENS_ZOO_DIR`` or the package's).

    Raises:
        CheckpointError: unknown name, missing, truncated or tampered weights, or weights that do not fit.
    """
    name = zoo_name(name) or name
    item = entry(name, root)
    path = weights_path(item.name, root)
    data = _verified_bytes(item, path)
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for damaged files
        raise CheckpointError(f"zoo model {name!r}: {path} is not a weights-only torch file: {error}") from error
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"zoo model {name!r}: {path} does not hold a state dict of tensors")
    try:
        model = build(item.architecture, **item.kwargs)
    except ModelError as error:
        raise CheckpointError(f"zoo model {name!r} cannot be built: {error}") from error
    state32 = {key: value.to(torch.float32) if value.is_floating_point() else value for key, value in state.items()}
    try:
        model.load_state_dict(state32, strict=True)
    except RuntimeError as error:
        detail = " ".join(str(error).split())[:400]
        raise CheckpointError(f"zoo model {name!r}: the weights do not fit {item.architecture!r}: {detail}") from error
    model.float()
    if isinstance(map_location, (str, torch.device)):
        model.to(map_location)
    return model.eval()


def float16_state(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A CPU copy of ``state`` with floating-point tensors in float16 (others unchanged).

    Raises:
        CheckpointError: a value is not finite in float16 (overflow beyond ±65504, or already non-finite).
    """
    half = {}
    for key, value in state.items():
        value = value.detach().to("cpu")
        if value.is_floating_point():
            value = value.to(torch.float16)
            if not bool(torch.isfinite(value).all()):
                raise CheckpointError(f"{key}: not finite in float16 (values beyond ±65504 or NaN)")
        half[key] = value.clone().contiguous()
    return half


def save_weights(name: str, state: Mapping[str, torch.Tensor],
                 root: str | os.PathLike | None = None) -> tuple[Path, str, int]:
    """Write the float16 copy of ``state`` to ``weights/NAME.pt`` atomically.

    Args:
        name: the entry's name (letters, digits, ``.``, ``_`` and ``-``).
        state: the model's state dict.
        root: the zoo folder (default ``$FREQLENS_ZOO_DIR`` or the package's, :func:`zoo_dir`).

    Returns:
        ``(path, sha256, size in bytes)`` of the written file.

    Raises:
        CheckpointError: an invalid name, or a value that is not finite in float16.
    """
    buffer = io.BytesIO()
    torch.save(float16_state(state), buffer)
    data = buffer.getvalue()
    path = atomic_write_bytes(weights_path(name, root), data)
    return path, hashlib.sha256(data).hexdigest(), len(data)


def write_entry(record: Mapping[str, Any], root: str | os.PathLike | None = None) -> ZooEntry:
    """Add ``record`` to the manifest, replacing the entry of the same name; entries sorted by name,
    the file rewritten atomically. The weights file must already be there with the recorded sha256.

    Args:
        record: the new entry, as a manifest object (:func:`entry_from_dict`).
        root: the zoo folder (default ``$FREQLENS_ZOO_DIR`` or the package's, :func:`zoo_dir`).

    Returns:
        The added :class:`ZooEntry`.

    Raises:
        CheckpointError: the record is invalid, or the weights file does not match it.
    """
    item = entry_from_dict(record, "new zoo entry")
    _verified_bytes(item, weights_path(item.name, root))
    kept = [other for other in entries(root) if other.name != item.name]
    ordered = sorted([*kept, item], key=lambda other: other.name)
    document = {"format": MANIFEST_FORMAT, "version": MANIFEST_VERSION,
                "entries": [other.to_dict() for other in ordered]}
    atomic_write_text(manifest_path(root), json.dumps(document, indent=2, allow_nan=False) + "\n")
    return item
