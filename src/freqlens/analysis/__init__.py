"""freqlens.analysis: studies composed from attribution, metrics and spectral (see DESIGN.md).

* :func:`search_sigma` / :class:`SigmaSearch`: the FORGrad cutoff σ* (seed 001), with bootstrap intervals
  (:func:`bootstrap_interval`, :func:`paired_bootstrap_interval`, :class:`Interval`).
* :func:`explain_images` / :class:`Explanation`: maps of one method (+ FORGrad) — ``freqlens explain``.
* :func:`rank_methods` / :class:`Ranking` / :class:`MethodRow`: faithfulness table and ranking of
  methods, original and FORGrad* (seed 001, Tables 1–2) — ``freqlens evaluate``.
* :func:`method_footprints`: Fourier footprint and HF measures of methods (seed 001, Fig 2–3).
* :func:`attack_spectra`: RCT maps of attacks and their high/low band ratio (seed 003, Fig 2).
* :func:`occluded_frequency` (+ per class, band ablation, low-band share) and :func:`robust_dataset`
  (seed 003, Experiments III–IV); :func:`attribution_shift` natural vs robust model (seed 003, Fig 1).
All reachable from ``freqlens analyze NAME``. The analyses return data; their figures are drawn by
:mod:`freqlens.report`.

Python only: :func:`frequency_frame` puts several models side by side on the same images (accuracy, PGD
robustness, gradient HF along depth, VII, Occluded-Frequency low-band share, FORGrad σ* and gain, RCT);
``benchmarks/frequency_frame.py`` runs it on the zoo.
"""

from .attack_spectra import AttackSpectra, AttackSpectrum, attack_spectra, high_low_ratio
from .attribution_shift import AttributionShift, attribution_shift
from .bootstrap import Interval, bootstrap_interval, paired_bootstrap_interval
from .explain import Explanation, explain_images
from .footprints import HF_MEASURES, Footprints, method_footprints
from .forgrad_setting import ForgradSetting, forgrad_setting
from .frame import FrameRow, FrequencyFrame, frame_hf_depth, frequency_frame
from .occluded_frequency import ablate_bands, low_band_share, occluded_frequency, occluded_frequency_by_class
from .ranking import MethodRow, Ranking, rank_methods
from .robust_dataset import other_image_indices, robust_dataset
from .sigma_search import CRITERIA, SigmaSearch, default_sigmas, search_sigma

__all__ = [
    "CRITERIA",
    "HF_MEASURES",
    "AttackSpectra",
    "AttackSpectrum",
    "AttributionShift",
    "Explanation",
    "Footprints",
    "ForgradSetting",
    "FrameRow",
    "FrequencyFrame",
    "Interval",
    "MethodRow",
    "Ranking",
    "SigmaSearch",
    "ablate_bands",
    "attack_spectra",
    "attribution_shift",
    "bootstrap_interval",
    "default_sigmas",
    "explain_images",
    "forgrad_setting",
    "frame_hf_depth",
    "frequency_frame",
    "high_low_ratio",
    "low_band_share",
    "method_footprints",
    "occluded_frequency",
    "occluded_frequency_by_class",
    "other_image_indices",
    "paired_bootstrap_interval",
    "rank_methods",
    "robust_dataset",
    "search_sigma",
]
