"""The explainer protocol shared by every attribution method.

An explainer is built around a model (``Explainer(model, ...)``) or around another explainer (noise
tunnel, FORGrad) and maps ``inputs`` (``B×C×H×W`` float, pixels in [0, 1]) and ``target``
(``LongTensor[B]`` or ``None`` = predicted class) to attribution maps (``B×C×H×W`` for per-channel
gradient methods, ``B×1×H×W`` otherwise). ``explainer(inputs, target)`` is ``explainer.attribute(...)``.

Stochastic explainers (noise tunnels, RISE, Sobol, HSIC...) draw from a ``torch.Generator``: either an
``attribute(..., generator=...)`` argument or a ``generator`` attribute; :func:`call_explainer` hands a
generator to either kind. Also here: the score of a target (:func:`select_score`: logit, probability
or log-probability), :func:`count_passes`, which counts the images a model forwards / back-propagates, and
:func:`planned_passes`, the passes an explainer plans per image before it runs.
"""

from __future__ import annotations

import contextlib
import inspect
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TypeVar

import torch
from torch import Tensor, nn

# re-exported: part of the explainer toolkit (shared with metrics and training through freqlens.utils)
from freqlens.utils.tensors import (
    check_images,
    check_inputs,
    check_logits,
    chunks,
    eval_mode,
    pixel_range,
    predict,
    resolve_target,
)

__all__ = [
    "SCORES",
    "Explainer",
    "PassCount",
    "WrapperExplainer",
    "accumulation_dtype",
    "call_explainer",
    "check_images",
    "check_inputs",
    "check_logits",
    "check_score",
    "check_target_range",
    "chunks",
    "count_passes",
    "eval_mode",
    "is_stochastic",
    "pixel_range",
    "planned_passes",
    "predict",
    "progress_bar",
    "resolve_target",
    "select_score",
    "uncounted",
]

_T = TypeVar("_T")

#: Scores an explainer can explain: the raw logit, the softmax probability or its logarithm.
SCORES = ("logit", "prob", "log_prob")


class Explainer(ABC):
    """Base class: subclasses implement :meth:`attribute`."""

    #: ``True`` when maps are per input channel (``B×C×H×W``), ``False`` for ``B×1×H×W`` maps.
    per_channel: bool = True
    #: ``"gradient"`` or ``"black-box"`` (used by the frequency analyses to mark families).
    family: str = "gradient"

    def __init__(self, model: nn.Module) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"{type(self).__name__} expects a torch.nn.Module, got {type(model).__name__}")
        self.model = model

    @abstractmethod
    def attribute(self, inputs: Tensor, target: Tensor | int | None = None) -> Tensor:
        """Return attribution maps for ``inputs`` (``B×C×H×W``) and ``target``."""

    def __call__(self, inputs: Tensor, target: Tensor | int | None = None, **kwargs: object) -> Tensor:
        return self.attribute(inputs, target, **kwargs)

    def planned_passes(self, height: int, width: int) -> PassCount | None:
        """Images through the model's forward / backward passes per explained image of ``height×width``
        pixels, with the target given (``None``: not known in advance). See :func:`planned_passes`."""
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class WrapperExplainer(Explainer):
    """An explainer built around another one (noise tunnel, FORGrad): ``model``, ``per_channel`` and
    ``family`` follow the wrapped ``explainer`` (any object with ``attribute(inputs, target)``)."""

    def __init__(self, explainer: object) -> None:
        if not callable(getattr(explainer, "attribute", None)):
            raise TypeError(f"{type(self).__name__} wraps an explainer with an attribute() method, got {explainer!r}")
        self.explainer = explainer

    @property
    def model(self):
        return getattr(self.explainer, "model", None)

    @property
    def per_channel(self) -> bool:
        return bool(getattr(self.explainer, "per_channel", True))

    @property
    def family(self) -> str:
        return str(getattr(self.explainer, "family", "gradient"))

    def planned_passes(self, height: int, width: int) -> PassCount | None:
        """Those of the wrapped explainer (a wrapper that calls it once per image, as FORGrad)."""
        return planned_passes(self.explainer, height, width)


def check_target_range(target: Tensor, num_classes: int) -> None:
    """Raise ``ValueError`` when a class index is not below ``num_classes``."""
    if target.numel() and int(target.max()) >= num_classes:
        raise ValueError(f"target class {int(target.max())} is out of range for a model with {num_classes} outputs")


def check_score(score: str) -> str:
    """Return ``score`` if it is one of :data:`SCORES`, else raise ``ValueError``."""
    if score not in SCORES:
        raise ValueError(f"unknown score {score!r}; expected one of {', '.join(SCORES)}")
    return score


def select_score(logits: Tensor, target: Tensor, score: str = "logit") -> Tensor:
    """The target's score per row of ``logits`` (``B×K``): logit, softmax probability or log-probability.

    Checks the target range against ``K`` (``ValueError``). Returns ``Tensor[B]``.
    """
    check_logits(logits)
    check_target_range(target, logits.shape[1])
    if score == "prob":
        logits = logits.softmax(dim=1)
    elif score == "log_prob":
        logits = logits.log_softmax(dim=1)
    elif score != "logit":
        check_score(score)
    return logits.gather(1, target[:, None]).squeeze(1)


