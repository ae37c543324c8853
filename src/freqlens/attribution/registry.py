"""Explainers by name, for the command line and the analyses (``make_explainer("ig", model)``)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from freqlens.utils.output import OutputSelector, SelectOutput

from .base import Explainer
from .gradcam import GradCAM, GradCAMPlusPlus
from .gradient import GradientInput, Saliency
from .hsic import HSICAttribution
from .integrated_gradients import IntegratedGradients
from .noise_tunnel import SmoothGrad, SmoothGradSq, VarGrad
from .occlusion import Occlusion
from .rise import RISE
from .sobol import SobolAttribution

Factory = Callable[[nn.Module, "int | None", "torch.Generator | None"], Explainer]

#: canonical name -> factory(model, batch_size, generator); defaults follow seed 001 where it gives them
METHODS: dict[str, Factory] = {
    "saliency": lambda m, b, g: Saliency(m, batch_size=b),
    "gradient_input": lambda m, b, g: GradientInput(m, batch_size=b),
    "integrated_gradients": lambda m, b, g: IntegratedGradients(m, steps=50, batch_size=b),
    "smoothgrad": lambda m, b, g: SmoothGrad(Saliency(m), n=50, batch_size=b, generator=g),
    "smoothgrad_sq": lambda m, b, g: SmoothGradSq(Saliency(m), n=50, batch_size=b, generator=g),
    "vargrad": lambda m, b, g: VarGrad(Saliency(m), n=50, batch_size=b, generator=g),
    "gradcam": lambda m, b, g: GradCAM(m, batch_size=b),
    "gradcam_pp": lambda m, b, g: GradCAMPlusPlus(m, batch_size=b),
    "occlusion": lambda m, b, g: Occlusion(m, batch_size=b),
    "rise": lambda m, b, g: RISE(m, batch_size=b, generator=g),
    "sobol": lambda m, b, g: SobolAttribution(m, batch_size=b, generator=g),
    "hsic": lambda m, b, g: HSICAttribution(m, batch_size=b, generator=g),
}

ALIASES = {
    "gradient": "saliency",
    "gradients": "saliency",
    "input_gradients": "saliency",
    "gxi": "gradient_input",
    "grad_input": "gradient_input",
    "ig": "integrated_gradients",
    "sg": "smoothgrad",
    "sg2": "smoothgrad_sq",
    "smoothgrad2": "smoothgrad_sq",
    "gradcam++": "gradcam_pp",
    "gradcampp": "gradcam_pp",
    "gradcamplusplus": "gradcam_pp",
}

METHOD_NAMES = tuple(METHODS)


def canonical_method(name: str) -> str:
    """The canonical method name for ``name`` (case, ``-`` and aliases tolerated); ValueError if unknown."""
    key = str(name).strip().lower().replace("-", "_")
    key = ALIASES.get(key, key)
    if key not in METHODS:
        raise ValueError(f"unknown attribution method {name!r}; choose from {', '.join(METHOD_NAMES)}")
    return key


def make_explainer(
    name: str, model: nn.Module, *, batch_size: int | None = None, generator: torch.Generator | None = None,
    output: OutputSelector | None = None,
) -> Explainer:
    """Build the explainer called ``name`` around ``model`` with the library's default settings.

    Args:
        name: A method name or alias (see :data:`METHOD_NAMES`).
        model: The classifier.
        batch_size: Max images per forward pass.
        generator: Random stream of the stochastic methods.
        output: For a model returning a tuple/dict: the index, key or callable that picks its logits (the
            explainer then sees ``freqlens.models.SelectOutput(model, output)``).
    """
    if output is not None:
        model = SelectOutput(model, output)
    return METHODS[canonical_method(name)](model, batch_size, generator)
