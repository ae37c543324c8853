"""freqlens.analysis: studies composed from attribution, metrics and spectral (see DESIGN.md).

* :func:`search_sigma` / :class:`SigmaSearch`: the FORGrad cutoff σ* (seed 001).
* :func:`explain_images` / :class:`Explanation`: maps of one method (+ FORGrad) — ``freqlens explain``.
"""

from .explain import Explanation, explain_images
from .sigma_search import SigmaSearch, default_sigmas, search_sigma

__all__ = ["Explanation", "SigmaSearch", "default_sigmas", "explain_images", "search_sigma"]
