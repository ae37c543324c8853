"""Matplotlib figures written as PNG files (headless ``Agg`` backend).

Every function takes plain tensors / lists (or an analysis result read through a protocol of its fields),
writes PNG files atomically and returns their paths.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from freqlens.utils import atomic_write_bytes


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | Path) -> Path:
    plt = _pyplot()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return atomic_write_bytes(path, buffer.getvalue())


def _image_for_display(image: torch.Tensor) -> np.ndarray:
    """C×H×W in [0, 1] → H×W (gray) or H×W×3 array."""
    image = image.detach().float().cpu().clamp(0, 1)
    if image.shape[0] == 1:
        return image[0].numpy()
    return image.permute(1, 2, 0).numpy()


SIGNED_CMAP = "RdBu_r"
"""Colour map of signed attribution maps: red positive, blue negative, white zero (symmetric limits)."""

MAGNITUDE_CMAP = "magma"
"""Colour map of non-negative maps (magnitudes, log power spectra)."""


def clip_limit(maps: torch.Tensor, percentile: float | None = 99.0) -> float:
    """Colour limit of ``maps``: a percentile of |map|, robust to a few extreme pixels.

    Args:
        maps: any tensor of map values.
        percentile: the percentile of |map|, in [0, 100] (``None`` or 100: the largest |value|).

    Returns:
        The limit; 1.0 when that is 0 (an all-zero map) or not finite, or ``maps`` is empty, so
            dividing by it is always safe.
    """
    values = maps.detach().abs().flatten().float()
    if not values.numel():
        return 1.0
    if percentile is None or percentile >= 100:
        limit = float(values.max())
    else:
        limit = float(torch.quantile(values, float(percentile) / 100))
    return limit if limit > 0 and np.isfinite(limit) else 1.0


def attribution_grid(
    images: torch.Tensor,
    rows: Sequence[tuple[str, torch.Tensor] | tuple[str, torch.Tensor, str]],
    path: str | Path,
    *,
    titles: Sequence[str] | None = None,
    title: str | None = None,
    max_columns: int = 16,
) -> Path:
    """Grid with the input images on top and one row per attribution method.

    Args:
        images: ``B×C×H×W`` in [0, 1].
        rows: ``(label, B×H×W map)`` or ``(label, maps, kind)``. ``kind="signed"`` (default) draws a
            diverging colour map centred at zero (red positive, blue negative); ``kind="magnitude"``
            draws non-negative values (e.g. a log power spectrum) with a sequential colour map scaled per
            row.
        path: the PNG file.
        titles: one title per image column (``None``: none).
        title: the figure's title.
        max_columns: the most images shown (the first ones).

    Returns:
        The path written.
    """
    plt = _pyplot()
    count = min(images.shape[0], max_columns)
    fig, axes = plt.subplots(
        1 + len(rows), count, figsize=(1.3 * count, 1.4 * (1 + len(rows))), squeeze=False
    )
    for column in range(count):
        axis = axes[0, column]
        shown = _image_for_display(images[column])
        axis.imshow(shown, cmap="gray" if shown.ndim == 2 else None, vmin=0, vmax=1)
        if titles is not None:
            axis.set_title(titles[column], fontsize=7)
    axes[0, 0].set_ylabel("input", fontsize=8)
    for row, (label, maps, *kind) in enumerate(rows, start=1):
        shown = maps[:count].detach().float().cpu()
        if (kind[0] if kind else "signed") == "signed":
            limit = clip_limit(shown)
            style = {"cmap": SIGNED_CMAP, "vmin": -limit, "vmax": limit}
        else:
            style = {"cmap": MAGNITUDE_CMAP, "vmin": float(shown.min()), "vmax": float(shown.max())}
        for column in range(count):
            axes[row, column].imshow(shown[column].numpy(), **style)
        axes[row, 0].set_ylabel(label, fontsize=8)
    for axis in axes.flat:
        axis.set_xticks([])
        axis.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def training_curves(history: Sequence[dict], path: str | Path, *, title: str | None = None) -> Path:
    """Loss and accuracy per epoch (train and validation) from a training ``history``.

    Args:
        history: one dict per epoch with ``epoch``, ``train_loss``, ``train_accuracy`` and, when
            validated, ``val_loss`` / ``val_accuracy``.
        path: the PNG file.
        title: the figure's title.

    Returns:
        The path written.
    """
    plt = _pyplot()
    epochs = [entry["epoch"] for entry in history]
    fig, (loss_axis, accuracy_axis) = plt.subplots(1, 2, figsize=(8, 3))
    loss_axis.plot(epochs, [e["train_loss"] for e in history], "o-", label="train")
    accuracy_axis.plot(epochs, [e["train_accuracy"] for e in history], "o-", label="train")
    if any(e.get("val_loss") is not None for e in history):
        loss_axis.plot(epochs, [e["val_loss"] for e in history], "s--", label="validation")
        accuracy_axis.plot(epochs, [e["val_accuracy"] for e in history], "s--", label="validation")
    loss_axis.set(xlabel="epoch", ylabel="cross-entropy loss", title="loss")
    accuracy_axis.set(xlabel="epoch", ylabel="accuracy", title="accuracy", ylim=(0, 1))
    for axis in (loss_axis, accuracy_axis):
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def line_plot(
    series: dict[str, tuple[Sequence[float], Sequence[float]]],
    path: str | Path,
    *,
    xlabel: str,
    ylabel: str,
    title: str | None = None,
    logx: bool = False,
    logy: bool = False,
    points: dict[str, tuple[Sequence[float], Sequence[float]]] | None = None,
    hline: float | None = None,
) -> Path:
    """One line per ``label -> (x, y)`` series, with markers, grid and legend.

    Args:
        series: ``label -> (x, y)``, one line each.
        path: the PNG file.
        xlabel: the x axis label.
        ylabel: the y axis label.
        title: the figure's title.
        logx: a logarithmic x axis.
        logy: a logarithmic y axis.
        points: labelled sets of unconnected hollow markers drawn over the lines (e.g. the points a claim
            looks at).
        hline: the y of a dashed horizontal reference line (e.g. a tolerance).

    Returns:
        The path written.
    """
    plt = _pyplot()
    fig, axis = plt.subplots(figsize=(6, 3.6))
    for label, (xs, ys) in series.items():
        axis.plot(list(xs), list(ys), "o-", markersize=3, label=label)
    for label, (xs, ys) in (points or {}).items():
        axis.plot(list(xs), list(ys), "o", markersize=9, markerfacecolor="none", color="black", label=label)
    if hline is not None:
        axis.axhline(hline, color="black", linestyle="--", linewidth=0.8)
    axis.set(xlabel=xlabel, ylabel=ylabel, title=title or "")
    if logx:
        axis.set_xscale("log")
    if logy:
        axis.set_yscale("log")
    axis.grid(alpha=0.3)
    if len(series) + len(points or {}) > 1:
        axis.legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, path)


def heatmaps(
    panels: dict[str, torch.Tensor], path: str | Path, *, title: str | None = None, cmap: str = "viridis",
    colorbar_label: str = "",
) -> Path:
    """One ``H×W`` heat map per panel (own colour scale and colour bar each).

    Args:
        panels: ``label -> H×W`` values, one panel each.
        path: the PNG file.
        title: the figure's title.
        cmap: the matplotlib colour map.
        colorbar_label: the label of every colour bar.

    Returns:
        The path written.
    """
    plt = _pyplot()
    count = len(panels)
    fig, axes = plt.subplots(1, count, figsize=(3.2 * count, 3), squeeze=False)
    for axis, (label, values) in zip(axes[0], panels.items()):
        image = axis.imshow(values.detach().float().cpu().numpy(), cmap=cmap)
        axis.set_title(label, fontsize=9)
        axis.set_xticks([])
        axis.set_yticks([])
        fig.colorbar(image, ax=axis, fraction=0.046, pad=0.04, label=colorbar_label)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def grouped_bars(
    categories: Sequence[str],
    series: dict[str, Sequence[float]],
    path: str | Path,
    *,
    ylabel: str,
    title: str | None = None,
) -> Path:
    """Grouped bar chart: one group per category, one bar per ``series`` label (NaN = no bar).

    Args:
        categories: the group labels.
        series: ``label -> one value per category``.
        path: the PNG file.
        ylabel: the y axis label.
        title: the figure's title.

    Returns:
        The path written.
    """
    plt = _pyplot()
    count, width = len(categories), 0.8 / max(len(series), 1)
    fig, axis = plt.subplots(figsize=(max(6.0, 0.55 * count * max(len(series), 1)), 3.8))
    positions = np.arange(count)
    for index, (label, values) in enumerate(series.items()):
        axis.bar(positions + (index - (len(series) - 1) / 2) * width, np.asarray(values, dtype=float), width,
                 label=label)
    axis.set_xticks(positions, list(categories), rotation=45, ha="right", fontsize=8)
    axis.set(ylabel=ylabel, title=title or "")
    axis.axhline(0.0, color="black", linewidth=0.6)
    axis.grid(axis="y", alpha=0.3)
    if len(series) > 1:
        axis.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def line_grid(
    panels: dict[str, dict[str, tuple[Sequence[float], Sequence[float]]]],
    path: str | Path,
    *,
    xlabel: str,
    ylabel: str,
    title: str | None = None,
    columns: int = 5,
) -> Path:
    """Small multiples: one subplot per panel (e.g. per class), one line per ``label -> (x, y)`` series
    (same labels and colours in every panel, one shared legend).

    Args:
        panels: ``panel title -> {label -> (x, y)}``.
        path: the PNG file.
        xlabel: the x axis label (bottom row).
        ylabel: the y axis label (left column).
        title: the figure's title.
        columns: the most subplots per row.

    Returns:
        The path written.
    """
    plt = _pyplot()
    count = len(panels)
    columns = max(1, min(columns, count))
    rows = -(-count // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(2.6 * columns, 2.1 * rows + 0.6), squeeze=False, sharex=True)
    for axis, (panel, series) in zip(axes.flat, panels.items()):
        for label, (xs, ys) in series.items():
            axis.plot(list(xs), list(ys), "-", linewidth=1.2, label=label)
        axis.set_title(panel, fontsize=9)
        axis.axhline(0.0, color="black", linewidth=0.5)
        axis.grid(alpha=0.3)
        axis.tick_params(labelsize=7)
    for axis in list(axes.flat)[count:]:
        axis.set_visible(False)
    for axis in axes[-1]:
        axis.set_xlabel(xlabel, fontsize=8)
    for axis in axes[:, 0]:
        axis.set_ylabel(ylabel, fontsize=8)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    if len(labels) > 1:
        fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8, bbox_to_anchor=(0.5, 0.0))
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.06 if len(labels) > 1 else 0, 1, 1))
    return _save(fig, path)


# ------------------------------------------------------------------ figures of analysis results
# They take the result objects of freqlens.analysis by their fields (the protocols below), never the classes:
# the report reads artefacts and plain tensors only.


class RCTPanel(Protocol):
    """One attack of :func:`save_rct_figure` (e.g. a :class:`freqlens.analysis.AttackSpectrum`)."""

    rct: torch.Tensor  # [H, W], DC top-left
    high_low_ratio: float
    robust_accuracy: float


def _figure_png(figure: Any) -> bytes:
    """A :class:`matplotlib.figure.Figure` as PNG bytes (110 dpi)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    return buffer.getvalue()


