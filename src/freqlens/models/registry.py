"""The model zoo: ``build(name, ...)``, the spec each built model carries, penultimate features."""

from __future__ import annotations

import contextlib
import copy
import inspect
import math
import reprlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

from freqlens.errors import ModelError
from freqlens.models.base import ZooNet, as_size
from freqlens.models.blurpool import FILTER_SIZES
from freqlens.models.blurpool import antialias as antialias_twin
from freqlens.models.convnext import ConvNeXtTiny
from freqlens.models.fcnn import FCNN
from freqlens.models.lenet import LeNet
from freqlens.models.mlp import MLP
from freqlens.models.normalized import Normalized
from freqlens.models.pooling import SWAP_MODES, swap_pooling
from freqlens.models.resnet import ResNet
from freqlens.models.vgg import VGG
from freqlens.models.vit import ViTTiny

#: name -> (class, arguments fixed by the name, defaults that differ from the class defaults)
_REGISTRY: dict[str, tuple[type[ZooNet], dict[str, Any], dict[str, Any]]] = {
    "mlp": (MLP, {}, {}),
    "fcnn": (FCNN, {}, {}),
    "lenet": (LeNet, {}, {}),
    "vgg11": (VGG, {"depth": 11}, {}),
    "vgg16": (VGG, {"depth": 16}, {}),
    "resnet18": (ResNet, {}, {"widths": [64, 128, 256, 512], "blocks": [2, 2, 2, 2]}),
    "resnet_small": (ResNet, {}, {"widths": [32, 64, 128], "blocks": [1, 1, 2]}),
    "vit_tiny": (ViTTiny, {}, {}),
    "convnext_tiny": (ConvNeXtTiny, {}, {}),
}

#: Names of the built-in models accepted by :func:`build` (see also :func:`register`).
MODEL_NAMES: tuple[str, ...] = tuple(_REGISTRY)

#: name -> factory of the models added by :func:`register`.
_USER_FACTORIES: dict[str, Callable[..., nn.Module]] = {}

_COMMON = ("in_channels", "num_classes", "image_size")
_SPEC_ATTR = "freqlens_spec"

# Bounds on the arguments of build(). A checkpoint's arguments are untrusted input, so every size is checked
# before anything is allocated (ModelError, re-raised by models.load as CheckpointError).
#: Largest ``in_channels``.
MAX_IN_CHANNELS = 64
#: Largest ``num_classes``.
MAX_NUM_CLASSES = 100_000
#: Largest side of ``image_size``.
MAX_IMAGE_SIZE = 4096
#: Largest other integer argument, or integer in a list argument (``widths``, ``dims``, ``hidden``, ``dim``...).
MAX_WIDTH = 65_536
#: Largest total of a layer-count argument (``depth``, ``blocks``, ``depths``: summed over a list).
MAX_DEPTH = 1024
#: Most items in a list argument.
MAX_LIST_LENGTH = 64
#: Most parameter and buffer elements of a built model (2**29: 2 GiB as float32), counted on the meta device.
MAX_PARAMETERS = 2**29
_DEPTH_ARGS = ("depth", "blocks", "depths")
_MAX_INT_BITS = 63


