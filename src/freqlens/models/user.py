"""Your own model: a factory plus a state dict, a TorchScript file or a ``torch.export`` archive.

One place loads every kind of model the commands take, and says how it was loaded:

* :func:`load_user_model` — ``"PKG.MODULE:FACTORY"`` (a callable returning an ``nn.Module``, imported from
  your ``PYTHONPATH``: it runs your code, by design) called with ``model_args``, then a state dict from
  ``weights`` (always ``torch.load(..., weights_only=True)``; a ``model_state_dict`` / ``state_dict`` /
  ``model_state`` entry, or a freqlens checkpoint's weights, are accepted).
* :func:`load_model_file` — a freqlens checkpoint, ``zoo:NAME``, a TorchScript file (``torch.jit.load``)
  or a ``torch.export`` archive (``torch.export.load(...).module()``), told apart by their content.
  TorchScript and export archives hold code that runs when they are loaded or called: load only files
  you trust.

Both optionally wrap the model in :class:`~freqlens.models.SelectOutput` (``output``: the logits of a
model returning a tuple/dict) and :class:`~freqlens.models.Normalized` (``normalize``: ``"imagenet"``,
``"cifar10"``, ``"mnist"``, ``"MEAN,.../STD,..."`` or ``(mean, std)``), and return
``(model in eval mode, record)`` where ``record`` is the ``"model"`` entry of the commands' JSON output:
``{"kind", "spec", "weights", "weights_sha256", "model_args", "normalize", "output"}``.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import os
import re
import warnings
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from freqlens.errors import CheckpointError, ModelError
from freqlens.models.checkpoint import FORMAT_KEY, check_finite
from freqlens.models.checkpoint import load as load_checkpoint
from freqlens.models.normalized import Normalized
from freqlens.utils.keyvalue import parse_key_values
from freqlens.utils.output import OutputSelector, SelectOutput, check_selector

#: How a model was loaded (the ``kind`` of a record).
KINDS = ("freqlens-checkpoint", "zoo", "factory", "torchscript", "export")

#: Named normalisations: name -> (mean, std) per channel, of images in [0, 1].
NORMALIZATIONS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "mnist": ((0.1307,), (0.3081,)),
}

#: Keys under which a saved dict may hold the state dict (tried in this order).
STATE_KEYS = ("model_state_dict", "state_dict", "model_state")

_SPEC = re.compile(r"^(?P<module>[A-Za-z_]\w*(\.[A-Za-z_]\w*)*):(?P<attr>[A-Za-z_]\w*(\.[A-Za-z_]\w*)*)$")
_HASH_CHUNK = 1 << 20

Normalization = str | tuple[Sequence[float], Sequence[float]] | None


def parse_normalize(value: Normalization) -> tuple[list[float], list[float]] | None:
    """``(mean, std)`` from a name of :data:`NORMALIZATIONS`, ``"M1,M2,M3/S1,S2,S3"`` or a pair.

    Args:
        value: ``None`` (no normalisation), a name, the text form (means, a slash, standard deviations;
            one value each for all channels is also accepted) or ``(mean, std)``.

    Returns:
        ``None`` or the lists of means and standard deviations.

    Raises:
        ModelError: An unknown name or text that does not read as two comma lists.
    """
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip().lower()
        if text in NORMALIZATIONS:
            mean, std = NORMALIZATIONS[text]
            return list(mean), list(std)
        parts = text.split("/")
        try:
            if len(parts) != 2:
                raise ValueError
            mean, std = ([float(v) for v in part.split(",")] for part in parts)
        except ValueError:
            raise ModelError(f"normalize: expected {', '.join(NORMALIZATIONS)} or MEAN,MEAN,.../STD,STD,... "
                             f"(e.g. 0.485,0.456,0.406/0.229,0.224,0.225), got {value!r}") from None
        return mean, std
    if isinstance(value, Sequence) and len(value) == 2:
        return [float(v) for v in value[0]], [float(v) for v in value[1]]
    raise ModelError(f"normalize: expected a name, 'MEAN,.../STD,...' or (mean, std), got {value!r}")


def parse_model_args(items: Sequence[str] | None) -> dict[str, Any]:
    """``{key: value}`` from ``["key=value", ...]``; values read as Python literals (``ast.literal_eval``:
    numbers, ``True``, ``None``, lists, quoted strings; also ``true`` / ``false`` / ``none``), anything else
    kept as a string (:func:`freqlens.utils.keyvalue.parse_key_values`, shared with ``--method-args``).

    Raises:
        ModelError: An item without ``=``, a key that is not an identifier, or a key given twice.
    """
    return parse_key_values(items, what="model argument", error=ModelError)


def file_sha256(path: str | os.PathLike) -> str:
    """The hex sha256 of a file's bytes (read in chunks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def import_factory(spec: str) -> Any:
    """The object named by ``"PKG.MODULE:ATTR"`` (``ATTR`` may be dotted), imported from the ``PYTHONPATH``.

    Raises:
        ModelError: A malformed spec, a module that cannot be imported (with the reason), a missing
            attribute, or an attribute that is not callable.
    """
    match = _SPEC.match(spec.strip()) if isinstance(spec, str) else None
    if match is None:
        raise ModelError(f"model {spec!r} is not PKG.MODULE:FACTORY (e.g. mymodels:make_net)")
    module_name, attr = match["module"], match["attr"]
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as error:
        raise ModelError(f"cannot import module {module_name!r} ({error})") from error
    except Exception as error:  # the user's module failed while running: name it, one line
        detail = " ".join(str(error).split())[:300]
        raise ModelError(f"cannot import module {module_name!r} ({type(error).__name__}: {detail})") from error
    for part in attr.split("."):
        if not hasattr(target, part):
            raise ModelError(f"module {module_name!r} has no attribute {attr!r} (from model {spec!r})")
        target = getattr(target, part)
    if not callable(target):
        raise ModelError(f"{spec} is a {type(target).__name__}, not a callable returning an nn.Module")
    return target


