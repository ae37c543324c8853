"""Bridges to peer libraries: Captum attributions as freqlens explainers, maps in Quantus layout.

* :class:`CaptumExplainer` wraps a Captum attribution object (``captum.attr.Saliency(model)``,
  ``IntegratedGradients(model)``, ``NoiseTunnel(...)``...) so that FORGrad, the metrics and
  :func:`freqlens.analysis.rank_methods` apply to it. Layer methods (``LayerGradCam``,
  ``LayerIntegratedGradients``, any ``LayerAttribution``) are upsampled to the input size
  (``LayerAttribution.interpolate``, bilinear) and reduced to ``B×1×H×W``.
* :func:`to_quantus` turns freqlens maps into a Quantus ``a_batch``; :func:`quantus_explain_func` turns a
  freqlens explainer (or a method name, or a factory) into a Quantus ``explain_func`` that follows the
  model Quantus passes (its randomisation metrics pass randomised copies).

Neither Captum nor Quantus is imported here (install the ``peers`` extra to use them).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor, nn

from freqlens.attribution.base import Call, Explainer, Family
from freqlens.attribution.gradcam import find_layer
from freqlens.metrics.sanity import bind_explainer
from freqlens.utils.tensors import REDUCTIONS, reduce_channels

__all__ = ["CaptumExplainer", "quantus_explain_func", "to_quantus"]


def _captum_bases(attribution: object) -> set[str]:
    """Names of the Captum classes ``attribution`` derives from (checked by class, without importing Captum)."""
    return {cls.__name__ for cls in type(attribution).__mro__ if cls.__module__.startswith("captum")}


class CaptumExplainer(Explainer):
    """A Captum attribution object as a freqlens explainer.

    ``CaptumExplainer(captum.attr.Saliency(model), abs=False)`` calls
    ``attribution.attribute(inputs, target=target, **attribute_kwargs)`` with the model in eval mode
    and ``target`` resolved to the predicted classes when ``None``. The attribution may also be given as
    a Captum class with the model (and ``layer=`` for layer methods, a module or its dotted name):
    ``CaptumExplainer(captum.attr.LayerGradCam, model, layer="features.8", relu_attributions=True)``.

    Maps of input attributions have the inputs' shape (``per_channel``). Maps of **layer attributions**
    (any Captum ``LayerAttribution``: ``LayerGradCam``, ``LayerIntegratedGradients``, ``LayerConductance``...)
    are ``B×K×h×w`` at the layer; they are upsampled to the input size with Captum's
    ``LayerAttribution.interpolate`` (``interpolate_mode``, default ``"bilinear"``, as freqlens'
    ``GradCAM``) and their ``K`` channels reduced by ``reduce_channels(·, layer_reduce)`` (default ``"sum"``:
    GradCAM's channel sum, and the completeness of layer IG) to ``B×1×H×W`` (``per_channel=False``).
    The linear reductions ``sum``/``mean`` are applied before the (linear) interpolation, which gives the
    same map without materialising ``K`` input-sized channels; the absolute ones after it. A layer whose
    output is not ``B×K×h×w`` (a ``Linear``) has no map: ``ValueError``. ``label`` names it in tables
    (default ``captum_<class name>``); ``family`` is ``"cam"`` for ``LayerGradCam``, ``"black-box"`` for
    perturbation methods (``Occlusion``, ``FeatureAblation``...), else ``"gradient"``. Note Captum's ``Saliency`` takes the absolute value by default
    (``abs=True``), freqlens' does not; Captum's ``LayerGradCam`` applies no ReLU unless
    ``relu_attributions=True`` (freqlens' ``GradCAM`` does).

    Args:
        captum_attribution: a Captum attribution object, or a Captum attribution class (then ``model``
            is required).
        model: the classifier, to build a Captum class with; for an object it must be the model it wraps
            (or ``None``).
        layer: for layer methods, the layer (a module or its dotted name); for an object it must be the
            layer it holds.
        per_channel: maps per channel (default: ``True`` for input attributions, ``False`` for layer
            attributions, which cannot be per channel).
        interpolate_mode: Captum's ``LayerAttribution.interpolate`` mode for layer maps.
        layer_reduce: channel reduction of layer maps, one of ``REDUCTIONS``.
        label: the name in tables (default ``captum_<class name>``).
        **attribute_kwargs: passed to ``attribution.attribute(...)`` on every call.

    Raises:
        TypeError: a class without ``model``, or not a Captum attribution wrapping a ``torch.nn.Module``.
        ValueError: ``model`` / ``layer`` differ from the attribution's, ``per_channel=True`` for a
            layer attribution, or an unknown ``layer_reduce``.
    """

    family = "gradient"

    def __init__(
        self, captum_attribution: object, model: nn.Module | None = None, *, layer: nn.Module | str | None = None,
        per_channel: bool | None = None, interpolate_mode: str = "bilinear", layer_reduce: str = "sum",
        label: str | None = None, **attribute_kwargs: object,
    ) -> None:
        if isinstance(captum_attribution, type):
            if not isinstance(model, nn.Module):
                raise TypeError(
                    f"CaptumExplainer({captum_attribution.__name__}, model, ...) needs the model (a torch.nn.Module)"
                )
            if layer is not None:
                captum_attribution = captum_attribution(model, find_layer(model, layer))
            else:
                captum_attribution = captum_attribution(model)
        else:
            if model is not None and getattr(captum_attribution, "forward_func", None) is not model:
                raise ValueError("model= differs from the model the Captum attribution wraps; pass one or the other")
            if layer is not None:
                own = getattr(captum_attribution, "layer", None)
                wrapped = getattr(captum_attribution, "forward_func", None)
                wanted = find_layer(wrapped, layer) if isinstance(layer, str) and isinstance(wrapped, nn.Module) else layer
                if own is not wanted:
                    raise ValueError("layer= differs from the layer of the Captum attribution; pass it to one of them")
        if not callable(getattr(captum_attribution, "attribute", None)):
            raise TypeError(f"expected a Captum attribution object, got {type(captum_attribution).__name__}")
        wrapped_model = getattr(captum_attribution, "forward_func", None)
        if not isinstance(wrapped_model, nn.Module):
            raise TypeError("the Captum attribution must wrap a torch.nn.Module (its forward_func)")
        super().__init__(wrapped_model)
        self.attribution = captum_attribution
        self.attribute_kwargs = attribute_kwargs
        bases = _captum_bases(captum_attribution)
        self.is_layer = "LayerAttribution" in bases
        self.family = (
            Family.CAM if "LayerGradCam" in bases
            else Family.BLACK_BOX if "PerturbationAttribution" in bases else Family.GRADIENT
        )
        if self.is_layer and per_channel:
            raise ValueError("a layer attribution gives one map per image (B×1×H×W): per_channel=True does not apply")
        if layer_reduce not in REDUCTIONS:
            raise ValueError(f"unknown layer_reduce {layer_reduce!r}; expected one of {', '.join(REDUCTIONS)}")
        self.per_channel = (not self.is_layer) if per_channel is None else bool(per_channel)
        self.interpolate_mode = interpolate_mode
        self.layer_reduce = layer_reduce
        self.label = label or f"captum_{type(captum_attribution).__name__.lower()}"

    def _attribute(self, call: Call) -> Tensor:
        inputs = call.inputs
        leaf = inputs.clone().requires_grad_(True)  # a leaf of our own: Captum does not touch the caller's
        maps = self.attribution.attribute(leaf, target=call.target, **self.attribute_kwargs)
        if isinstance(maps, tuple):
            if len(maps) != 1:
                raise ValueError("the Captum attribution returned several tensors; one input tensor is expected")
            maps = maps[0]
        maps = maps.detach()
        if self.is_layer:
            maps = self._to_input_size(maps, tuple(inputs.shape[-2:]))
        return maps

    def _to_input_size(self, maps: Tensor, size: tuple[int, int]) -> Tensor:
        """``B×K×h×w`` layer maps -> ``B×1×H×W``: Captum's ``interpolate`` and the channel reduction."""
        if maps.dim() != 4:
            raise ValueError(
                f"the layer attribution has shape {tuple(maps.shape)}, not B×K×h×w: the layer has no spatial map "
                "to upsample (choose a convolutional layer)"
            )
        interpolate = self.attribution.interpolate
        if self.layer_reduce in ("sum", "mean"):  # linear: reduce first, interpolate one channel
            return interpolate(reduce_channels(maps, self.layer_reduce)[:, None], size, self.interpolate_mode)
        return reduce_channels(interpolate(maps, size, self.interpolate_mode), self.layer_reduce)[:, None]

    def __repr__(self) -> str:
        return f"CaptumExplainer({type(self.attribution).__name__}, {self.attribute_kwargs})"


def to_quantus(maps: Tensor, reduce: str | None = "sum") -> np.ndarray:
    """Maps as a Quantus ``a_batch``.

    Quantus takes channel-first image batches ``x_batch`` (``B×C×H×W``) with attributions either of the
    same shape or with one channel (``B×1×H×W``, broadcast over channels).

    Args:
        maps: ``B×C×H×W``, ``B×1×H×W`` or ``B×H×W`` maps.
        reduce: the channel reduction ``reduce_channels(maps, reduce)`` (default ``"sum"``, the
            convention of freqlens' metrics) that gives the one-channel form; ``None`` keeps the channels.

    Returns:
        Float32 numpy ``B×1×H×W`` (``B×C×H×W`` with ``reduce=None``).

    Raises:
        TypeError: ``maps`` is not a tensor.
        ValueError: a shape other than the above, or an unknown ``reduce``.
    """
    if not isinstance(maps, Tensor):
        raise TypeError(f"maps must be a torch.Tensor, got {type(maps).__name__}")
    maps = maps.detach()
    if maps.dim() == 3:
        maps = maps[:, None]
    if maps.dim() != 4:
        raise ValueError(f"maps must be B×C×H×W, B×1×H×W or B×H×W, got shape {tuple(maps.shape)}")
    if reduce is not None:
        maps = reduce_channels(maps, reduce)[:, None]
    return maps.float().cpu().numpy()


def quantus_explain_func(
    explainer: object, reduce: str | None = "sum", *, batch_size: int | None = None,
    generator: torch.Generator | None = None,
) -> Callable[..., np.ndarray]:
    """A Quantus ``explain_func(model, inputs, targets, **kwargs) -> a_batch`` from freqlens.

    Each call explains with **the model Quantus passes**: Quantus' randomisation metrics (``MPRT``,
    ``RandomLogit``...) pass randomised copies of the model, so an instance built around another model is
    rebound to it (:func:`freqlens.metrics.sanity.bind_explainer`; names and factories are built on it).
    Inputs/targets arrive as numpy (or tensors) and are moved to the model's device.

    Args:
        explainer: a method name (``"saliency"``, ``"ig"``... built by
            :func:`freqlens.attribution.registry.make_explainer` with ``batch_size`` and ``generator``), an
            explainer class or factory ``model -> explainer``, or an explainer instance.
        reduce: the channel reduction of :func:`to_quantus` (``None`` keeps the channels).
        batch_size: for a method name, max images per pass of the built explainer.
        generator: for a method name, the random stream of the built explainer.

    Returns:
        The ``explain_func``; its maps come back by :func:`to_quantus` (``B×1×H×W`` float32 with
            ``reduce="sum"``).

    Raises:
        TypeError: ``explainer`` is none of the above (the returned function raises ``TypeError`` when
            Quantus passes no torch model and ``explainer`` is not an instance).
        ValueError: an unknown method name.
    """
    if isinstance(explainer, str):
        from freqlens.attribution.registry import canonical_method, make_explainer

        name = canonical_method(explainer)

        def spec(model: nn.Module) -> object:
            return make_explainer(name, model, batch_size=batch_size, generator=generator)
    elif callable(explainer) or callable(getattr(explainer, "attribute", None)):
        spec = explainer  # type: ignore[assignment]
    else:
        raise TypeError(f"expected an explainer, a method name or a factory, got {type(explainer).__name__}")
    is_instance = not isinstance(explainer, (str, type)) and callable(getattr(explainer, "attribute", None))

    def explain(model: object, inputs: object, targets: object, **_: object) -> np.ndarray:
        if isinstance(model, nn.Module):
            bound = bind_explainer(spec, model)
        elif is_instance:
            bound = explainer  # Quantus passed no torch model: the explainer's own
        else:
            raise TypeError(f"quantus_explain_func needs the torch model from Quantus, got {type(model).__name__}")
        module = getattr(bound, "model", None)
        parameter = next(module.parameters(), None) if isinstance(module, nn.Module) else None
        device = parameter.device if parameter is not None else torch.device("cpu")
        x = torch.as_tensor(inputs, dtype=torch.float32, device=device)
        y = None if targets is None else torch.as_tensor(np.asarray(targets), dtype=torch.long, device=device)
        return to_quantus(bound.attribute(x, y), reduce)  # type: ignore[attr-defined]

    return explain
