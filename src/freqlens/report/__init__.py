"""Figures (matplotlib) and the static HTML report; reads artefacts only."""

from freqlens.report.figures import attribution_grid, heatmaps, line_plot, training_curves
from freqlens.report.html import find_studies, write_report

__all__ = ["attribution_grid", "find_studies", "heatmaps", "line_plot", "training_curves", "write_report"]
