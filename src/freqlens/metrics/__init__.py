"""freqlens.metrics: faithfulness of attribution maps and interpretability of input-gradients.

* :func:`deletion`, :func:`insertion` (RISE), :func:`mufidelity` (Bhatt et al. 2020) and
  :func:`global_score` (``I + F − D``, seed 001);
* :func:`vii` (seed 000, Visual Interpretability of Input-gradients).

Layering: this subpackage imports only :mod:`freqlens.spectral` (see DESIGN.md).
"""

from .faithfulness import deletion, global_score, insertion, mufidelity
from .vii import vii, vii_per_image

__all__ = ["deletion", "global_score", "insertion", "mufidelity", "vii", "vii_per_image"]
