"""Layer-wise high-frequency content of gradients (seed 001, §3, Fig. 5).

For every selected layer ``ℓ`` with output ``a_ℓ`` (``B×C×H×W``), the gradient ``∂f/∂a_ℓ`` of the
target logit ``f`` is summed over channels to one ``H×W`` map per image and scored by a
:mod:`freqlens.spectral` high-frequency measure: ``compression`` (:func:`compression_ratio`, the
paper's proxy), ``hf_power`` (:func:`hf_power_ratio`) or ``laplacian`` (:func:`laplacian_energy`).
The score is the mean over images, or, with ``average_maps=True``, the measure of the mean map
(averaging first cancels image-specific structure and reveals systematic checkerboard patterns of
strided convolutions / pooling).

Default layers: every ``Conv2d``, 2-D pooling (max / avg / adaptive / LP) and activation module
(``torch.nn.modules.activation``) whose output is a 4-D tensor with ``H, W ≥ 2``. Outputs are
captured by forward hooks (registered in a context manager and always removed); a hook hands the
rest of the network a clone of the output, so in-place activations downstream do not alter the
captured tensor. A module called several times in one forward gives one entry per call, the
``k``-th call named ``"name#k"`` (k ≥ 2).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence

import torch
from torch import Tensor, nn

from freqlens.spectral import compression_ratio, hf_power_ratio, laplacian_energy
from freqlens.utils.progress import progress_counter
from freqlens.utils.scores import select_score
from freqlens.utils.tensors import (
    check_images,
    check_logits,
    check_model,
    check_model_and_images,
    chunks,
    eval_mode,
    reduce_channels,
    resolve_target,
)

__all__ = ["LAYER_MEASURES", "default_layer_names", "layer_hf_content"]

LAYER_MEASURES: dict[str, Callable[[Tensor], Tensor]] = {
    "compression": compression_ratio,
    "hf_power": hf_power_ratio,
    "laplacian": laplacian_energy,
}

_POOLING = (nn.modules.pooling._MaxPoolNd, nn.modules.pooling._AvgPoolNd,
            nn.modules.pooling._AdaptiveAvgPoolNd, nn.modules.pooling._AdaptiveMaxPoolNd,
            nn.modules.pooling._LPPoolNd)


def _is_candidate(module: nn.Module) -> bool:
    return (isinstance(module, (nn.Conv2d, *_POOLING))
            or type(module).__module__ == nn.modules.activation.__name__)


def _is_spatial(output: object) -> bool:
    return isinstance(output, Tensor) and output.dim() == 4 and min(output.shape[-2:]) >= 2


@contextlib.contextmanager
def _capture(modules: dict[str, nn.Module], store: list[tuple[str, Tensor]]) -> Iterator[None]:
    """Forward hooks appending ``(name, output)`` to ``store`` in call order; always removed."""
    handles = []
    calls: dict[str, int] = {}

    def make_hook(name: str) -> Callable[[nn.Module, object, object], object]:
        def hook(module: nn.Module, args: object, output: object) -> object:
            calls[name] = calls.get(name, 0) + 1
            label = name if calls[name] == 1 else f"{name}#{calls[name]}"
            store.append((label, output))
            # Downstream in-place ops then act on a copy; the gradient still flows through it.
            return output.clone() if isinstance(output, Tensor) else None
        return hook

    try:
        for name, module in modules.items():
            handles.append(module.register_forward_hook(make_hook(name)))
        yield
    finally:
        for handle in handles:
            handle.remove()


def default_layer_names(model: nn.Module, inputs: Tensor) -> list[str]:
    """Names of the default layers of :func:`layer_hf_content`.

    The default layers are every Conv2d, 2-D pooling and activation module producing a 4-D output with
    ``H, W ≥ 2`` on ``inputs[:1]`` (one forward pass, eval mode, no gradients).

    Args:
        model: the classifier.
        inputs: ``B×C×H×W`` images (only the first one is used).

    Returns:
        The names in call order, ``"name#k"`` for the k-th call of a module called repeatedly.
    """
    model = check_model(model)
    inputs = check_images(inputs)
    candidates = {name: m for name, m in model.named_modules() if name and _is_candidate(m)}
    store: list[tuple[str, Tensor]] = []
    with eval_mode(model), torch.no_grad(), _capture(candidates, store):
        check_logits(model(inputs[:1]), 1)
    return [name for name, output in store if _is_spatial(output)]


def _select(model: nn.Module, inputs: Tensor, layers: Sequence[str] | None) -> tuple[dict[str, nn.Module], list[str]]:
    """Modules to hook and the labels (call order) to report."""
    if layers is None:
        labels = default_layer_names(model, inputs)
        if not labels:
            raise ValueError("the model has no Conv2d, pooling or activation module with a 4-D output")
    else:
        if isinstance(layers, str) or not all(isinstance(name, str) for name in layers):
            raise TypeError("layers must be a sequence of module names (str)")
        labels = list(dict.fromkeys(layers))
        if not labels:
            raise ValueError("layers is empty")
    named = dict(model.named_modules())
    base_names = [label.split("#")[0] if label not in named else label for label in labels]
    unknown = [name for name in base_names if name not in named or not name]
    if unknown:
        raise ValueError(f"unknown layer name(s) {unknown}; see model.named_modules()")
    return {name: named[name] for name in base_names}, labels


def layer_hf_content(
    model: nn.Module,
    inputs: Tensor,
    target: Tensor | int | None = None,
    measure: str = "compression",
    layers: Sequence[str] | None = None,
    batch_size: int | None = None,
    average_maps: bool = False,
    progress: bool = False,
) -> list[tuple[str, float]]:
    """High-frequency content of ``∂f/∂(layer output)`` per layer (seed 001, Fig. 5).

    Args:
        model: classifier returning logits (held in eval mode, flags restored).
        inputs: ``B×C×H×W`` floating images.
        target: classes (``LongTensor[B]``, an int, or ``None`` = predicted class); ``f`` = its logit.
        measure: ``"compression"``, ``"hf_power"`` or ``"laplacian"`` (see module doc).
        layers: module names (``model.named_modules()``, ``"name#k"`` for the k-th call) to
            restrict to; default: every Conv2d, pooling and activation with a 4-D output.
        batch_size: images per forward/backward pass (default: all).
        average_maps: measure the mean gradient map over images instead of averaging the measure.
        progress: show a tqdm bar on stderr.

    Returns:
        ``[(name, value), ...]`` in forward order.

    Raises:
        ValueError: an unknown ``measure`` or layer name, no default layer, or a layer that is not
            called or does not produce a 4-D ``B×C×H×W`` tensor.
        TypeError: ``layers`` is not a sequence of names.
    """
    inputs, step = check_model_and_images(model, inputs, batch_size)
    if measure not in LAYER_MEASURES:
        raise ValueError(f"unknown measure {measure!r}; expected one of {', '.join(LAYER_MEASURES)}")
    score_maps = LAYER_MEASURES[measure]
    batch = inputs.shape[0]
    modules, labels = _select(model, inputs, layers)
    totals: dict[str, Tensor] = {}

    with eval_mode(model):
        target = resolve_target(model, inputs, target, batch_size=step)
        with progress_counter(batch, "layer gradients", progress) as bar:
            for part in chunks(batch, step):
                store: list[tuple[str, Tensor]] = []
                with torch.enable_grad(), _capture(modules, store):
                    x = inputs[part].detach().requires_grad_(True)
                    score = select_score(model(x), target[part], "logit").sum()
                    captured: dict[str, Tensor] = {}
                    for label, output in store:
                        captured.setdefault(label, output)
                    missing = [label for label in labels if label not in captured]
                    if missing:
                        raise ValueError(f"layer(s) {missing} were not called during the forward pass")
                    bad = [label for label in labels if not isinstance(captured[label], Tensor)
                           or captured[label].dim() != 4]
                    if bad:
                        raise ValueError(f"layer(s) {bad} do not produce a 4-D B×C×H×W tensor")
                    if part.start == 0:  # report in forward order
                        order = {label: i for i, (label, _) in enumerate(store)}
                        labels.sort(key=order.__getitem__)
                    outputs = [captured[label] for label in labels]
                    grads = torch.autograd.grad(score, outputs, allow_unused=True)
                for label, output, grad in zip(labels, outputs, grads):
                    grad = torch.zeros_like(output) if grad is None else grad
                    maps = reduce_channels(grad.detach(), "sum")  # b×H×W
                    value = maps.sum(dim=0, keepdim=True) if average_maps else score_maps(maps).sum()
                    value = value.to(torch.float64)
                    totals[label] = totals[label] + value if label in totals else value
                bar.update(part.stop - part.start)

    if average_maps:
        return [(label, float(score_maps(totals[label] / batch)[0])) for label in labels]
    return [(label, float(totals[label]) / batch) for label in labels]