def progress_bar(items: Iterable[_T], total: int, enabled: bool, desc: str) -> Iterable[_T]:
    """Wrap ``items`` in a tqdm bar on stderr when ``enabled`` and there is more than one item."""
    if not enabled or total <= 1:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, total=total, desc=desc, leave=False)


@dataclass
class PassCount:
    """Images that went through a model's forward / backward passes inside :func:`count_passes`."""

    forward: int = 0
    backward: int = 0
    forward_calls: int = 0
    backward_calls: int = 0


_UNCOUNTED = threading.local()


@contextlib.contextmanager
def uncounted() -> Iterator[None]:
    """Passes run inside this block (in this thread) are not seen by :func:`count_passes`: for the
    one-image probes that size the work (automatic ``batch_size``, GradCAM's automatic layer), which are
    cached and run once per model and image shape, not once per explained image."""
    _UNCOUNTED.depth = getattr(_UNCOUNTED, "depth", 0) + 1
    try:
        yield
    finally:
        _UNCOUNTED.depth -= 1


@contextlib.contextmanager
def count_passes(model: nn.Module) -> Iterator[PassCount]:
    """Count images through ``model``'s forward (and backward) passes while the block runs.

    ``forward`` adds the batch size of every call of ``model`` (its first positional input);
    ``backward`` adds the batch size whenever a gradient flows back through its output. The forward
    hook is always removed; backward hooks live on the outputs' graph and stop counting on exit. Probes
    run under :func:`uncounted` are not counted.

    >>> with count_passes(model) as count:
    ...     Saliency(model)(x)
    >>> count.forward, count.backward
    """
    count = PassCount()
    active = True

    def on_forward(module: nn.Module, args: tuple, output: object) -> None:
        if getattr(_UNCOUNTED, "depth", 0):
            return
        batch = args[0].shape[0] if args and isinstance(args[0], Tensor) and args[0].dim() else 1
        count.forward += batch
        count.forward_calls += 1
        if isinstance(output, Tensor) and output.requires_grad:

            def on_backward(grad: Tensor) -> None:
                if active:
                    count.backward += batch
                    count.backward_calls += 1

            output.register_hook(on_backward)

    handle = model.register_forward_hook(on_forward)
    try:
        yield count
    finally:
        active = False
        handle.remove()


def planned_passes(explainer: object, height: int, width: int) -> PassCount | None:
    """Forward / backward passes per image that ``explainer`` plans on ``height×width`` images, with the
    target given (``target=None`` adds one forward pass per image to the gradient methods, which first
    predict it), e.g. ``PassCount(forward=226, backward=0)`` for the default Occlusion at 224 px;
    ``None`` for an explainer that does not say (no ``planned_passes`` method). Probes are not included
    (see :func:`uncounted`); the numbers equal what :func:`count_passes` counts."""
    plan = getattr(explainer, "planned_passes", None)
    if not callable(plan):
        return None
    return plan(int(height), int(width))


def is_stochastic(explainer: object) -> bool:
    """Whether ``explainer`` draws random numbers (noise tunnels, RISE, Sobol, ...).

    Its ``stochastic`` attribute when it has one; else ``True`` when its ``attribute`` takes a
    ``generator`` argument or it holds a ``generator`` attribute.
    """
    flag = getattr(explainer, "stochastic", None)
    if flag is not None:
        return bool(flag)
    return _takes_generator(explainer) or hasattr(explainer, "generator")


def _takes_generator(explainer: object) -> bool:
    try:
        parameters = inspect.signature(explainer.attribute).parameters  # type: ignore[attr-defined]
    except (AttributeError, TypeError, ValueError):
        return False
    return "generator" in parameters


def call_explainer(
    explainer: object, inputs: Tensor, target: Tensor | int | None, generator: torch.Generator | None = None
) -> Tensor:
    """``explainer.attribute(inputs, target)`` with ``generator`` handed over when it can take one.

    Passed as the ``generator=`` argument of ``attribute`` when it has one, else set as the
    explainer's ``generator`` attribute for the duration of the call (and restored). Ignored for a
    ``None`` generator or an explainer that takes none.
    """
    attribute = explainer.attribute  # type: ignore[attr-defined]
    if generator is None:
        return attribute(inputs, target)
    if _takes_generator(explainer):
        return attribute(inputs, target, generator=generator)
    if hasattr(explainer, "generator"):
        saved = explainer.generator  # type: ignore[attr-defined]
        explainer.generator = generator  # type: ignore[attr-defined]
        try:
            return attribute(inputs, target)
        finally:
            explainer.generator = saved  # type: ignore[attr-defined]
    return attribute(inputs, target)


def accumulation_dtype(device: torch.device) -> torch.dtype:
    """float64 for running sums, except on devices without it (MPS: float32)."""
    return torch.float32 if device.type == "mps" else torch.float64