def _plain(value: Any, where: str) -> Any:
    """``value`` as plain Python (``None``/bool/int/float/str, lists, str-keyed dicts)."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ModelError(f"{where} must be finite, got {value!r}")
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(item, where) for item in value]
    if isinstance(value, dict) and all(isinstance(key, str) for key in value):
        return {key: _plain(item, f"{where}.{key}") for key, item in value.items()}
    raise ModelError(
        f"{where} must be plain Python (None, bool, int, float, str, list, dict) so that checkpoints can "
        f"be loaded with weights_only=True; got {type(value).__name__}"
    )


def _channel_values(values: Any, what: str, in_channels: int) -> list[float] | None:
    if values is None:
        return None
    if isinstance(values, Tensor):
        values = values.detach().cpu().reshape(-1).tolist()
    if isinstance(values, (int, float)) and not isinstance(values, bool):
        values = [values] * in_channels
    if not isinstance(values, Sequence) or isinstance(values, (str, bytes)):
        raise ModelError(f"{what} must be a list of {in_channels} float(s), got {values!r}")
    if len(values) != in_channels:
        raise ModelError(f"{what} must have one value per input channel ({in_channels}), got {list(values)!r}")
    if any(isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) for v in values):
        raise ModelError(f"{what} must hold finite numbers, got {list(values)!r}")
    return [float(v) for v in values]


def _check_magnitudes(name: str, kwargs: dict[str, Any]) -> None:
    """Refuse integers beyond 64 bits (they cannot even be printed in an error message: Python limits
    int-to-text conversion), long lists, and containers nested in list or dict arguments (no argument
    needs them, and a deeply nested one would exhaust the recursion of later checks), before any other
    check formats them."""
    containers = (list, tuple, dict)
    for key, value in kwargs.items():
        items = list(value.values()) if isinstance(value, dict) else list(value) \
            if isinstance(value, (list, tuple)) else [value]
        if len(items) > MAX_LIST_LENGTH:
            raise ModelError(f"{name}: {key} has {len(items)} items, more than the {MAX_LIST_LENGTH} allowed")
        for item in items:
            if isinstance(value, containers) and isinstance(item, containers):
                raise ModelError(f"{name}: {key} must be flat, got a nested {type(item).__name__}")
            if isinstance(item, int) and item.bit_length() > _MAX_INT_BITS:
                raise ModelError(f"{name}: {key} holds an integer of {item.bit_length()} bits, far too large")


def _check_architecture(name: str, own: dict[str, Any], parameters: Mapping[str, inspect.Parameter]) -> None:
    """Bound the architecture arguments: no bool for a number, sizes up to :data:`MAX_WIDTH`, layer
    counts up to :data:`MAX_DEPTH` in total."""
    for key, value in own.items():
        default = parameters[key].default
        if isinstance(value, bool) and not isinstance(default, bool):
            raise ModelError(f"{name}: {key} must be a number, got {value!r}")
        items = value if isinstance(value, (list, tuple)) else [value]
        ints = [v for v in items if isinstance(v, int) and not isinstance(v, bool)]
        if key in _DEPTH_ARGS:
            if sum(ints) > MAX_DEPTH:
                raise ModelError(f"{name}: {key} asks for {sum(ints)} layers, more than the {MAX_DEPTH} allowed")
        elif any(v > MAX_WIDTH for v in ints):
            raise ModelError(f"{name}: {key}={value!r} exceeds the limit of {MAX_WIDTH} per size")


def register(name: str, factory: Callable[..., nn.Module], *, replace: bool = False) -> None:
    """Make ``build(name, ...)`` (and so :func:`~freqlens.models.save_model` / :func:`~freqlens.models.load`)
    work for your own model.

    ``build(name, **kwargs)`` calls ``factory(**kwargs)``: ``in_channels``, ``num_classes`` and
    ``image_size`` are passed only when the factory accepts them (by name or ``**kwargs``); ``build``'s
    defaults (3 channels, 10 classes) are passed too, and refused when they differ from the defaults and the
    factory does not take them. ``mean``/``std`` wrap the result in :class:`Normalized`, ``pooling``
    applies :func:`swap_pooling` and ``antialias`` :func:`~freqlens.models.antialias`, as for the built-in
    models. Other keyword arguments must be plain Python
    (they are stored in checkpoints, read back with ``weights_only=True``); the factory's own defaults
    for the keywords it names are stored too. A checkpoint of a registered model loads in a process that
    registered the same name (the factory is not stored). Before :func:`~freqlens.models.load` allocates
    anything, the factory is run on the meta device to count its parameters (as for built-in models), so
    it must build with ``torch.device("meta")`` active, as ``nn`` layers do.

    Args:
        name: The model name (case-insensitive; not one of :data:`MODEL_NAMES`).
        factory: A callable returning an ``nn.Module`` that takes ``B×C×H×W`` pixels in [0, 1] and returns
            ``B×K`` logits (wrap it with :class:`~freqlens.models.SelectOutput` otherwise).
        replace: Allow replacing a factory registered earlier under ``name``.

    Raises:
        ModelError: An empty or built-in name, a factory that is not callable, or a name already
            registered (without ``replace=True``).
    """
    key = name.strip().lower() if isinstance(name, str) else ""
    if not key or key.startswith("zoo:"):
        raise ModelError(f"register: the name must be a non-empty string (not zoo:...), got {name!r}")
    if key in _REGISTRY:
        raise ModelError(f"register: {key!r} is a built-in model of freqlens; choose another name")
    if not callable(factory):
        raise ModelError(f"register: the factory of {key!r} must be callable, got a {type(factory).__name__}")
    if key in _USER_FACTORIES and not replace and _USER_FACTORIES[key] is not factory:
        raise ModelError(f"register: {key!r} is already registered (pass replace=True to replace it)")
    _USER_FACTORIES[key] = factory


def unregister(name: str) -> None:
    """Remove a model added by :func:`register` (nothing happens for a name that is not registered)."""
    _USER_FACTORIES.pop(name.strip().lower() if isinstance(name, str) else name, None)


def registered_names() -> tuple[str, ...]:
    """The names :func:`build` accepts: the built-in :data:`MODEL_NAMES`, then those added by :func:`register`."""
    return MODEL_NAMES + tuple(_USER_FACTORIES)


def _checked_wrappers(name: str, mean: Any, std: Any, pooling: Any, antialias: Any,
                      channels: int) -> tuple[list[float] | None, list[float] | None]:
    """The ``mean`` / ``std`` of the :class:`Normalized` wrapper as ``channels`` floats each (or both
    ``None``), ``pooling`` checked against :data:`SWAP_MODES` and ``antialias`` against
    :data:`~freqlens.models.blurpool.FILTER_SIZES`; :class:`ModelError` otherwise. Shared by built-in and
    registered models."""
    if (mean is None) != (std is None):
        raise ModelError(f"{name}: give both mean and std (per-channel normalisation) or neither")
    mean = _channel_values(mean, f"{name}: mean", channels)
    std = _channel_values(std, f"{name}: std", channels)
    if std is not None and min(std) <= 0:
        raise ModelError(f"{name}: std must be positive, got {std!r}")
    if pooling is not None and pooling not in SWAP_MODES:
        raise ModelError(f"{name}: pooling must be None or one of {SWAP_MODES}, got {pooling!r}")
    if antialias is not None and (isinstance(antialias, bool) or not isinstance(antialias, int)
                                  or antialias not in FILTER_SIZES):
        raise ModelError(f"{name}: antialias must be None or a filter size, an int from {FILTER_SIZES[0]} "
                         f"to {FILTER_SIZES[-1]}, got {antialias!r}")
    return mean, std


def _registered_spec(name: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The canonical spec of the registered model ``name``: the arguments its factory receives (given ones,
    then the factory's plain defaults), plus ``mean``/``std``/``pooling``/``antialias``."""
    factory = _USER_FACTORIES[name]
    kwargs = dict(kwargs)
    _check_magnitudes(name, kwargs)
    mean, std, pooling = kwargs.pop("mean", None), kwargs.pop("std", None), kwargs.pop("pooling", None)
    antialias = kwargs.pop("antialias", None)
    try:
        parameters = dict(inspect.signature(factory).parameters)
        open_ended = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    except (TypeError, ValueError):  # builtins without a signature: pass what is given
        parameters, open_ended = {}, True
    named = {key: p for key, p in parameters.items()
             if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)}
    build_defaults = {"in_channels": 3, "num_classes": 10, "image_size": None}
    for key, default in build_defaults.items():
        if key in kwargs and key not in named and not open_ended:
            if kwargs[key] != default:
                raise ModelError(f"{name}: its factory takes no {key} argument, got {key}={kwargs[key]!r}")
            del kwargs[key]
    if kwargs.get("image_size", 0) is None:
        del kwargs["image_size"]
    unknown = sorted(key for key in kwargs if key not in named) if not open_ended else []
    if unknown:
        raise ModelError(f"{name}: unknown argument(s) {', '.join(unknown)}; its factory takes: "
                         f"{', '.join(named) or 'nothing'}, and mean, std, pooling, antialias")
    own = dict(kwargs)
    for key, parameter in named.items():
        if key not in own and parameter.default is not inspect.Parameter.empty:
            with contextlib.suppress(ModelError):
                own[key] = _plain(parameter.default, f"{name}: {key}")
    channels = own.get("in_channels") if isinstance(own.get("in_channels"), int) else \
        (len(mean) if isinstance(mean, Sequence) else 1)
    mean, std = _checked_wrappers(name, mean, std, pooling, antialias, channels)
    return {"name": name, "kwargs": _plain({**own, "mean": mean, "std": std, "pooling": pooling,
                                            "antialias": antialias}, name)}


