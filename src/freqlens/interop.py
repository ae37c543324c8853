"""Bridges to peer libraries: Captum attributions as freqlens explainers, maps in Quantus layout.

* :class:`CaptumExplainer` wraps a Captum attribution object (``captum.attr.Saliency(model)``,
  ``IntegratedGradients(model)``, ``NoiseTunnel(...)``...) so that FORGrad, the metrics and
  :func:`freqlens.analysis.rank_methods` apply to it.
* :func:`to_quantus` turns freqlens maps into a Quantus ``a_batch``; :func:`quantus_explain_func` turns a
  freqlens explainer into a Quantus ``explain_func``.

Neither Captum nor Quantus is imported here (install the ``peers`` extra to use them).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor, nn

from freqlens.attribution.base import Explainer, check_images, eval_mode, resolve_target
from freqlens.utils.tensors import reduce_channels

__all__ = ["CaptumExplainer", "quantus_explain_func", "to_quantus"]


class CaptumExplainer(Explainer):
    """A Captum attribution object as a freqlens explainer.

    ``CaptumExplainer(captum.attr.Saliency(model), abs=False)`` calls
    ``attribution.attribute(inputs, target=target, **attribute_kwargs)`` with the model in eval mode
    and ``target`` resolved to the predicted classes when ``None``. Maps have the inputs' shape
    (``per_channel=True``) unless ``per_channel=False`` is given (e.g. for layer methods upsampled to
    ``B×1×H×W``). ``label`` names it in tables (default ``captum_<class name>``). Note Captum's
    ``Saliency`` takes the absolute value by default (``abs=True``), freqlens' does not.
    """

    family = "gradient"

    def __init__(
        self, captum_attribution: object, *, per_channel: bool = True, label: str | None = None,
        **attribute_kwargs: object,
    ) -> None:
        if not callable(getattr(captum_attribution, "attribute", None)):
            raise TypeError(f"expected a Captum attribution object, got {type(captum_attribution).__name__}")
        model = getattr(captum_attribution, "forward_func", None)
        if not isinstance(model, nn.Module):
            raise TypeError("the Captum attribution must wrap a torch.nn.Module (its forward_func)")
        super().__init__(model)
        self.attribution = captum_attribution
        self.attribute_kwargs = attribute_kwargs
        self.per_channel = bool(per_channel)
        self.label = label or f"captum_{type(captum_attribution).__name__.lower()}"

    def attribute(self, inputs: Tensor, target: Tensor | int | None = None) -> Tensor:
        inputs = check_images(inputs)
        with eval_mode(self.model):
            target = resolve_target(self.model, inputs, target, None)
            leaf = inputs.detach().clone().requires_grad_(True)  # a leaf of our own: Captum does not touch the caller's
            maps = self.attribution.attribute(leaf, target=target, **self.attribute_kwargs)
        if isinstance(maps, tuple):
            if len(maps) != 1:
                raise ValueError("the Captum attribution returned several tensors; one input tensor is expected")
            maps = maps[0]
        return maps.detach()

    def __repr__(self) -> str:
        return f"CaptumExplainer({type(self.attribution).__name__}, {self.attribute_kwargs})"


def to_quantus(maps: Tensor, reduce: str | None = "sum") -> np.ndarray:
    """Maps (``B×C×H×W``, ``B×1×H×W`` or ``B×H×W``) as a Quantus ``a_batch``: float32 numpy ``B×1×H×W``.

    Quantus takes channel-first image batches ``x_batch`` (``B×C×H×W``) with attributions either of the
    same shape or with one channel (``B×1×H×W``, broadcast over channels); we reduce the channels with
    ``reduce_channels(maps, reduce)`` (default ``"sum"``, the convention of freqlens' metrics) to give
    the one-channel form. ``reduce=None`` keeps the channels (``B×C×H×W``).
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


def quantus_explain_func(explainer: object, reduce: str | None = "sum") -> Callable[..., np.ndarray]:
    """A Quantus ``explain_func(model, inputs, targets, **kwargs) -> a_batch`` from a freqlens explainer.

    Inputs/targets arrive as numpy (or tensors); they are moved to the device of the explainer's model
    and the maps returned by :func:`to_quantus`. The ``model`` Quantus passes is ignored (the explainer
    already holds it).
    """
    if not callable(getattr(explainer, "attribute", None)):
        raise TypeError(f"expected an explainer, got {type(explainer).__name__}")

    def explain(model: object, inputs: object, targets: object, **_: object) -> np.ndarray:
        module = getattr(explainer, "model", None)
        parameter = next(module.parameters(), None) if isinstance(module, nn.Module) else None
        device = parameter.device if parameter is not None else torch.device("cpu")
        x = torch.as_tensor(inputs, dtype=torch.float32, device=device)
        y = None if targets is None else torch.as_tensor(np.asarray(targets), dtype=torch.long, device=device)
        return to_quantus(explainer.attribute(x, y), reduce)

    return explain
