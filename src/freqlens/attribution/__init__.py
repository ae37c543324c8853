"""freqlens.attribution: explainers (one family per module), the noise tunnel and the FORGrad wrapper.

Every explainer maps ``inputs`` (``B×C×H×W``, pixels in [0, 1]) and ``target`` (``LongTensor[B]`` or
``None`` = predicted class) to attribution maps, ``B×C×H×W`` for gradient methods, ``B×1×H×W`` for the
others; see :mod:`freqlens.attribution.base` (the template :meth:`Explainer.attribute`, :class:`Family`)
and DESIGN.md. New methods subclass :class:`Explainer` and implement ``_attribute(call)``.
"""

from ._batching import auto_batch_size
from .base import SCORES, Call, Explainer, Family, PassCount, count_passes
from .controls import CentrePrior
from .forgrad import FORGRAD_MODES, FORGrad, auto_sigma, forgrad_filter
from .gradcam import GradCAM, GradCAMPlusPlus
from .gradient import GradientInput, Saliency, input_gradients
from .hsic import HSICAttribution
from .integrated_gradients import IntegratedGradients
from .noise_tunnel import NoiseTunnel, SmoothGrad, SmoothGradSq, VarGrad
from .occlusion import Occlusion
from .reduce import REDUCTIONS, reduce_channels
from .rise import RISE
from .sobol import SobolAttribution

__all__ = [
    "FORGRAD_MODES",
    "REDUCTIONS",
    "RISE",
    "SCORES",
    "Call",
    "CentrePrior",
    "Explainer",
    "FORGrad",
    "Family",
    "GradCAM",
    "GradCAMPlusPlus",
    "GradientInput",
    "HSICAttribution",
    "IntegratedGradients",
    "NoiseTunnel",
    "Occlusion",
    "PassCount",
    "Saliency",
    "SmoothGrad",
    "SmoothGradSq",
    "SobolAttribution",
    "VarGrad",
    "auto_batch_size",
    "auto_sigma",
    "count_passes",
    "forgrad_filter",
    "input_gradients",
    "reduce_channels",
]