def save_rct_figure(spectra: Mapping[str, RCTPanel], path: str | Path) -> Path:
    """One panel per attack: the RCT map on a log colour scale (DC top-left) with its colour bar, titled
    with the high/low ratio and robust accuracy (seed 003, Fig 2).

    Args:
        spectra: Attack name -> its RCT map and numbers (e.g. a :class:`freqlens.analysis.AttackSpectra`).
        path: The PNG file, written atomically.

    Returns:
        ``path``.

    Raises:
        ValueError: ``spectra`` is empty.
    """
    from matplotlib.colors import LogNorm
    from matplotlib.figure import Figure

    items = list(spectra.items())
    if not items:
        raise ValueError("no attacks to plot")
    figure = Figure(figsize=(3.8 * len(items), 3.6), layout="constrained")
    axes = figure.subplots(1, len(items), squeeze=False)[0]
    for ax, (name, spectrum) in zip(axes, items, strict=True):
        values = spectrum.rct.detach().double().cpu()
        positive = values[values > 0]
        top = float(positive.max()) if positive.numel() else 1.0
        floor = max(float(positive.min()) if positive.numel() else top * 1e-6, top * 1e-6)
        image = ax.imshow(values.clamp_min(floor).numpy(), cmap="viridis",
                          norm=LogNorm(vmin=floor, vmax=max(top, floor * 10)))
        ratio = spectrum.high_low_ratio
        ax.set_title(f"{name}\nhigh/low = {ratio:.3g}, robust acc = {spectrum.robust_accuracy:.2f}", fontsize=9)
        ax.set_xlabel("DCT column j (→ high freq.)", fontsize=8)
        ax.set_ylabel("DCT row i", fontsize=8)
        figure.colorbar(image, ax=ax, shrink=0.8, label="RCT")
    figure.suptitle("Relative change of DCT coefficients (RCT)")
    return atomic_write_bytes(path, _figure_png(figure))


