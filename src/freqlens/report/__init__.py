"""Figures (matplotlib, including those of the analyses: :func:`save_rct_figure`,
:func:`save_footprint_figures`, :func:`rct_heatmap`), the static HTML report and :func:`overlay` (a map over its image, for
notebooks)."""

from freqlens.report.figures import (
    attribution_grid,
    heatmaps,
    line_plot,
    rct_heatmap,
    save_footprint_figures,
    save_rct_figure,
    training_curves,
)
from freqlens.report.html import find_studies, write_report
from freqlens.report.overlay import overlay

__all__ = ["attribution_grid", "find_studies", "heatmaps", "line_plot", "overlay", "rct_heatmap",
           "save_footprint_figures",
           "save_rct_figure", "training_curves", "write_report"]