def canonical_spec(name: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """``{"name", "kwargs"}`` with every argument of ``build(name, **kwargs)`` filled in (defaults
    included) as plain Python.

    Args:
        name: a model name (:func:`registered_names`; case and surrounding spaces ignored).
        kwargs: the arguments of :func:`build` besides ``name``.

    Returns:
        The canonical spec ``{"name": lower-case name, "kwargs": {...}}``.

    Raises:
        ModelError: an unknown name or argument, or an invalid or out-of-bounds value.
    """
    key = name.strip().lower() if isinstance(name, str) else None
    if key in _USER_FACTORIES:
        return _registered_spec(key, kwargs)
    if key not in _REGISTRY:
        raise ModelError(f"unknown model {name!r}; valid names: {', '.join(registered_names())} (add your own "
                         "with freqlens.models.register(name, factory))")
    name = key
    cls, fixed, defaults = _REGISTRY[name]
    kwargs = dict(kwargs)
    _check_magnitudes(name, kwargs)
    in_channels = kwargs.pop("in_channels", 3)
    num_classes = kwargs.pop("num_classes", 10)
    image_size = kwargs.pop("image_size", None)
    mean, std = kwargs.pop("mean", None), kwargs.pop("std", None)
    pooling = kwargs.pop("pooling", None)
    antialias = kwargs.pop("antialias", None)
    for key, value, bound in (("in_channels", in_channels, MAX_IN_CHANNELS),
                              ("num_classes", num_classes, MAX_NUM_CLASSES)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ModelError(f"{name}: {key} must be a positive int, got {value!r}")
        if value > bound:
            raise ModelError(f"{name}: {key}={value} exceeds the limit of {bound}")
    height, width = as_size(28 if in_channels == 1 else 32) if image_size is None else as_size(image_size)
    if max(height, width) > MAX_IMAGE_SIZE:
        raise ModelError(f"{name}: image_size {height}×{width} exceeds the limit of {MAX_IMAGE_SIZE} per side")
    mean, std = _checked_wrappers(name, mean, std, pooling, antialias, in_channels)

    parameters = inspect.signature(cls.__init__).parameters
    accepted = [key for key in parameters if key not in ("self", *_COMMON, *fixed)]
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        extra = ", ".join(accepted) if accepted else "none"
        raise ModelError(
            f"{name}: unknown argument(s) {', '.join(unknown)}; accepted: in_channels, num_classes, "
            f"image_size, mean, std, pooling, antialias, and for {name}: {extra}"
        )
    own = {key: kwargs.get(key, defaults.get(key, parameters[key].default)) for key in accepted}
    _check_architecture(name, own, parameters)
    full = {
        "in_channels": in_channels, "num_classes": num_classes, "image_size": [height, width],
        "mean": mean, "std": std, "pooling": pooling, "antialias": antialias, **own,
    }
    return {"name": name, "kwargs": _plain(full, name)}


class _SkipInPlaceOnMeta(TorchFunctionMode):
    """In-place tensor methods (``normal_``, ``uniform_``, ``zero_``...) do nothing on meta tensors.

    A network built on the meta device only needs its shapes; its weight initialisation has nothing to
    fill, and torch loads its meta kernel of ``normal_`` lazily, which takes seconds on first use.
    """

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        name = getattr(func, "__name__", "")
        if name.endswith("_") and not name.startswith("_") and args and isinstance(args[0], Tensor) \
                and args[0].is_meta:
            return args[0]
        return func(*args, **(kwargs or {}))


def _assemble(spec: dict[str, Any], *, meta: bool = False) -> nn.Module:
    """The model of a canonical ``spec``; with ``meta=True`` its network lives on the meta device
    (shapes only: nothing is allocated nor initialised)."""
    args = dict(spec["kwargs"])
    mean, std, pooling = args.pop("mean"), args.pop("std"), args.pop("pooling")
    antialias = args.pop("antialias", None)
    if spec["name"] in _USER_FACTORIES:
        make: Callable[..., nn.Module] = _USER_FACTORIES[spec["name"]]
        fixed: dict[str, Any] = {}
    else:
        make, fixed, _ = _REGISTRY[spec["name"]]
        args["image_size"] = tuple(args["image_size"])
    if meta:
        with torch.device("meta"), _SkipInPlaceOnMeta():
            net: nn.Module = make(**args, **fixed)
    else:
        net = make(**args, **fixed)
    if not isinstance(net, nn.Module):
        raise ModelError(f"{spec['name']}: the registered factory returned a {type(net).__name__}, not an nn.Module")
    if antialias is not None:  # before the pooling swap: it turns max pools into average ones
        net = antialias_twin(net, antialias)
    if pooling is not None:
        net = swap_pooling(net, pooling)
    return net if mean is None else Normalized(net, mean, std)


def _planned_state(spec: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """Shapes of the state dict of the model of ``spec``, from a build on the meta device; ModelError
    when the arguments cannot be built or the model exceeds :data:`MAX_PARAMETERS` elements."""
    try:
        model = _assemble(spec, meta=True)
    except ModelError:
        raise
    except Exception as error:  # e.g. sizes torch cannot represent, or a registered factory's own error
        detail = " ".join(str(error).split())[:300]
        raise ModelError(f"{spec['name']}: cannot be built with these arguments "
                         f"({type(error).__name__}: {detail})") from error
    shapes = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    count = sum(math.prod(shape) for shape in shapes.values())
    if count > MAX_PARAMETERS:
        raise ModelError(
            f"{spec['name']}: these arguments ask for {count:,} parameter elements, more than the "
            f"{MAX_PARAMETERS:,} allowed"
        )
    return shapes


def state_shapes(name: str, **kwargs: Any) -> dict[str, tuple[int, ...]]:
    """The state-dict shapes of ``build(name, **kwargs)``, computed without allocating it.

    Args:
        name: A model name (see :func:`build`).
        **kwargs: The arguments of :func:`build`.

    Returns:
        ``{state-dict key: shape}``.

    Raises:
        ModelError: Unknown name, invalid or out-of-bounds arguments (the same checks as :func:`build`).
    """
    return _planned_state(canonical_spec(name, kwargs))


def build(
    name: str,
    in_channels: int = 3,
    num_classes: int = 10,
    image_size: int | tuple[int, int] | None = None,
    *,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    pooling: str | None = None,
    antialias: int | None = None,
    **kwargs: Any,
) -> nn.Module:
    """Build a zoo model for ``B×in_channels×H×W`` pixels in [0, 1].

    Arguments are bounded, and checked before anything is allocated (they may come from an untrusted
    checkpoint): ``in_channels`` <= :data:`MAX_IN_CHANNELS` (64), ``num_classes`` <= :data:`MAX_NUM_CLASSES`
    (100,000), each side of ``image_size`` <= :data:`MAX_IMAGE_SIZE` (4096), any other integer size
    <= :data:`MAX_WIDTH` (65,536), layer counts (``depth``, ``blocks``, ``depths``) <= :data:`MAX_DEPTH`
    (1024) in total, lists <= :data:`MAX_LIST_LENGTH` (64) items, no bool where a number is expected,
    and at most :data:`MAX_PARAMETERS` (2**29) parameter elements, counted by a build on the meta device.

    Args:
        name: ``mlp, fcnn, lenet, vgg11, vgg16, resnet18, resnet_small, vit_tiny, convnext_tiny``, or one
            added by :func:`register` (whose factory receives the arguments).
        in_channels: input channels ``C``.
        num_classes: output logits ``K``.
        image_size: int or ``(H, W)``; default 28 for one channel, else 32. Fixes the input size of
            ``mlp`` and ``vit_tiny``; the conv nets take any size from their ``min_size`` up (>= 28
            always).
        mean: with ``std``, wraps the network in :class:`Normalized` (one value per channel).
        std: see ``mean``.
        pooling: ``"avg"`` applies :func:`swap_pooling`; ``None``: the architecture's own pooling.
        antialias: ``N`` (an int from 1 to 7) makes the anti-aliased twin of
            :func:`~freqlens.models.antialias` (Zhang 2019: blur with an N-tap binomial filter, then
            subsample, in place of every strided convolution and max pool; applied before the pooling
            swap when both are given).
        **kwargs: architecture arguments (e.g. ``widths``, ``dim``).

    Returns:
        The model. It carries ``model.freqlens_spec = {"name", "kwargs"}`` (all arguments, plain
            Python), from which :func:`freqlens.models.load` rebuilds it.

    Raises:
        ModelError: Unknown name, invalid or out-of-bounds arguments.
    """
    spec = canonical_spec(
        name,
        dict(in_channels=in_channels, num_classes=num_classes, image_size=image_size, mean=mean, std=std,
             pooling=pooling, antialias=antialias, **kwargs),
    )
    _planned_state(spec)
    model = _assemble(spec)
    setattr(model, _SPEC_ATTR, spec)
    return model


def model_spec(model: nn.Module) -> dict[str, Any]:
    """A copy of ``{"name": ..., "kwargs": {...}}`` of a model made by :func:`build` (also when it was
    then wrapped by ``Normalized`` or passed through ``swap_pooling`` or ``antialias``)."""
    spec = getattr(model, _SPEC_ATTR, None)
    if isinstance(spec, dict):
        return copy.deepcopy(spec)
    if isinstance(model, Normalized):
        inner = getattr(model.model, _SPEC_ATTR, None)
        if isinstance(inner, dict) and inner["kwargs"].get("mean") is None:
            spec = copy.deepcopy(inner)
            spec["kwargs"]["mean"] = [float(v) for v in model.mean.tolist()]
            spec["kwargs"]["std"] = [float(v) for v in model.std.tolist()]
            return spec
    raise ModelError(
        f"this {type(model).__name__} was not built by freqlens.models.build, so it has no name and "
        f"arguments to rebuild it from; build it with freqlens.models.build(name, ...)"
    )


def describe_spec(spec: dict[str, Any]) -> str:
    """``'vgg11' (in_channels=3, num_classes=10, ...)`` for error messages."""
    args = ", ".join(f"{key}={_brief(value)}" for key, value in spec.get("kwargs", {}).items())
    return f"{spec.get('name')!r} ({args})"


class _BriefRepr(reprlib.Repr):
    """``repr`` for messages: bounded depth and length, and integers too long for Python to print
    (beyond 4300 digits) shown by their size."""

    def __init__(self) -> None:
        super().__init__()
        self.maxlevel, self.maxlist, self.maxtuple, self.maxdict = 3, MAX_LIST_LENGTH, MAX_LIST_LENGTH, 16
        self.maxstring = self.maxother = 200

    def repr_int(self, x: int, level: int) -> str:
        return f"<integer of {x.bit_length()} bits>" if x.bit_length() > _MAX_INT_BITS else repr(x)


_brief = _BriefRepr().repr


def features(model: nn.Module, x: Tensor) -> Tensor:
    """``B×D`` penultimate features of ``x`` (pixels): the input of the model's final classifier layer.

    :class:`Normalized` wrappers are applied then unwrapped; zoo models use their
    ``forward_features``; other models fall back to the input of their last ``nn.Linear`` module
    (in registration order), captured by a hook during a forward pass.

    Args:
        model: the classifier.
        x: images ``B×C×H×W`` in [0, 1].

    Returns:
        The features ``B×D`` (flattened from the second dimension on in the fallback).

    Raises:
        ModelError: a model with neither ``forward_features`` nor a called ``nn.Linear``.
    """
    if isinstance(model, Normalized):
        return features(model.model, model.normalize(x))
    forward_features = getattr(model, "forward_features", None)
    if callable(forward_features):
        return forward_features(x)
    linears = [module for module in model.modules() if isinstance(module, nn.Linear)]
    if not linears:
        raise ModelError(
            f"features: {type(model).__name__} has neither forward_features nor an nn.Linear layer whose "
            "input could serve as penultimate features"
        )
    captured: list[Tensor] = []

    def hook(_module: nn.Module, inputs: tuple[Tensor, ...]) -> None:
        captured.append(inputs[0])

    with contextlib.ExitStack() as stack:
        handle = linears[-1].register_forward_pre_hook(hook)
        stack.callback(handle.remove)
        model(x)
    if not captured:
        raise ModelError(f"features: the last nn.Linear of {type(model).__name__} was not called in forward")
    return captured[-1].flatten(1)


def num_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameter elements (shared parameters counted once).

    Args:
        model: the network.
        trainable_only: count only the parameters with ``requires_grad``.

    Returns:
        The count.
    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


__all__ = ["MODEL_NAMES", "build", "canonical_spec", "describe_spec", "features", "model_spec",
           "num_parameters", "register", "registered_names", "state_shapes", "unregister"]