class FootprintMaps(Protocol):
    """What :func:`save_footprint_figures` draws (e.g. a :class:`freqlens.analysis.Footprints`)."""

    methods: list[str]
    families: list[str]
    log_spectra: torch.Tensor  # [M, H, W] mean log1p power spectrum per method, DC at the centre
    radial: torch.Tensor  # [M, R] normalised radial power profile per method
    measures: dict[str, torch.Tensor]  # HF measure -> [M, B] per-image values

    @property
    def is_gradient(self) -> list[bool]: ...


def save_footprint_figures(footprints: FootprintMaps, out_dir: str | Path) -> list[Path]:
    """The Fourier footprints of attribution methods (seed 001, Figs 2–3): ``footprints_spectra.png`` (mean
    log power spectrum per method), ``footprints_radial.png`` (radial profiles, gradient methods solid) and
    ``footprints_hf.png`` (HF measures per method, mean ± std over images).

    Args:
        footprints: The footprints (e.g. :func:`freqlens.analysis.method_footprints`).
        out_dir: The folder the three PNG files are written to (atomically).

    Returns:
        Their paths.
    """
    out_dir = Path(out_dir)
    return [
        atomic_write_bytes(out_dir / "footprints_spectra.png", _footprint_spectra(footprints)),
        atomic_write_bytes(out_dir / "footprints_radial.png", _footprint_radial(footprints)),
        atomic_write_bytes(out_dir / "footprints_hf.png", _footprint_measures(footprints)),
    ]


