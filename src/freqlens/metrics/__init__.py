"""freqlens.metrics: faithfulness of attribution maps and interpretability of input-gradients.

* :func:`deletion`, :func:`insertion` (RISE), :func:`mufidelity` (Bhatt et al. 2020) and
  :func:`global_score` (``I + F − D``, seed 001);
* :func:`vii` (seed 000, Visual Interpretability of Input-gradients);
* :func:`linearization_residual`, :func:`linearization_curves` (ratio to the unfiltered gradient per
  radius, radii where the model is nonlinear) and :func:`layer_hf_content` (seed 001 §3, Fig 4–5);
* :func:`model_randomization` (Adebayo et al. 2018): the sanity check of an explainer against cascading
  randomisation of the model's layers (Spearman rank correlation, SSIM), :class:`SanityResult`.

Layering: this subpackage imports only :mod:`freqlens.spectral` (see DESIGN.md).
"""

from .faithfulness import deletion, global_score, insertion, mufidelity
from .layers import LAYER_MEASURES, default_layer_names, layer_hf_content
from .linearization import (
    LinearizationCurves,
    NonlinearRadii,
    linearization_curves,
    linearization_residual,
    unit_directions,
)
from .sanity import SanityResult, model_randomization, randomization_layers
from .vii import vii, vii_per_image

__all__ = [
    "LAYER_MEASURES",
    "LinearizationCurves",
    "NonlinearRadii",
    "SanityResult",
    "default_layer_names",
    "deletion",
    "global_score",
    "insertion",
    "layer_hf_content",
    "linearization_curves",
    "linearization_residual",
    "model_randomization",
    "mufidelity",
    "randomization_layers",
    "unit_directions",
    "vii",
    "vii_per_image",
]
