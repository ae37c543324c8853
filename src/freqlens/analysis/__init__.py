"""freqlens.analysis: studies composed from attribution, metrics and spectral (see DESIGN.md).

* :func:`search_sigma` / :class:`SigmaSearch`: the FORGrad cutoff σ* (seed 001).
* :func:`explain_images` / :class:`Explanation`: maps of one method (+ FORGrad) — ``freqlens explain``.
* :func:`rank_methods` / :class:`Ranking` / :class:`MethodRow`: faithfulness table and ranking of
  methods, original and FORGrad* (seed 001, Tables 1–2) — ``freqlens evaluate``.
"""

from .explain import Explanation, explain_images
from .ranking import MethodRow, Ranking, rank_methods
from .sigma_search import SigmaSearch, default_sigmas, search_sigma

__all__ = [
    "Explanation",
    "MethodRow",
    "Ranking",
    "SigmaSearch",
    "default_sigmas",
    "explain_images",
    "rank_methods",
    "search_sigma",
]