def _footprint_spectra(footprints: FootprintMaps) -> bytes:
    """Mean log power spectrum per method, up to four panels a row (DC at the centre)."""
    from matplotlib.figure import Figure

    count = len(footprints.methods)
    columns = min(count, 4)
    rows = math.ceil(count / columns)
    figure = Figure(figsize=(3.4 * columns, 3.2 * rows), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False)
    h, w = footprints.log_spectra.shape[-2:]
    extent = (-(w // 2) - 0.5, w - w // 2 - 0.5, h - h // 2 - 0.5, -(h // 2) - 0.5)
    for index, ax in enumerate(axes.flat):
        if index >= count:
            ax.set_axis_off()
            continue
        image = ax.imshow(footprints.log_spectra[index].detach().cpu().numpy(), cmap="magma", extent=extent)
        ax.set_title(f"{footprints.methods[index]} ({footprints.families[index]})", fontsize=10)
        ax.set_xlabel("horizontal frequency (cycles/image)", fontsize=8)
        ax.set_ylabel("vertical frequency", fontsize=8)
        figure.colorbar(image, ax=ax, shrink=0.8, label="mean log(1 + power)")
    figure.suptitle("Fourier footprint of attribution maps (DC at the centre)")
    return _figure_png(figure)


def _footprint_radial(footprints: FootprintMaps) -> bytes:
    """Radial power profile per method on a log scale: gradient methods solid, the others dashed."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.5, 4.5), layout="constrained")
    ax = figure.subplots()
    radii = torch.arange(footprints.radial.shape[1]).numpy()
    positive = footprints.radial[footprints.radial > 0]
    floor = float(positive.min()) if positive.numel() else 1e-12
    for index, name in enumerate(footprints.methods):
        profile = footprints.radial[index].detach().double().cpu().clamp_min(floor).numpy()
        style = "-" if footprints.is_gradient[index] else "--"
        ax.plot(radii, profile, style, marker=".", label=f"{name} ({footprints.families[index]})")
    ax.set_yscale("log")
    ax.set_xlabel("frequency radius (cycles/image)")
    ax.set_ylabel("normalised power (mean over the ring)")
    ax.set_title("Radial power profile: gradient (solid) vs prediction-based (dashed)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return _figure_png(figure)


def _footprint_measures(footprints: FootprintMaps) -> bytes:
    """One bar chart per HF measure: mean ± std over images per method (blue: gradient-based)."""
    from matplotlib.figure import Figure

    names = list(footprints.measures)
    figure = Figure(figsize=(4.2 * len(names), 4.2), layout="constrained")
    axes = figure.subplots(1, len(names), squeeze=False)[0]
    positions = list(range(len(footprints.methods)))
    colours = ["tab:blue" if g else "tab:orange" for g in footprints.is_gradient]
    for ax, measure in zip(axes, names, strict=True):
        values = footprints.measures[measure].detach().double().cpu()
        ax.bar(positions, values.mean(dim=1).numpy(), yerr=values.std(dim=1, unbiased=False).numpy(),
               color=colours, capsize=3)
        ax.set_xticks(positions, footprints.methods, rotation=45, ha="right", fontsize=8)
        ax.set_title(measure.replace("_", " "))
        ax.set_ylabel("mean ± std over images")
    figure.suptitle("High-frequency measures (blue: gradient-based, orange: prediction-based)")
    return _figure_png(figure)


def rct_heatmap(rct_map: torch.Tensor, path: str | Path, *, log_scale: bool = False, title: str | None = None) -> Path:
    """Heat map of one RCT map (seed 003) with a colour bar, DC at the top left, written atomically as PNG.

    Args:
        rct_map: ``H×W`` relative changes of the DCT coefficients (:func:`freqlens.spectral.rct`).
        path: the PNG file.
        log_scale: a logarithmic colour scale from the smallest positive value.
        title: the panel's title (default ``"RCT (DCT relative change)"``).

    Returns:
        ``path``.
    """
    from matplotlib.colors import LogNorm

    plt = _pyplot()
    values = rct_map.detach().cpu().double().numpy()
    norm = None
    if log_scale:
        positive = values[values > 0]
        low = float(positive.min()) if positive.size else 1e-12
        norm = LogNorm(vmin=low, vmax=max(float(values.max()), low * 10))
        values = values.clip(min=low)
    fig, ax = plt.subplots(figsize=(4.6, 4))
    image = ax.imshow(values, cmap="viridis", norm=norm, interpolation="nearest")
    fig.colorbar(image, ax=ax, label="relative change" + (" (log)" if log_scale else ""))
    ax.set_xlabel("horizontal frequency j")
    ax.set_ylabel("vertical frequency i")
    ax.set_title(title or "RCT (DCT relative change)")
    return _save(fig, path)
