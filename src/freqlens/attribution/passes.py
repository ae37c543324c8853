"""Counting the images a model forwards / back-propagates, and the passes an explainer plans.

:func:`count_passes` counts (a forward hook, plus a hook on the output's gradient); :func:`uncounted` hides
the one-image probes that size the work; :func:`planned_passes` asks an explainer for its plan per image.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass

from torch import Tensor, nn

__all__ = ["PassCount", "count_passes", "planned_passes", "uncounted"]


@dataclass
class PassCount:
    """Images that went through a model's forward / backward passes inside :func:`count_passes`.

    Attributes:
        forward: images through the forward passes (the batch size of every call, summed).
        backward: images whose gradient flowed back through the model's output.
        forward_calls: number of forward calls.
        backward_calls: number of backward passes through the output.
    """

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
    """Forward / backward passes per image that ``explainer`` plans, with the target given.

    ``target=None`` adds one forward pass per image to the gradient methods, which first predict it.
    Probes are not included (see :func:`uncounted`); the numbers equal what :func:`count_passes` counts.

    Args:
        explainer: any explainer; its ``planned_passes(height, width)`` method is asked.
        height: image height in pixels.
        width: image width in pixels.

    Returns:
        The plan, e.g. ``PassCount(forward=226, backward=0)`` for the default Occlusion at 224 px;
            ``None`` for an explainer that does not say (no ``planned_passes`` method).
    """
    plan = getattr(explainer, "planned_passes", None)
    if not callable(plan):
        return None
    return plan(int(height), int(width))
