"""The explainer protocol shared by every attribution method: one template, one way to pass randomness.

An explainer is built around a model (``Explainer(model, ...)``) or around another explainer (noise
tunnel, FORGrad) and maps ``inputs`` (``B×C×H×W`` float, pixels in [0, 1]) and ``target``
(``LongTensor[B]``, an int, or ``None`` = predicted class) to attribution maps (``B×C×H×W`` for
per-channel gradient methods, ``B×1×H×W`` otherwise). ``explainer(inputs, target)`` is
``explainer.attribute(...)``.

:meth:`Explainer.attribute` is a template method (as torchattacks' ``Attack.forward``): it validates and
detaches the inputs, enters eval mode (every module's flag restored), picks the chunk size from the
:class:`Family` (forward-only or forward + backward passes), resolves the target once, and calls the
subclass's :meth:`Explainer._attribute` with a :class:`Call`. Randomness is passed one way: a
*stochastic* explainer (``stochastic = True``) takes ``attribute(..., generator=...)``, falling back to its
own ``generator``; :func:`call_explainer` hands a generator to stochastic explainers only.

Also here (re-exported): the score of a target (:func:`select_score`), :func:`count_passes`,
:func:`planned_passes` and the input checks of :mod:`freqlens.utils.tensors`.
"""

from __future__ import annotations

import inspect
from abc import ABC
from dataclasses import dataclass
from enum import Enum
from typing import Any

import torch
from torch import Tensor, nn

from freqlens.utils.progress import progress_bar
from freqlens.utils.scores import SCORES, check_score, check_target_range, select_score
from freqlens.utils.tensors import (
    check_batch_size,
    check_images,
    check_inputs,
    check_logits,
    chunks,
    eval_mode,
    pixel_range,
    predict,
    resolve_target,
)

from ._batching import resolve_batch_size
from .passes import PassCount, count_passes, planned_passes, uncounted

__all__ = [
    "SCORES",
    "Call",
    "Explainer",
    "Family",
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


class Family(str, Enum):
    """What an explainer asks of the model; compares equal to its value (``Family.CAM == "cam"``)."""

    #: forward + backward to the input pixels (Saliency, Gradient ⊙ Input, IG...)
    GRADIENT = "gradient"
    #: forward + backward to a layer's activations (GradCAM, GradCAM++)
    CAM = "cam"
    #: forward passes only (Occlusion, RISE, Sobol, HSIC)
    BLACK_BOX = "black-box"
    #: no model pass (a baseline map such as the centre prior)
    CONTROL = "control"

    @property
    def backward(self) -> bool:
        """Whether its passes back-propagate (chunks are sized for forward + backward)."""
        return self in (Family.GRADIENT, Family.CAM)

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)


@dataclass(frozen=True)
class Call:
    """What :meth:`Explainer._attribute` receives from the template :meth:`Explainer.attribute`.

    Attributes:
        inputs: ``B×C×H×W`` images, checked (shape, dtype, finite, pixel range) and detached.
        target: ``LongTensor[B]``; ``None`` only for an explainer with ``predicts_target = True`` called
            without a target (it reads the predicted class from its own clean pass).
        chunk: the most images per pass (``batch_size``, or automatic from the model and the family).
        generator: the random stream of a stochastic explainer (the call's, else its own ``generator``).
    """

    inputs: Tensor
    target: Tensor | None
    chunk: int
    generator: torch.Generator | None


_HIDDEN_SETTINGS = ("model", "explainer", "generator", "progress", "self")


