"""Max pooling and strided convolutions -> average pooling (smoother input-gradients; seeds 001/003)."""

from __future__ import annotations

import copy
from collections.abc import Callable

from torch import nn

SWAP_MODES = ("avg",)


def _avg_for_max(pool: nn.MaxPool2d) -> nn.AvgPool2d:
    if pool.return_indices:
        raise ValueError("swap_pooling: cannot replace a MaxPool2d with return_indices=True")
    if pool.dilation not in (1, (1, 1)):
        raise ValueError(f"swap_pooling: cannot replace a dilated MaxPool2d (dilation={pool.dilation})")
    # count_include_pad=False: a padded max pool never picks the padding, so neither does the average.
    return nn.AvgPool2d(pool.kernel_size, pool.stride, pool.padding, ceil_mode=pool.ceil_mode,
                        count_include_pad=False)


def _avg_for_adaptive_max(pool: nn.AdaptiveMaxPool2d) -> nn.AdaptiveAvgPool2d:
    if pool.return_indices:
        raise ValueError("swap_pooling: cannot replace an AdaptiveMaxPool2d with return_indices=True")
    return nn.AdaptiveAvgPool2d(pool.output_size)


def _unstrided(conv: nn.Conv2d) -> nn.Sequential:
    """Same convolution with stride 1, then ``AvgPool2d(stride, ceil_mode=True)``.

    With ``L = H + 2p - d(k - 1)`` the stride-1 output size, the strided conv gives
    ``floor((L - 1) / s) + 1 = ceil(L / s)`` rows, exactly what the ceil-mode pool gives.
    """
    stride = conv.stride
    conv.stride = (1, 1)
    return nn.Sequential(conv, nn.AvgPool2d(stride, stride, ceil_mode=True))


def record_in_spec(model: nn.Module, key: str, value: object) -> nn.Module:
    """Set ``kwargs[key] = value`` in the ``freqlens_spec`` of every module of ``model`` built by
    :func:`freqlens.models.build` (so that a transformed copy rebuilds as such).

    Args:
        model: the model (modified in place).
        key: the spec argument's name (e.g. ``"pooling"``).
        value: its value.

    Returns:
        ``model``.
    """
    for module in model.modules():
        spec = getattr(module, "freqlens_spec", None)
        if isinstance(spec, dict) and isinstance(spec.get("kwargs"), dict):
            spec["kwargs"][key] = value
    return model


def replace_modules(model: nn.Module, replacement: Callable[[nn.Module], nn.Module | None]) -> nn.Module:
    """Replace, in place, every submodule ``m`` of ``model`` (and ``model`` itself) for which
    ``replacement(m)`` is not ``None`` by that result.

    The children of a replaced module are not visited; a module shared at several places is replaced
    once, by one new module.

    Args:
        model: the root module.
        replacement: ``replacement(m) -> new module | None`` (``None``: keep ``m`` and visit its children).

    Returns:
        The new root (``model`` unless ``model`` itself was replaced).
    """
    replacements: dict[int, nn.Module | None] = {}

    def replaced(module: nn.Module) -> nn.Module | None:
        if id(module) not in replacements:
            replacements[id(module)] = replacement(module)
        return replacements[id(module)]

    def visit(parent: nn.Module) -> None:
        for name, child in list(parent._modules.items()):  # named_children() skips repeats
            if child is None:
                continue
            new = replaced(child)
            if new is None:
                visit(child)
            else:
                setattr(parent, name, new)

    root = replaced(model)
    if root is not None:
        return root
    visit(model)
    return model


def swap_pooling(model: nn.Module, mode: str = "avg") -> nn.Module:
    """A deep copy of ``model`` with every ``MaxPool2d`` -> ``AvgPool2d`` (same kernel, stride,
    padding, ceil mode), every ``AdaptiveMaxPool2d`` -> ``AdaptiveAvgPool2d`` and every strided
    ``Conv2d`` -> ``Sequential(Conv2d(stride=1, same weights), AvgPool2d(stride, ceil_mode=True))``.

    Output shapes are unchanged for every input size (odd ones included); ``model`` is left untouched.
    Pooling done with functional calls inside ``forward`` is not seen. A model built by
    :func:`freqlens.models.build` records ``pooling="avg"`` in its spec, so checkpoints rebuild it.

    Args:
        model: the network.
        mode: a name of :data:`SWAP_MODES` (``"avg"``).

    Returns:
        The transformed copy.

    Raises:
        ValueError: an unknown ``mode``.
        TypeError: ``model`` is not an ``nn.Module``.
    """
    if mode not in SWAP_MODES:
        raise ValueError(f"swap_pooling: unknown mode {mode!r}; expected one of {SWAP_MODES}")
    if not isinstance(model, nn.Module):
        raise TypeError(f"swap_pooling expects a torch.nn.Module, got {type(model).__name__}")

    def replacement(module: nn.Module) -> nn.Module | None:
        if isinstance(module, nn.MaxPool2d):
            return _avg_for_max(module)
        if isinstance(module, nn.AdaptiveMaxPool2d):
            return _avg_for_adaptive_max(module)
        if isinstance(module, nn.Conv2d) and tuple(module.stride) != (1, 1):
            return _unstrided(module)
        return None

    return record_in_spec(replace_modules(copy.deepcopy(model), replacement), "pooling", mode)