def _call_factory(spec: str, model_args: Mapping[str, Any]) -> nn.Module:
    """``FACTORY(**model_args)``, checked to be an ``nn.Module``."""
    factory = import_factory(spec)
    try:
        model = factory(**model_args)
    except Exception as error:
        detail = " ".join(str(error).split())[:300]
        raise ModelError(f"{spec} failed with arguments {dict(model_args)!r} ({type(error).__name__}: {detail})") \
            from error
    if not isinstance(model, nn.Module):
        raise ModelError(f"{spec} returned a {type(model).__name__}, not an nn.Module")
    return model


def read_state_dict(path: str | os.PathLike) -> dict[str, Tensor]:
    """The state dict saved at ``path`` (``torch.load(weights_only=True)``): the file's dict itself, its
    ``model_state_dict`` / ``state_dict`` / ``model_state`` entry, or a freqlens checkpoint's weights.

    Raises:
        CheckpointError: A missing or unreadable file, or one that holds no dict of tensors.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"weights {path} not found" if not path.exists() else f"weights {path} is not a file")
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for damaged or non-weights files
        text = str(error).strip()
        first = text.splitlines()[0][:300] if text else type(error).__name__
        raise CheckpointError(f"weights {path} cannot be read as a weights-only torch file: {first}") from error
    if isinstance(saved, Mapping):
        inner = next((saved[key] for key in STATE_KEYS if isinstance(saved.get(key), Mapping)), None)
        if inner is not None and (FORMAT_KEY in saved or not all(isinstance(v, Tensor) for v in saved.values())):
            saved = inner
    if not isinstance(saved, Mapping) or not saved or not all(isinstance(v, Tensor) for v in saved.values()):
        keys = ", ".join(repr(k) for k in list(saved)[:10]) if isinstance(saved, Mapping) else type(saved).__name__
        raise CheckpointError(f"weights {path} hold no state dict of tensors (found: {keys}; a state dict may "
                              f"also sit under {', '.join(STATE_KEYS)})")
    state = {str(key): value for key, value in saved.items()}
    check_finite(state, f"weights {path}")
    return state


def load_weights(model: nn.Module, state: Mapping[str, Tensor], where: str) -> None:
    """Load ``state`` into ``model`` strictly; a ``module.`` prefix (DataParallel) is removed when needed.

    Args:
        model: the model to fill.
        state: a state dict of tensors.
        where: how to name the weights in messages (e.g. ``"weights FILE"``).

    Raises:
        CheckpointError: ``weights FILE do not fit the model: missing keys ..., unexpected keys ...``.
    """
    expected = model.state_dict()
    if all(key.startswith("module.") for key in state) and not any(key.startswith("module.") for key in expected):
        state = {key[len("module."):]: value for key, value in state.items()}
    missing = [key for key in expected if key not in state]
    unexpected = [key for key in state if key not in expected]
    shapes = [f"{key!r} is {tuple(state[key].shape)} instead of {tuple(value.shape)}"
              for key, value in expected.items() if key in state and state[key].shape != value.shape]
    problems = []
    for label, items in (("missing keys", missing), ("unexpected keys", unexpected), ("wrong shapes", shapes)):
        if items:
            more = f" (and {len(items) - 5} more)" if len(items) > 5 else ""
            problems.append(f"{label} {', '.join(items[:5])}{more}")
    if problems:
        raise CheckpointError(f"{where} do not fit the model: {'; '.join(problems)}")
    model.load_state_dict(state, strict=True)


def _wrap(model: nn.Module, record: dict[str, Any], normalize: Normalization, output: OutputSelector | None,
          map_location: Any) -> tuple[nn.Module, dict[str, Any]]:
    """Apply ``output`` and ``normalize``, move to ``map_location`` and complete the record."""
    if output is not None:
        model = SelectOutput(model, check_selector(output))
    stats = parse_normalize(normalize)
    if stats is not None:
        model = Normalized(model, *stats)
    if isinstance(map_location, (str, torch.device)):
        model = model.to(map_location)
    record.update(normalize=None if stats is None else {"mean": stats[0], "std": stats[1]},
                  output=output if output is None or isinstance(output, (int, str)) else repr(output))
    return model.eval(), record


def load_user_model(spec: str, weights: str | os.PathLike | None = None,
                    model_args: Mapping[str, Any] | Sequence[str] | None = None, normalize: Normalization = None,
                    output: OutputSelector | None = None, map_location: Any = "cpu") -> tuple[nn.Module, dict]:
    """Your model from its factory and (optionally) a state dict.

    Args:
        spec: ``"PKG.MODULE:FACTORY"``; the module is imported (running its code) from the ``PYTHONPATH``.
        weights: A state-dict file (``torch.load(..., weights_only=True)``: an untrusted file cannot run
            code); see :func:`read_state_dict` for the layouts accepted. ``None``: the factory's weights.
        model_args: Keyword arguments of the factory, as a dict or as ``["key=value", ...]``
            (:func:`parse_model_args`).
        normalize: Wrap in :class:`Normalized` (see :func:`parse_normalize`) when the model expects
            normalised inputs.
        output: The logits selector of a model returning a tuple/dict (see :class:`SelectOutput`).
        map_location: A device to move the model to.

    Returns:
        ``(model in eval mode, record)``.

    Raises:
        ModelError: The factory cannot be imported or called, or returns no ``nn.Module``.
        CheckpointError: The weights cannot be read or do not fit the model.
    """
    args = parse_model_args(model_args) if isinstance(model_args, Sequence) and not isinstance(model_args, str) \
        else dict(model_args or {})
    model = _call_factory(spec, args)
    record: dict[str, Any] = {"kind": "factory", "spec": spec, "weights": None, "weights_sha256": None,
                              "model_args": _jsonable(args)}
    if weights is not None:
        load_weights(model, read_state_dict(weights), f"weights {weights}")
        record.update(weights=str(weights), weights_sha256=file_sha256(weights))
    return _wrap(model, record, normalize, output, map_location)


class ProgramModel(nn.Module):
    """A TorchScript module or a ``torch.export`` program's module as an ordinary ``nn.Module``.

    Script modules refuse forward hooks (used to count passes and by the layer metrics) and an exported
    module refuses ``.train()`` / ``.eval()`` (its graph fixed train/eval behaviour when it was exported:
    export in eval mode); this wrapper takes the hooks and the mode switches, so that every explainer,
    metric and attack works. A batch size an exported program was not made for (no dynamic batch
    dimension) gives a :class:`ModelError` that says so.

    Args:
        module: The loaded module (:attr:`module`).
        where: How messages name the file.
        kind: ``"torchscript"`` or ``"export"``.
    """

    def __init__(self, module: nn.Module, where: str, kind: str) -> None:
        super().__init__()
        self.module = module
        self.where = where
        self.kind = kind

    def train(self, mode: bool = True) -> ProgramModel:
        self.training = mode
        with contextlib.suppress(NotImplementedError):  # exported modules refuse it
            self.module.train(mode)
        return self

    def forward(self, x: Tensor) -> Any:
        if self.kind != "export":
            return self.module(x)
        try:
            return self.module(x)
        except (AssertionError, RuntimeError) as error:
            text = " ".join(str(error).split())[:300]
            if "guard" not in text.lower():
                raise
            raise ModelError(f"{self.where} does not take an input of shape {tuple(x.shape)} ({text}); export "
                             "it with a dynamic batch dimension (dynamic_shapes={'x': {0: Dim('batch')}})") from error


def file_kind(path: Path) -> str:
    """``"torchscript"``, ``"export"`` or ``"freqlens-checkpoint"`` from a model file's content: a zip with
    ``code/`` and ``constants.pkl`` is TorchScript, one with ``archive_format`` (or named ``*.pt2``) an
    export archive; anything else is read as a freqlens checkpoint."""
    if path.suffix == ".pt2":
        return "export"
    try:
        if not zipfile.is_zipfile(path):
            return "freqlens-checkpoint"
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (OSError, zipfile.BadZipFile):
        return "freqlens-checkpoint"  # left to the checkpoint reader's messages
    if any(name.endswith("/archive_format") or name == "archive_format" for name in names):
        return "export"
    if any(name.endswith("constants.pkl") for name in names) and any("/code/" in name for name in names):
        return "torchscript"
    return "freqlens-checkpoint"


def _load_program(path: Path, kind: str, map_location: Any) -> nn.Module:
    """A TorchScript or export archive, loaded (code in it runs: only files the user trusts)."""
    where = f"{'TorchScript file' if kind == 'torchscript' else 'torch.export archive'} {path}"
    location = map_location if isinstance(map_location, (str, torch.device)) else "cpu"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # torch deprecates torch.jit; users still have files
            module = torch.jit.load(str(path), map_location=location) if kind == "torchscript" \
                else torch.export.load(str(path)).module()
        return ProgramModel(module, where, kind)
    except Exception as error:  # torch raises many types for damaged archives
        text = " ".join(str(error).split())[:300] or type(error).__name__
        raise CheckpointError(f"{where} cannot be loaded: {text}") from error


def load_model_file(checkpoint: str | os.PathLike, normalize: Normalization = None,
                    output: OutputSelector | None = None, map_location: Any = "cpu") -> tuple[nn.Module, dict]:
    """A model from a file: a freqlens checkpoint, ``zoo:NAME``, TorchScript or a ``torch.export`` archive.

    Args:
        checkpoint: The file (kind detected by :func:`file_kind`) or ``"zoo:NAME"``. TorchScript and export
            archives run the code they hold: load only files you trust.
        normalize: Wrap in :class:`Normalized` (see :func:`parse_normalize`).
        output: The logits selector of a model returning a tuple/dict (see :class:`SelectOutput`).
        map_location: A device to move the model to.

    Returns:
        ``(model in eval mode, record)``.

    Raises:
        CheckpointError: A missing, damaged or foreign file (a plain state dict: use
            :func:`load_user_model` with its factory).
    """
    text = os.fspath(checkpoint)
    if text.startswith("zoo:"):
        from freqlens.models.zoo import entry

        model = load_checkpoint(text, map_location=map_location)
        record = {"kind": "zoo", "spec": text, "weights": None, "weights_sha256": entry(text[4:]).sha256}
        return _wrap(model, record, normalize, output, map_location)
    path = Path(text)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} not found" if not path.exists() else f"checkpoint {path} is not a file")
    kind = file_kind(path)
    if kind == "freqlens-checkpoint":
        try:
            model = load_checkpoint(path, map_location=map_location)
        except CheckpointError as error:
            if "is not a freqlens checkpoint" not in str(error):
                raise
            raise CheckpointError(f"{error}; for a plain state dict give --model PKG.MODULE:FACTORY --weights "
                                  f"{path} (freqlens.models.load_user_model)") from None
    else:
        model = _load_program(path, kind, map_location)
    record = {"kind": kind, "spec": str(path), "weights": str(path), "weights_sha256": file_sha256(path)}
    return _wrap(model, record, normalize, output, map_location)


def _jsonable(value: Any) -> Any:
    """Plain-JSON form of factory arguments (other objects by their ``repr``)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    if isinstance(value, Mapping):
        return {str(key): _jsonable(item) for key, item in value.items()}
    return repr(value)


__all__ = ["KINDS", "NORMALIZATIONS", "ProgramModel", "file_kind", "file_sha256", "import_factory",
           "load_model_file", "load_user_model", "load_weights", "parse_model_args", "parse_normalize",
           "read_state_dict"]