class Explainer(ABC):
    """Base class: subclasses implement :meth:`_attribute` (the template :meth:`attribute` prepares the call).

    Class attributes a subclass sets: ``per_channel`` (maps ``B×C×H×W`` or ``B×1×H×W``), ``family``
    (:class:`Family`), ``name`` (its registry name, the default :attr:`label`), ``stochastic`` (draws
    random numbers: takes a ``generator``), ``predicts_target`` (reads the predicted class from its own
    clean pass, so ``target=None`` costs no extra pass).

    Args:
        model: the explained classifier (``B×C×H×W`` → ``B×K`` logits).
        batch_size, progress, generator: the settings every explainer shares (:meth:`_set_run_settings`);
            a subclass passes on those it takes.

    Raises:
        TypeError: ``model`` is not a ``torch.nn.Module``, or a bad ``generator``.
        ValueError: a bad ``batch_size``.
    """

    per_channel: bool = True
    family: Family = Family.GRADIENT
    name: str = ""
    stochastic: bool = False
    predicts_target: bool = False
    batch_size: int | None = None
    generator: torch.Generator | None = None
    _label: str | None = None

    def __init__(
        self, model: nn.Module, *, batch_size: int | None = None, progress: bool = False,
        generator: torch.Generator | None = None,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"{type(self).__name__} expects a torch.nn.Module, got {type(model).__name__}")
        self.model = model
        self._set_run_settings(batch_size, progress, generator)

    def _set_run_settings(self, batch_size: int | None, progress: bool, generator: torch.Generator | None) -> None:
        """Check and store the settings every explainer shares (one check each, for every explainer).

        Args:
            batch_size: the most images per pass (``None``: automatic); a positive int.
            progress: show a tqdm bar.
            generator: the random stream of a stochastic explainer (``None``: the global one).

        Raises:
            ValueError: ``batch_size`` is not a positive int or ``None``.
            TypeError: ``generator`` is not a ``torch.Generator`` or ``None``.
        """
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
        self.batch_size = check_batch_size(batch_size)
        self.progress = progress
        self.generator = generator

    @property
    def label(self) -> str:
        """The name shown in tables and figures: set by the user or :func:`make_explainer`, else :attr:`name`."""
        return self._label or self.name or type(self).__name__

    @label.setter
    def label(self, value: str | None) -> None:
        self._label = value

    def attribute(
        self, inputs: Tensor, target: Tensor | int | None = None, *, generator: torch.Generator | None = None
    ) -> Tensor:
        """Attribution maps of ``inputs`` for ``target``.

        Args:
            inputs: ``B×C×H×W`` images, pixels in [0, 1] (see :func:`freqlens.pixel_range`).
            target: ``LongTensor[B]``, an int, or ``None`` = the predicted class.
            generator: random stream of a stochastic explainer for this call, overriding the explainer's
                own; ignored by deterministic explainers.

        Returns:
            ``B×C×H×W`` maps (``per_channel``) or ``B×1×H×W``, the inputs' dtype and device.

        Raises:
            InputError: images outside the pixel range, or malformed logits.
            ValueError: malformed images or target.
        """
        inputs = check_images(inputs).detach()
        with eval_mode(self.model):
            chunk = resolve_batch_size(self.batch_size, self.model, inputs, backward=self.family.backward)
            if target is not None or not self.predicts_target:
                target = resolve_target(self.model, inputs, target, chunk)
            return self._attribute(Call(inputs, target, chunk, self.generator if generator is None else generator))

    def _attribute(self, call: Call) -> Tensor:
        """The method itself, on a prepared :class:`Call` (eval mode is on). Subclasses implement it (an
        explainer written against the older protocol may override :meth:`attribute` instead)."""
        raise NotImplementedError(f"{type(self).__name__} implements neither _attribute(call) nor attribute()")

    def __call__(self, inputs: Tensor, target: Tensor | int | None = None, **kwargs: Any) -> Tensor:
        return self.attribute(inputs, target, **kwargs)

    def planned_passes(self, height: int, width: int) -> PassCount | None:
        """Images through the model's forward / backward passes per explained image, with the target given.

        See :func:`planned_passes`.

        Args:
            height: image height in pixels.
            width: image width in pixels.

        Returns:
            The pass count, or ``None`` when not known in advance.
        """
        return None

    def settings(self) -> dict[str, Any]:
        """The constructor's settings (keyword arguments read back from the attributes of the same name;
        the model, a wrapped explainer, the generator and the progress flag left out), as scikit-learn's
        ``get_params``."""
        parameters = inspect.signature(type(self).__init__).parameters
        return {name: getattr(self, name) for name in parameters
                if name not in _HIDDEN_SETTINGS and hasattr(self, name)
                and parameters[name].kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)}

    def __repr__(self) -> str:
        inner = [repr(self.explainer)] if isinstance(self, WrapperExplainer) else []
        shown = [*inner, *(f"{key}={_show(value)}" for key, value in self.settings().items())]
        return f"{type(self).__name__}({', '.join(shown)})"


