"""FORGrad cutoff search (seed 001, §3.4 "An adapted σ* per model"), with bootstrap intervals.

``σ* = argmax_σ mean_x [Insertion(φ_σ(x)) − Deletion(φ_σ(x))]`` with ``φ_σ`` the FORGrad map of
:func:`freqlens.attribution.forgrad_filter` (``mode="magnitude"``: the published pipeline,
``"signed"``: Prop. 3.1's). The paper writes "argmax D − I", but lower Deletion is better, so the
faithful reading (and ours) maximises ``I − D``. The base maps ``φ(x)`` are computed once; only the
filtering and the two metrics are repeated per σ.

Because σ* is an argmax over a noisy curve, the search also reports, per σ, a percentile-bootstrap
interval of the mean ``I − D`` over images and the paired gain over the unfiltered map of the same mode
(σ = ∞, the same images) with its interval (:mod:`freqlens.analysis.bootstrap`); σ* is *significant*
when the gain interval lies entirely above 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from freqlens.attribution.base import Explainer, check_images, check_score, resolve_target
from freqlens.attribution.forgrad import check_forgrad_mode, forgrad_filter
from freqlens.metrics import deletion, insertion, mufidelity
from freqlens.spectral import nyquist_sigma

from .bootstrap import Interval, bootstrap_interval, check_bootstrap_settings, paired_bootstrap_interval

__all__ = ["CRITERIA", "SigmaSearch", "check_criterion", "default_sigmas", "search_sigma"]

#: What σ* maximises (per image, then the mean over images): seed 001's ``I − D`` (default), or, as its §5
#: suggests, the global score ``I + F − D`` or one metric alone (``−D``: lower Deletion is better).
CRITERIA = {
    "insertion_minus_deletion": "Insertion − Deletion",
    "score": "Insertion + MuFidelity − Deletion",
    "insertion": "Insertion",
    "deletion": "−Deletion",
    "mufidelity": "MuFidelity",
}


@dataclass(frozen=True)
class SigmaSearch:
    """Result of :func:`search_sigma` (S = number of σ, B = number of images).

    Attributes:
        sigma_star: the selected cutoff σ* (an element of ``sigmas``).
        sigmas: the grid, in increasing order.
        scores: ``Tensor[S]``, mean over images of the criterion per σ (``Insertion − Deletion`` by default).
        deletion: ``Tensor[S]``, mean Deletion per σ.
        insertion: ``Tensor[S]``, mean Insertion per σ.
        base_maps: the unfiltered maps ``φ(x)`` (the explainer's output, before the FORGrad pipeline).
        shape: the low-pass shape used.
        target: the classes explained, ``LongTensor[B]``.
        mode: the FORGrad pipeline, ``"magnitude"`` or ``"signed"``.
        per_image: ``Tensor[S, B]``, the criterion of every image at every σ.
        unfiltered: ``Tensor[B]``, the criterion of the unfiltered map of the same mode
            (``forgrad_filter(φ, inf, shape, mode)``: ``|reduced φ|`` in magnitude mode, ``φ`` in signed).
        intervals: per σ, the bootstrap interval of the mean criterion over images.
        gains: per σ, the bootstrap interval of the mean paired gain ``c(φ_σ) − c(φ_∞)`` of the criterion.
        unfiltered_interval: the bootstrap interval of the mean criterion of the unfiltered maps.
        criterion: what σ* maximises, a key of :data:`CRITERIA`.
        mufidelity: ``Tensor[S]``, mean MuFidelity per σ when the criterion needs it, else ``None``.
    """

    sigma_star: float
    sigmas: list[float]
    scores: Tensor
    deletion: Tensor
    insertion: Tensor
    base_maps: Tensor = field(repr=False)
    shape: str = "box"
    target: Tensor | None = field(default=None, repr=False)
    mode: str = "magnitude"
    per_image: Tensor | None = field(default=None, repr=False)
    unfiltered: Tensor | None = field(default=None, repr=False)
    intervals: list[Interval] = field(default_factory=list, repr=False)
    gains: list[Interval] = field(default_factory=list, repr=False)
    unfiltered_interval: Interval | None = field(default=None, repr=False)
    criterion: str = "insertion_minus_deletion"
    mufidelity: Tensor | None = None

    @property
    def index(self) -> int:
        """Position of σ* in :attr:`sigmas`."""
        return self.sigmas.index(self.sigma_star)

    @property
    def interval(self) -> Interval | None:
        """Bootstrap interval of the mean criterion at σ* (``None`` if not computed)."""
        return self.intervals[self.index] if self.intervals else None

    @property
    def gain(self) -> Interval | None:
        """Paired gain of σ* over the unfiltered maps, with its bootstrap interval (``None`` if not computed)."""
        return self.gains[self.index] if self.gains else None

    @property
    def significant(self) -> bool:
        """Whether the gain of σ* over the unfiltered maps is significant: its interval lies above 0."""
        gain = self.gain
        return gain is not None and gain.low > 0.0

    def best_sigma(self, criterion: str) -> float:
        """The σ of the grid that ``criterion`` (:data:`CRITERIA`) would have chosen from the same per-σ means
        (first maximum: the smaller σ on ties); ``"score"`` and ``"mufidelity"`` need a search that measured
        MuFidelity (``criterion="score"`` or ``"mufidelity"``), else ``ValueError``."""
        criterion = check_criterion(criterion)
        if criterion in ("score", "mufidelity") and self.mufidelity is None:
            raise ValueError(f"criterion {criterion!r} needs MuFidelity per σ: search with criterion='score'")
        means = {"deletion": self.deletion, "insertion": self.insertion, "mufidelity": self.mufidelity}
        return self.sigmas[int(torch.argmax(_criterion(means, criterion)))]

    def best_maps(self) -> Tensor:
        """The FORGrad maps at σ*: ``forgrad_filter(base_maps, sigma_star, shape, mode)``."""
        return forgrad_filter(self.base_maps, self.sigma_star, self.shape, self.mode)

    def without_maps(self) -> SigmaSearch:
        """A copy without ``base_maps`` / ``target`` and with the tensors on the CPU (light to pickle)."""
        cpu = {name: getattr(self, name).detach().cpu() for name in ("scores", "deletion", "insertion", "per_image",
                                                                     "unfiltered", "mufidelity") if getattr(self, name) is not None}
        return replace(self, base_maps=torch.empty(0), target=None, **cpu)

    def to_dict(self) -> dict:
        """JSON-ready summary: the curve, the intervals, the gains over the unfiltered maps and σ*."""
        return {
            "mode": self.mode, "shape": self.shape, "sigmas": list(self.sigmas), "sigma_star": self.sigma_star,
            "criterion": self.criterion, "criterion_mean": self.scores.tolist(),
            "insertion_minus_deletion": (self.insertion - self.deletion).tolist(), "deletion": self.deletion.tolist(),
            "insertion": self.insertion.tolist(),
            "mufidelity": None if self.mufidelity is None else self.mufidelity.tolist(),
            "intervals": [interval.to_dict() for interval in self.intervals],
            "gain_over_unfiltered": [gain.to_dict() for gain in self.gains],
            "unfiltered": None if self.unfiltered_interval is None else self.unfiltered_interval.to_dict(),
            "significant": self.significant,
        }


def default_sigmas(height: int, width: int, shape: str = "box", n: int = 16) -> list[float]:
    """Default σ grid: ``n`` geometric values from 1 to the Nyquist bound (the identity, included).

    * ``"box"``: the mask only changes at integer σ, so the grid is integer: every σ in ``1..N`` when the
      bound ``N = max(H // 2, W // 2) ≤ n`` (e.g. ``1..16`` at 32 px, ``1..14`` at 28 px), otherwise the
      ``n`` geometric values floored and de-duplicated (14 values ``1, 2, 3, 4, 6, 9, ..., 81, 112`` at 224 px);
    * ``"disk"``: ``n`` geometric values from 1 to the farthest corner radius;
    * ``"gaussian"`` (no finite identity): ``n − 1`` geometric values from 1 to ``max(H, W) / 2``,
      then ``inf`` (the identity).

    Args:
        height: the image height ``H`` in pixels.
        width: the image width ``W`` in pixels.
        shape: the low-pass shape, ``"box"``, ``"disk"`` or ``"gaussian"``.
        n: the number of grid values (≥ 2; fewer for ``"box"`` after flooring and de-duplication).

    Returns:
        The increasing σ grid in cycles per image, its last value the identity (a single value when the
            bound is ≤ 1).

    Raises:
        ValueError: ``n < 2`` or an unknown ``shape``.
    """
    if n < 2:
        raise ValueError(f"the default grid needs n >= 2 values, got {n}")
    bound = nyquist_sigma(height, width, shape)
    if math.isinf(bound):
        top = max(max(height, width) / 2.0, 1.0)
        return [float(v) for v in torch.logspace(0.0, math.log10(top), n - 1, dtype=torch.float64)] + [math.inf]
    if bound <= 1.0:
        return [float(bound)]
    if shape == "box" and bound <= n:
        return [float(v) for v in range(1, int(bound) + 1)]
    grid = torch.logspace(0.0, math.log10(bound), n, dtype=torch.float64)
    grid[-1] = bound
    if shape == "box":
        return sorted({float(math.floor(v + 1e-9)) for v in grid.tolist()})
    return [float(v) for v in grid]


def _check_sigmas(sigmas: Sequence[float] | Tensor) -> list[float]:
    if isinstance(sigmas, Tensor):
        sigmas = sigmas.detach().cpu().reshape(-1).tolist()
    try:
        values = [float(s) for s in sigmas]
    except (TypeError, ValueError) as err:
        raise ValueError(f"sigmas must be a sequence of numbers, got {sigmas!r}") from err
    if not values:
        raise ValueError("sigmas is empty")
    if any(math.isnan(s) or s < 0 for s in values):
        raise ValueError(f"sigmas must be >= 0 (cycles per image) or inf, got {values}")
    return sorted(set(values))


def _metrics(model: nn.Module, inputs: Tensor, target: Tensor, maps: Tensor, kwargs: dict,
             fidelity: dict | None) -> dict[str, Tensor]:
    """Per image Deletion, Insertion (and MuFidelity when ``fidelity`` holds its settings) of ``maps`` as
    float64 CPU ``Tensor[B]``; the MuFidelity masks come from a generator seeded with ``fidelity["seed"]``,
    the same for every σ (paired)."""
    values = {"deletion": deletion(model, inputs, target, maps, **kwargs),
              "insertion": insertion(model, inputs, target, maps, **kwargs)}
    if fidelity is not None:
        masks = torch.Generator(device=inputs.device).manual_seed(fidelity["seed"])
        values["mufidelity"] = mufidelity(model, inputs, target, maps, grid=fidelity["grid"],
                                          samples=fidelity["samples"], batch_size=kwargs["batch_size"],
                                          generator=masks)
    return {name: value.detach().double().cpu() for name, value in values.items()}


def _criterion(values: dict[str, Tensor], criterion: str) -> Tensor:
    """Per image the value of ``criterion`` (:data:`CRITERIA`) from the metrics of :func:`_metrics`."""
    if criterion == "insertion_minus_deletion":
        return values["insertion"] - values["deletion"]
    if criterion == "score":
        return values["insertion"] + values["mufidelity"] - values["deletion"]
    if criterion == "deletion":
        return -values["deletion"]
    return values[criterion]


def check_criterion(criterion: object) -> str:
    """``criterion`` if it is a key of :data:`CRITERIA`, else a ``ValueError`` listing them."""
    if criterion not in CRITERIA:
        raise ValueError(f"unknown criterion {criterion!r}; expected one of {', '.join(CRITERIA)}")
    return str(criterion)


def _check_search(
    inputs: Tensor, sigmas: Sequence[float] | Tensor | None, shape: str, steps: int, score: str, mode: str,
    criterion: str, n_resamples: int, confidence: float,
) -> tuple[str, float, list[float]]:
    """Validate :func:`search_sigma`'s settings before any work; returns ``(criterion, Nyquist bound, σ grid)``."""
    check_images(inputs)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    check_score(score)
    check_forgrad_mode(mode)
    criterion = check_criterion(criterion)
    check_bootstrap_settings(n_resamples, confidence)
    height, width = inputs.shape[-2:]
    bound = nyquist_sigma(height, width, shape)  # validates ``shape``
    return criterion, bound, default_sigmas(height, width, shape) if sigmas is None else _check_sigmas(sigmas)


def search_sigma(
    explainer: Explainer,
    model: nn.Module,
    inputs: Tensor,
    target: Tensor | int | None,
    sigmas: Sequence[float] | Tensor | None = None,
    shape: str = "box",
    steps: int = 20,
    batch_size: int | None = None,
    baseline: float | Tensor | str = 0.0,
    score: str = "prob",
    *,
    mode: str = "magnitude",
    reduce: str = "sum",
    criterion: str = "insertion_minus_deletion",
    mufidelity_samples: int = 128,
    grid: int = 9,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    generator: torch.Generator | None = None,
    progress: bool = False,
) -> SigmaSearch:
    """Find the FORGrad cutoff σ* maximising ``mean(Insertion − Deletion)`` (seed 001, §3.4), or another
    ``criterion``.

    Args:
        explainer: any explainer; ``explainer.attribute(inputs, target)`` is called **once** for the
            whole batch (each image is explained once for the whole sweep and the unfiltered reference).
        model: the classifier scored by the metrics (usually ``explainer.model``).
        inputs: ``B×C×H×W`` images in [0, 1].
        target: ``LongTensor[B]``, int, or ``None`` = the predicted class (resolved once).
        sigmas: the grid (cycles per image; sorted, duplicates dropped); default :func:`default_sigmas`,
            whose last value is the identity (no filtering).
        shape: low-pass shape for :func:`freqlens.spectral.lowpass`.
        steps, batch_size, baseline, score, reduce: passed to :func:`freqlens.metrics.deletion` and
            :func:`freqlens.metrics.insertion`.
        mode: the FORGrad pipeline of :func:`freqlens.attribution.forgrad_filter`, ``"magnitude"``
            (published, default) or ``"signed"``; the unfiltered reference uses the same mode.
        criterion: what σ* maximises (:data:`CRITERIA`): ``"insertion_minus_deletion"`` (seed 001,
            default), ``"score"`` (``I + F − D``, the global score of Table 1), ``"insertion"``,
            ``"deletion"`` (minimised) or ``"mufidelity"`` (seed 001 §5: σ* chosen on one metric alone).
        mufidelity_samples, grid: MuFidelity's settings (:func:`freqlens.metrics.mufidelity`, its own
            ``logit`` score and zero baseline) when the criterion needs it; the masks are the same for
            every σ (a seed drawn from ``generator``).
        n_resamples, confidence: of the percentile bootstrap over images (:func:`bootstrap_interval`).
        generator: CPU generator of the bootstrap resampling (and the MuFidelity mask seed); ``None``: a
            generator seeded with 0, so the intervals of a given search are reproducible.
        progress: a tqdm bar over the σ grid.

    Returns:
        :class:`SigmaSearch`. Ties in the criterion go to the **smaller** σ (the smoother map). The
            unfiltered reference (σ = ∞) is taken from the grid when it holds a σ ≥ the Nyquist bound of
            ``shape``, else computed once more from the same base maps.
    """
    criterion, bound, sigma_grid = _check_search(inputs, sigmas, shape, steps, score, mode, criterion, n_resamples,
                                                 confidence)
    target = resolve_target(model, inputs, target, batch_size)
    base_maps = _base_maps(explainer, inputs, target)
    rng = generator if generator is not None else torch.Generator().manual_seed(0)
    fidelity = ({"grid": grid, "samples": mufidelity_samples, "seed": int(torch.randint(0, 2**62, (1,), generator=rng))}
                if criterion in ("score", "mufidelity") else None)

    kwargs = {"steps": steps, "baseline": baseline, "score": score, "batch_size": batch_size, "reduce": reduce}
    rows = [_metrics(model, inputs, target, forgrad_filter(base_maps, sigma, shape, mode), kwargs, fidelity)
            for sigma in tqdm(sigma_grid, desc="search_sigma", unit="σ", leave=False, disable=not progress)]
    per_image = torch.stack([_criterion(row, criterion) for row in rows])  # S×B
    if sigma_grid[-1] >= bound:  # the grid holds the identity: its maps are the unfiltered ones
        unfiltered = per_image[-1]
    else:
        unfiltered = _criterion(_metrics(model, inputs, target, forgrad_filter(base_maps, math.inf, shape, mode),
                                         kwargs, fidelity), criterion)
    means = {name: torch.stack([row[name] for row in rows]).mean(dim=1) for name in rows[0]}
    scores = per_image.mean(dim=1)
    best = int(torch.argmax(scores))  # first maximum = the smallest σ among ties (grid is sorted)
    intervals, gains, reference = _intervals(per_image, unfiltered, n_resamples, confidence, rng)
    return SigmaSearch(
        sigma_star=sigma_grid[best], sigmas=sigma_grid, scores=scores, deletion=means["deletion"],
        insertion=means["insertion"], base_maps=base_maps, shape=shape, target=target, mode=mode,
        per_image=per_image, unfiltered=unfiltered, intervals=intervals, gains=gains, unfiltered_interval=reference,
        criterion=criterion, mufidelity=means.get("mufidelity"),
    )


def _intervals(per_image: Tensor, unfiltered: Tensor, n_resamples: int, confidence: float,
               rng: torch.Generator) -> tuple[list[Interval], list[Interval], Interval]:
    """Per σ the interval of the mean criterion and of the paired gain over ``unfiltered``, then the
    interval of the unfiltered mean; drawn in that order from ``rng``."""
    intervals = [bootstrap_interval(row, n_resamples, confidence, rng) for row in per_image]
    gains = [paired_bootstrap_interval(row, unfiltered, n_resamples, confidence, rng) for row in per_image]
    return intervals, gains, bootstrap_interval(unfiltered, n_resamples, confidence, rng)


def _base_maps(explainer: Explainer, inputs: Tensor, target: Tensor) -> Tensor:
    """The explainer's maps of ``inputs`` (one call), checked: ``B×C×H×W`` / ``B×H×W`` and finite."""
    base_maps = explainer.attribute(inputs, target).detach()
    if not isinstance(base_maps, Tensor) or base_maps.dim() not in (3, 4) or base_maps.shape[0] != inputs.shape[0]:
        got = tuple(base_maps.shape) if isinstance(base_maps, Tensor) else type(base_maps).__name__
        raise ValueError(f"the explainer returned maps of shape {got} for inputs of shape {tuple(inputs.shape)}")
    if not bool(torch.isfinite(base_maps).all()):
        raise ValueError("the explainer returned maps with NaN or infinite values")
    return base_maps
