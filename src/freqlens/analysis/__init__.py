"""freqlens.analysis: studies composed from attribution, metrics and spectral (see DESIGN.md).

* :func:`search_sigma` / :class:`SigmaSearch`: the FORGrad cutoff σ* (seed 001).
"""

from .sigma_search import SigmaSearch, default_sigmas, search_sigma

__all__ = ["SigmaSearch", "default_sigmas", "search_sigma"]