def _show(value: Any) -> str:
    """A setting as ``repr`` shows it: tensors by shape, ``None`` sizes as ``auto``."""
    if isinstance(value, Tensor):
        return f"tensor{tuple(value.shape)}"
    if isinstance(value, nn.Module):
        return type(value).__name__
    return "auto" if value is None else repr(value)


class WrapperExplainer(Explainer):
    """An explainer built around another one (noise tunnel, FORGrad): ``model``, ``per_channel``,
    ``family`` and ``stochastic`` follow the wrapped ``explainer`` (any object with ``attribute(inputs,
    target)``; one that declares ``stochastic = True`` also takes ``generator=``). Subclasses implement
    :meth:`attribute` themselves (the wrapped explainer validates its inputs).

    Args:
        explainer: the wrapped explainer.
        batch_size, progress, generator: as :class:`Explainer`.
    """

    def __init__(
        self, explainer: object, *, batch_size: int | None = None, progress: bool = False,
        generator: torch.Generator | None = None,
    ) -> None:
        if not callable(getattr(explainer, "attribute", None)):
            raise TypeError(f"{type(self).__name__} wraps an explainer with an attribute() method, got {explainer!r}")
        self.explainer = explainer
        self._set_run_settings(batch_size, progress, generator)

    @property
    def model(self):
        return getattr(self.explainer, "model", None)

    @property
    def per_channel(self) -> bool:
        return bool(getattr(self.explainer, "per_channel", True))

    @property
    def family(self) -> Family:
        return Family(str(getattr(self.explainer, "family", Family.GRADIENT)))

    @property
    def stochastic(self) -> bool:
        return is_stochastic(self.explainer)

    def planned_passes(self, height: int, width: int) -> PassCount | None:
        """Those of the wrapped explainer (a wrapper that calls it once per image, as FORGrad).

        Args:
            height: image height in pixels.
            width: image width in pixels.

        Returns:
            The wrapped explainer's pass count, or ``None`` when not known in advance.
        """
        return planned_passes(self.explainer, height, width)


def is_stochastic(explainer: object) -> bool:
    """Whether ``explainer`` draws random numbers: its ``stochastic`` flag (``False`` when it has none)."""
    return bool(getattr(explainer, "stochastic", False))


def call_explainer(
    explainer: object, inputs: Tensor, target: Tensor | int | None, generator: torch.Generator | None = None
) -> Tensor:
    """``explainer.attribute(inputs, target)``, with ``generator=`` for a stochastic explainer.

    The one way randomness reaches an explainer: a stochastic one (:func:`is_stochastic`) is called with
    ``generator=generator`` when a generator is given; any other is called as ``attribute(inputs, target)``.

    Args:
        explainer: any object with ``attribute(inputs, target)``.
        inputs: ``B×C×H×W`` images.
        target: ``LongTensor[B]``, an int, or ``None`` = the predicted class.
        generator: random stream for a stochastic explainer (``None``: its own).

    Returns:
        The explainer's maps.
    """
    if generator is not None and is_stochastic(explainer):
        return explainer.attribute(inputs, target, generator=generator)  # type: ignore[attr-defined]
    return explainer.attribute(inputs, target)  # type: ignore[attr-defined]


def accumulation_dtype(device: torch.device) -> torch.dtype:
    """float64 for running sums, except on devices without it (MPS: float32)."""
    return torch.float32 if device.type == "mps" else torch.float64
