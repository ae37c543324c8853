"""Rank attribution methods by faithfulness, original and FORGrad* (seed 001, Tables 1–2).

For each method the maps of the evaluated images are computed **once**; Deletion, Insertion and
MuFidelity (one value per image), the global score ``I + F − D``, the three high-frequency measures
(on channel-summed maps) and the cost (forward + backward passes per image, counted with
:func:`freqlens.attribution.base.count_passes`, and seconds per image) are reported. With FORGrad on,
each method also gets a "*" row: the FORGrad map of its base maps at σ* (no second attribution of the
evaluated images), and both rows use the same map convention (``mode``), so that the comparison is
paired: in magnitude mode the original row is the magnitude map without low-pass (σ = ∞).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from freqlens.attribution._batching import saved_bytes_per_image
from freqlens.attribution.base import call_explainer, check_images, count_passes, eval_mode, resolve_target
from freqlens.attribution.forgrad import check_forgrad_mode, forgrad_filter
from freqlens.attribution.registry import canonical_method, make_explainer
from freqlens.metrics import deletion, global_score, insertion, mufidelity
from freqlens.spectral import compression_ratio, hf_power_ratio, laplacian_energy
from freqlens.utils.tensors import reduce_channels

from .sigma_search import SigmaSearch, check_criterion, search_sigma

__all__ = ["METRICS", "MethodRow", "Ranking", "rank_methods"]

#: metric name -> (column header, higher is better)
METRICS: dict[str, tuple[str, bool]] = {
    "deletion": ("Del ↓", False),
    "insertion": ("Ins ↑", True),
    "mufidelity": ("Fid ↑", True),
    "score": ("I+F−D ↑", True),
    "hf_power_ratio": ("HF power ↓", False),
    "laplacian_energy": ("Laplacian ↓", False),
    "compression_ratio": ("PNG ratio ↓", False),
}


@dataclass
class MethodRow:
    """One row of Table 1: a method (``forgrad=False``) or its FORGrad* version at ``sigma``.

    Attributes:
        method: the method's name.
        forgrad: ``True`` for the FORGrad* row.
        values: ``values[name]`` is a ``Tensor[B]`` of per-image values for every name of
            :data:`METRICS`.
        forward: images through the model (forward) per evaluated image during the attribution (the *
            row shares its method's passes; the low-pass needs none).
        backward: the same for backward passes.
        seconds: wall time per image of the attribution (the * row adds the low-pass).
        sigma: the FORGrad cutoff of a * row (cycles per image); ``None`` for an original row.
        search: the σ* search of a * row when σ was searched, else ``None``.
        family: the explainer family (``"gradient"`` for gradient-based methods).
    """

    method: str
    forgrad: bool
    values: dict[str, Tensor]
    forward: float
    backward: float
    seconds: float
    sigma: float | None = None
    search: SigmaSearch | None = field(default=None, repr=False)
    family: str = "gradient"

    @property
    def label(self) -> str:
        return f"{self.method}*" if self.forgrad else self.method

    @property
    def passes(self) -> float:
        """Forward + backward passes per image."""
        return self.forward + self.backward

    def mean(self, metric: str) -> float:
        return float(self.values[metric].double().mean())

    def std(self, metric: str) -> float:
        values = self.values[metric].double()
        return float(values.std(unbiased=False)) if values.numel() else math.nan


@dataclass
class Ranking:
    """Result of :func:`rank_methods`: original rows, FORGrad* rows (empty when off), both ordered by input.

    Orders: :attr:`order` (original maps), :attr:`forgrad_order` (every method's * row) and
    :attr:`paper_order` (seed 001 Table 2: * rows of gradient methods, original rows of the others).
    ``mode``: the FORGrad pipeline of the * rows and of the original rows they are paired with
    (``"magnitude"`` / ``"signed"``), ``None`` when FORGrad is off (original rows = the explainers' maps).
    ``sigma_source``: where σ came from: ``"calibration"``, ``"inputs"`` (searched), ``"fixed"`` or
    ``"given"`` (per method, e.g. reused searches); ``None`` when FORGrad is off.

    Attributes:
        rows: the original rows, in the input order of the methods.
        forgrad_rows: the FORGrad* rows, same order (empty when FORGrad is off).
        n_images: the number of evaluated images.
        sigma_source: where σ came from (above).
        mode: the FORGrad pipeline (above).
    """

    rows: list[MethodRow]
    forgrad_rows: list[MethodRow]
    n_images: int
    sigma_source: str | None = None
    mode: str | None = None

    @staticmethod
    def _order(rows: list[MethodRow]) -> list[str]:
        # stable: ties keep the input order of the methods
        return [row.method for row in sorted(rows, key=lambda r: -r.mean("score"))]

    def order_by(self, metric: str, forgrad: bool = False) -> list[str]:
        """Method names ranked by one metric of :data:`METRICS` alone (seed 001 §5: "separate rankings for
        each individual score").

        Args:
            metric: a name of :data:`METRICS`.
            forgrad: rank the * rows instead of the original rows.

        Returns:
            The method names, best first: ascending for Deletion and the smoothness measures,
                descending for the others. Ties keep the input order.

        Raises:
            ValueError: an unknown ``metric``.
        """
        if metric not in METRICS:
            raise ValueError(f"unknown metric {metric!r}; expected one of {', '.join(METRICS)}")
        sign = -1.0 if METRICS[metric][1] else 1.0
        rows = self.forgrad_rows if forgrad else self.rows
        return [row.method for row in sorted(rows, key=lambda r: sign * r.mean(metric))]

    @property
    def order(self) -> list[str]:
        """Method names by decreasing mean ``I + F − D`` (original maps)."""
        return self._order(self.rows)

    @property
    def forgrad_order(self) -> list[str]:
        """Method names by decreasing mean ``I + F − D`` of their FORGrad* rows (empty when off)."""
        return self._order(self.forgrad_rows)

    def paper_pool(self) -> list[MethodRow]:
        """Seed 001 Table 2's "FORGrad" pool: the * row of gradient-family methods, the original row of the
        others (black-box and CAM methods are not filtered there). Empty when FORGrad is off."""
        if not self.forgrad_rows:
            return []
        starred = {row.method: row for row in self.forgrad_rows}
        return [starred[row.method] if row.family == "gradient" else row for row in self.rows]

    @property
    def paper_order(self) -> list[str]:
        """Labels of :meth:`paper_pool` by decreasing mean ``I + F − D`` (e.g. ``["saliency*", "sobol"]``)."""
        return [row.label for row in sorted(self.paper_pool(), key=lambda r: -r.mean("score"))]

    def rank_change(self) -> dict[str, int]:
        """Per method: rank in :attr:`order` − rank in :attr:`paper_order` (seed 001 Table 2; positive =
        moved up with FORGrad on the gradient methods); empty when FORGrad is off."""
        if not self.forgrad_rows:
            return {}
        after = [label.rstrip("*") for label in self.paper_order]
        return {name: rank - after.index(name) for rank, name in enumerate(self.order)}

    def to_dict(self) -> dict:
        """Machine-readable: per method (and * row) per metric ``mean``, ``std`` and per-image ``values``."""

        def row_dict(row: MethodRow) -> dict:
            return {
                "method": row.method,
                "forgrad": row.forgrad,
                "family": row.family,
                "sigma": row.sigma,
                "metrics": {
                    name: {"mean": row.mean(name), "std": row.std(name), "values": row.values[name].tolist()}
                    for name in METRICS
                },
                "cost": {"forward_per_image": row.forward, "backward_per_image": row.backward,
                         "passes_per_image": row.passes, "seconds_per_image": row.seconds},
                **({"sigma_search": row.search.to_dict()} if row.search is not None else {}),
            }

        ranks = self.rank_change()
        return {
            "n_images": self.n_images,
            "sigma_source": self.sigma_source,
            "forgrad_mode": self.mode,
            "methods": [row_dict(r) for r in self.rows],
            "forgrad": [row_dict(r) for r in self.forgrad_rows],
            "ranking": {"original": self.order, "forgrad": self.paper_order, "all_forgrad": self.forgrad_order,
                        "rank_change": ranks,
                        "by_metric": {metric: {"original": self.order_by(metric),
                                               "all_forgrad": self.order_by(metric, forgrad=True)}
                                      for metric in ("deletion", "insertion", "mufidelity", "score")}},
        }

    def to_markdown(self, digits: int = 3) -> str:
        """Table 1 layout (methods and their * rows; best value per column in bold), then the ranking."""
        rows = [r for row in self.rows for r in (row, *[f for f in self.forgrad_rows if f.method == row.method])]
        columns: list[tuple[str, list[float], bool]] = [
            (header, [r.mean(name) for r in rows], higher) for name, (header, higher) in METRICS.items()
        ]
        columns.append(("passes/img ↓", [r.passes for r in rows], False))
        columns.append(("s/img ↓", [r.seconds for r in rows], False))
        cells: list[list[str]] = [[f"{r.label}" + (f" (σ={r.sigma:.3g})" if r.forgrad else "")] for r in rows]
        for _, values, higher in columns:
            finite = [v for v in values if math.isfinite(v)]
            best = (max if higher else min)(finite) if finite else None
            for cell, value in zip(cells, values):
                text = f"{value:.{digits}g}" if abs(value) >= 1000 or 0 < abs(value) < 1e-3 else f"{value:.{digits}f}"
                cell.append(f"**{text}**" if best is not None and value == best else text)
        header = ["Method", *[c[0] for c in columns]]
        lines = [_md_row(header), _md_row(["---"] * len(header)), *(_md_row(c) for c in cells)]
        lines += ["", f"Ranking by I+F−D ({self.n_images} images)", ""]
        if self.forgrad_rows:
            by_name = {r.method: r for r in self.rows}
            by_label = {r.label: r for r in self.paper_pool()}
            changes = self.rank_change()
            lines.append(f"FORGrad column: gradient methods filtered at σ* (marked *, {self.mode} pipeline), "
                         "the others unchanged (seed 001, Table 2).")
            lines.append("")
            lines.append(_md_row(["Rank", "Original", "I+F−D", "FORGrad", "I+F−D", "Δ rank of the original"]))
            lines.append(_md_row(["---"] * 6))
            for rank, (a, b) in enumerate(zip(self.order, self.paper_order), start=1):
                lines.append(_md_row([str(rank), a, f"{by_name[a].mean('score'):.{digits}f}", b,
                                      f"{by_label[b].mean('score'):.{digits}f}", f"{changes[a]:+d}"]))
        else:
            lines.append(_md_row(["Rank", "Method", "I+F−D"]))
            lines.append(_md_row(["---"] * 3))
            by_name = {r.method: r for r in self.rows}
            for rank, name in enumerate(self.order, start=1):
                lines.append(_md_row([str(rank), name, f"{by_name[name].mean('score'):.{digits}f}"]))
        return "\n".join(lines) + "\n"


def _md_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


class _CachedMaps:
    """Explainer stand-in that hands back already computed maps (so σ* search re-attributes nothing)."""

    def __init__(self, inputs: Tensor, maps: Tensor) -> None:
        self.inputs, self.maps = inputs, maps

    def attribute(self, inputs: Tensor, target: object = None) -> Tensor:
        if inputs is not self.inputs:
            raise RuntimeError("cached maps asked for other inputs")  # internal invariant
        return self.maps


def _resolve_methods(
    methods: Sequence[object], model: nn.Module, batch_size: int | None, generator: torch.Generator | None
) -> list[tuple[str, object]]:
    if isinstance(methods, (str, bytes)) or not isinstance(methods, Sequence) or not methods:
        raise ValueError("methods must be a non-empty sequence of method names or explainers")
    resolved: list[tuple[str, object]] = []
    for item in methods:
        if isinstance(item, str):
            name = canonical_method(item)
            resolved.append((name, make_explainer(name, model, batch_size=batch_size, generator=generator)))
        elif isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str):
            resolved.append((item[0], item[1]))
        elif callable(getattr(item, "attribute", None)):
            resolved.append((str(getattr(item, "label", None) or type(item).__name__), item))
        else:
            raise ValueError(f"not a method name or an explainer: {item!r}")
    labels = [label for label, _ in resolved]
    duplicates = sorted({label for label in labels if labels.count(label) > 1})
    if duplicates:
        raise ValueError(f"methods given twice (labels must be unique): {', '.join(duplicates)}")
    return resolved


def _forgrad_setting(forgrad: object) -> str | float | dict[str, float | SigmaSearch] | None:
    if forgrad is None or forgrad is False:
        return None
    if isinstance(forgrad, Mapping):
        return _per_method_sigmas(forgrad)
    if forgrad is True or (isinstance(forgrad, str) and forgrad.lower() == "auto"):
        return "auto"
    return _fixed_sigma(forgrad, "forgrad", "True, False, 'auto' or a positive σ")


def _per_method_sigmas(forgrad: Mapping) -> dict[str, float | SigmaSearch]:
    """The checked ``{label: σ or SigmaSearch}`` form of ``forgrad`` (σ chosen before, per method)."""
    out: dict[str, float | SigmaSearch] = {}
    for label, value in forgrad.items():
        if isinstance(value, SigmaSearch):
            out[str(label)] = value
            continue
        out[str(label)] = _fixed_sigma(value, f"forgrad[{label!r}]", "a positive σ or a SigmaSearch")
    return out


def _fixed_sigma(value: object, name: str, expected: str) -> float:
    """``value`` as a fixed FORGrad σ (a number > 0); ``ValueError`` naming ``name`` and ``expected``."""
    try:
        sigma = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be {expected}, got {value!r}") from None
    if not sigma > 0:
        raise ValueError(f"{name}: a fixed FORGrad σ must be positive, got {value!r}")
    return sigma


def _evaluate_maps(model: nn.Module, inputs: Tensor, target: Tensor, maps: Tensor, *, steps: int, grid: int,
                   samples: int, batch_size: int | None, progress: bool, mask_seed: int) -> dict[str, Tensor]:
    """Per-image values (float64, CPU) of every metric of :data:`METRICS` for ``maps`` of ``inputs``;
    the MuFidelity masks come from a fresh generator seeded with ``mask_seed`` (the same for every row)."""
    masks = torch.Generator(device=inputs.device).manual_seed(mask_seed)
    common = {"batch_size": batch_size, "progress": progress}
    values = {
        "deletion": deletion(model, inputs, target, maps, steps=steps, **common),
        "insertion": insertion(model, inputs, target, maps, steps=steps, **common),
        "mufidelity": mufidelity(model, inputs, target, maps, grid=grid, samples=samples, generator=masks, **common),
    }
    values = {k: v.detach().double().cpu() for k, v in values.items()}
    values["score"] = global_score(values["deletion"], values["insertion"], values["mufidelity"])
    reduced = reduce_channels(maps.detach(), "sum")
    values["hf_power_ratio"] = hf_power_ratio(reduced).double().cpu()
    values["laplacian_energy"] = laplacian_energy(reduced).double().cpu()
    values["compression_ratio"] = compression_ratio(reduced).double().cpu()
    return values


def _check_arguments(steps: object, calibration: object, mode: object) -> tuple[Tensor, Tensor | int | None] | None:
    """Validate ``steps``, ``mode`` and ``calibration`` of :func:`rank_methods`; the checked calibration pair."""
    check_forgrad_mode(mode)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    if calibration is None:
        return None
    if not (isinstance(calibration, tuple) and len(calibration) == 2):
        raise ValueError("calibration must be a pair (images, target or None)")
    return check_images(calibration[0]), calibration[1]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class _Table:
    """The shared settings of one :func:`rank_methods` call; :meth:`rows` evaluates one method."""

    model: nn.Module
    inputs: Tensor
    target: Tensor
    setting: str | float | dict[str, float | SigmaSearch] | None
    mode: str
    shape: str
    sigmas: Sequence[float] | None
    calibration: tuple[Tensor, Tensor | int | None] | None
    generator: torch.Generator | None
    batch_size: int | None
    metric_settings: dict
    criterion: str = "insertion_minus_deletion"

    def evaluate(self, maps: Tensor) -> dict[str, Tensor]:
        return _evaluate_maps(self.model, self.inputs, self.target, maps, **self.metric_settings)

    def sigma(self, label: str, explainer: object, maps: Tensor) -> tuple[float, SigmaSearch | None]:
        """σ of the * row: fixed, given per method (a σ or an earlier search), or σ* searched on the
        calibration images (the explainer is called on them) or else on the evaluated images with their
        cached ``maps``."""
        if isinstance(self.setting, dict):
            if label not in self.setting:
                raise ValueError(f"forgrad gives σ for {sorted(self.setting)} but not for the method {label!r}")
            chosen = self.setting[label]
            if isinstance(chosen, SigmaSearch):
                if chosen.mode != self.mode:
                    raise ValueError(f"{label}: the σ search was made in the {chosen.mode!r} pipeline, "
                                     f"not {self.mode!r}")
                return float(chosen.sigma_star), chosen
            return float(chosen), None
        if self.setting != "auto":
            return float(self.setting), None  # type: ignore[arg-type]
        if self.calibration is not None:
            source, images, target = explainer, self.calibration[0], self.calibration[1]
        else:
            source, images, target = _CachedMaps(self.inputs, maps), self.inputs, self.target
        search = search_sigma(source, self.model, images, target, sigmas=self.sigmas, shape=self.shape,
                              steps=self.metric_settings["steps"], batch_size=self.batch_size, mode=self.mode,
                              progress=self.metric_settings["progress"], criterion=self.criterion,
                              mufidelity_samples=self.metric_settings["samples"], grid=self.metric_settings["grid"])
        return float(search.sigma_star), search

    def rows(self, label: str, explainer: object) -> tuple[MethodRow, MethodRow | None]:
        """The original row of one method and its * row (``None`` when FORGrad is off); maps computed once."""
        batch, device = self.inputs.shape[0], self.inputs.device
        _sync(device)
        start = time.perf_counter()
        with count_passes(self.model) as count:
            maps = call_explainer(explainer, self.inputs, self.target, self.generator).detach()
        _sync(device)
        seconds = time.perf_counter() - start
        if maps.dim() not in (3, 4) or maps.shape[0] != batch or not bool(torch.isfinite(maps).all()):
            raise ValueError(f"{label}: the explainer returned invalid maps of shape {tuple(maps.shape)}")
        family = str(getattr(explainer, "family", "gradient"))
        if self.setting is None:
            return MethodRow(label, False, self.evaluate(maps), count.forward / batch, count.backward / batch,
                             seconds / batch, family=family), None
        # paired: the original row is the FORGrad map of the same mode without low-pass (σ = ∞)
        paired = forgrad_filter(maps, math.inf, self.shape, self.mode)
        row = MethodRow(label, False, self.evaluate(paired), count.forward / batch, count.backward / batch,
                        seconds / batch, family=family)
        sigma, search = self.sigma(label, explainer, maps)
        start = time.perf_counter()
        filtered = forgrad_filter(maps, sigma, self.shape, self.mode)
        _sync(device)
        seconds = row.seconds + (time.perf_counter() - start) / batch
        star = MethodRow(label, True, self.evaluate(filtered), row.forward, row.backward, seconds, sigma=sigma,
                         search=search, family=family)
        return row, star


def _table_rows(table: _Table, explainers: list[tuple[str, object]], progress: bool) -> tuple[list[MethodRow],
                                                                                             list[MethodRow]]:
    """The original rows and the FORGrad * rows of every ``(label, explainer)``, in order (a tqdm bar when
    ``progress``)."""
    from tqdm.auto import tqdm

    rows: list[MethodRow] = []
    forgrad_rows: list[MethodRow] = []
    bar = tqdm(explainers, desc="rank_methods", unit="method", leave=False, disable=not progress)
    for label, explainer in bar:
        bar.set_postfix_str(label)
        row, star = table.rows(label, explainer)
        rows.append(row)
        if star is not None:
            forgrad_rows.append(star)
    return rows, forgrad_rows


def rank_methods(
    model: nn.Module,
    inputs: Tensor,
    target: Tensor | int | None = None,
    methods: Sequence[object] = ("saliency", "gradient_input", "integrated_gradients", "smoothgrad"),
    forgrad: bool | str | float | Mapping[str, float | SigmaSearch] | None = "auto",
    sigmas: Sequence[float] | None = None,
    calibration: tuple[Tensor, Tensor | int | None] | None = None,
    steps: int = 20,
    mufidelity_samples: int = 128,
    grid: int = 9,
    batch_size: int | None = None,
    generator: torch.Generator | None = None,
    progress: bool = False,
    *,
    shape: str = "box",
    mode: str = "magnitude",
    criterion: str = "insertion_minus_deletion",
) -> Ranking:
    """Evaluate and rank attribution methods (seed 001, Tables 1–2).

    Args:
        model: classifier returning logits; eval mode during the call (restored).
        inputs: ``B×C×H×W`` images in [0, 1].
        target: ``LongTensor[B]``, int, or ``None`` = predicted classes (resolved once for all methods).
        methods: names of :data:`freqlens.attribution.registry.METHODS` (built with ``batch_size`` and
            ``generator``), explainer objects (labelled by their ``label`` attribute, else class name) or
            ``(label, explainer)`` pairs.
        forgrad: ``False``/``None`` (no * rows); ``True``/``"auto"``: σ* of :func:`search_sigma` per method
            on ``calibration = (images, target)`` when given (held out: the explainer is called on them),
            **else on the evaluated inputs themselves, reusing their maps** (σ* is then tuned on the test
            images — optimistic; give a calibration set for a fair comparison); a float: a fixed σ; a
            mapping ``{label: σ or SigmaSearch}``: σ chosen before per method (e.g. the searches of an
            earlier call on the same model and pipeline, reused on a new draw of evaluated images).
        sigmas: σ grid of the search (default :func:`default_sigmas`); ``shape``: the low-pass shape.
        mode: the FORGrad pipeline (:func:`freqlens.attribution.forgrad_filter`): ``"magnitude"`` (the
            published one, default) or ``"signed"`` (seed 001, Prop. 3.1). With FORGrad on, the
            **original row of every method uses the same convention as its * row** (paired
            comparison): its maps are ``forgrad_filter(maps, inf, shape, mode)``, i.e. in magnitude mode
            ``|mean_c φ|`` without low-pass (the identity for non-negative one-channel maps such as RISE,
            Sobol, HSIC, GradCAM; ``|φ|`` for Occlusion), in signed mode ``φ`` itself. With FORGrad off
            the rows are the explainers' own maps and ``mode`` is not used.
        steps: Deletion/Insertion (and σ search) steps. ``mufidelity_samples``, ``grid``: MuFidelity
            (subset 0.2). The MuFidelity masks are the same for every row (a seed drawn once from
            ``generator``).
        batch_size: most images per forward pass everywhere; the results do not depend on it.
        criterion: what σ* maximises in the search (:data:`freqlens.analysis.sigma_search.CRITERIA`;
            default ``I − D`` as in seed 001, ``"score"``: ``I + F − D``); :meth:`Ranking.order_by` gives
            the per-metric rankings.
        progress: a tqdm bar (stderr) over the methods, and the bars of each metric and σ search; off by
            default.

    Returns:
        :class:`Ranking`. Cost: images through the model's forward / backward passes during the
            attribution call only, per image (the target is resolved before, and the one-off 1-image
            memory probe of automatic batching is run up front), e.g. Saliency 1 + 1, Integrated
            Gradients ``steps`` + ``steps``, Occlusion ``1 + patches`` forwards.
    """
    inputs = check_images(inputs)
    setting = _forgrad_setting(forgrad)
    calibration = _check_arguments(steps, calibration, mode)
    check_criterion(criterion)
    explainers = _resolve_methods(methods, model, batch_size, generator)
    mask_seed = int(torch.randint(0, 2**62, (1,), generator=generator).item()) if generator is not None else 0
    with eval_mode(model):
        target = resolve_target(model, inputs, target, batch_size)
        if batch_size is None:  # the one-off 1-image memory probe of automatic batching, not a method's cost
            saved_bytes_per_image(model, inputs[:1])
        table = _Table(model, inputs, target, setting, mode, shape, sigmas, calibration, generator, batch_size,
                       {"steps": steps, "grid": grid, "samples": mufidelity_samples, "batch_size": batch_size,
                        "progress": progress, "mask_seed": mask_seed}, criterion)
        rows, forgrad_rows = _table_rows(table, explainers, progress)
    source = ("given" if isinstance(setting, dict) else
              {None: None, "auto": "calibration" if calibration is not None else "inputs"}.get(setting, "fixed"))
    return Ranking(rows=rows, forgrad_rows=forgrad_rows, n_images=inputs.shape[0], sigma_source=source,
                   mode=None if setting is None else mode)
