"""FORGrad cutoff search (seed 001, §4 "An adapted σ* per model").

``σ* = argmax_σ mean_x [Insertion(φ_σ(x)) − Deletion(φ_σ(x))]`` with ``φ_σ = lowpass(φ, σ)``. The paper
writes "argmax D − I", but lower Deletion is better, so the faithful reading (and ours) maximises
``I − D``. The base maps ``φ(x)`` are computed once; only the filtering and the two metrics are
repeated per σ.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from freqlens.attribution.base import Explainer, check_inputs, resolve_target
from freqlens.metrics import deletion, insertion
from freqlens.spectral import lowpass, nyquist_sigma

__all__ = ["SigmaSearch", "default_sigmas", "search_sigma"]


@dataclass(frozen=True)
class SigmaSearch:
    """Result of :func:`search_sigma`.

    Attributes:
        sigma_star: the selected cutoff σ* (an element of ``sigmas``).
        sigmas: the grid, in increasing order.
        scores: ``Tensor[S]``, mean over images of ``Insertion − Deletion`` per σ (the criterion).
        deletion: ``Tensor[S]``, mean Deletion per σ.
        insertion: ``Tensor[S]``, mean Insertion per σ.
        base_maps: the unfiltered maps ``φ(x)`` (the explainer's output).
        shape: the low-pass shape used.
        target: the classes explained, ``LongTensor[B]``.
    """

    sigma_star: float
    sigmas: list[float]
    scores: Tensor
    deletion: Tensor
    insertion: Tensor
    base_maps: Tensor = field(repr=False)
    shape: str = "box"
    target: Tensor | None = field(default=None, repr=False)

    @property
    def index(self) -> int:
        """Position of σ* in :attr:`sigmas`."""
        return self.sigmas.index(self.sigma_star)

    def best_maps(self) -> Tensor:
        """The base maps filtered at σ* (``lowpass(base_maps, sigma_star, shape)``)."""
        return lowpass(self.base_maps, self.sigma_star, self.shape)


def default_sigmas(height: int, width: int, shape: str = "box", n: int = 16) -> list[float]:
    """Default σ grid: ``n`` geometric values from 1 to the Nyquist bound (the identity, included).

    * ``"box"``: the mask only changes at integer σ, so the grid is integer: every σ in ``1..N`` when the
      bound ``N = max(H // 2, W // 2) ≤ n`` (e.g. ``1..16`` at 32 px, ``1..14`` at 28 px), otherwise the
      ``n`` geometric values floored and de-duplicated (14 values ``1, 2, 3, 4, 6, 9, ..., 81, 112`` at 224 px);
    * ``"disk"``: ``n`` geometric values from 1 to the farthest corner radius;
    * ``"gaussian"`` (no finite identity): ``n − 1`` geometric values from 1 to ``max(H, W) / 2``,
      then ``inf`` (the identity).
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
    reduce: str = "sum",
    progress: bool = False,
) -> SigmaSearch:
    """Find the FORGrad cutoff σ* maximising ``mean(Insertion − Deletion)`` (seed 001).

    Args:
        explainer: any explainer; ``explainer.attribute(inputs, target)`` is called **once** for the
            whole batch (each image is explained once for the whole sweep).
        model: the classifier scored by the metrics (usually ``explainer.model``).
        inputs: ``B×C×H×W`` images in [0, 1].
        target: ``LongTensor[B]``, int, or ``None`` = the predicted class (resolved once).
        sigmas: the grid (cycles per image; sorted, duplicates dropped); default :func:`default_sigmas`,
            whose last value is the identity (no filtering).
        shape: low-pass shape for :func:`freqlens.spectral.lowpass`.
        steps, batch_size, baseline, score, reduce: passed to :func:`freqlens.metrics.deletion` and
            :func:`freqlens.metrics.insertion`.
        progress: a tqdm bar over the σ grid.

    Returns:
        :class:`SigmaSearch`. Ties in the criterion go to the **smaller** σ (the smoother map).
    """
    inputs = check_inputs(inputs)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    if score not in ("prob", "logit"):
        raise ValueError(f"unknown score {score!r}; expected one of prob, logit")
    height, width = inputs.shape[-2:]
    grid = default_sigmas(height, width, shape) if sigmas is None else _check_sigmas(sigmas)
    nyquist_sigma(height, width, shape)  # validates ``shape`` before any work
    target = resolve_target(model, inputs, target, batch_size)

    base_maps = explainer.attribute(inputs, target).detach()
    if not isinstance(base_maps, Tensor) or base_maps.dim() not in (3, 4) or base_maps.shape[0] != inputs.shape[0]:
        got = tuple(base_maps.shape) if isinstance(base_maps, Tensor) else type(base_maps).__name__
        raise ValueError(f"the explainer returned maps of shape {got} for inputs of shape {tuple(inputs.shape)}")
    if not bool(torch.isfinite(base_maps).all()):
        raise ValueError("the explainer returned maps with NaN or infinite values")

    deletions, insertions = [], []
    for sigma in tqdm(grid, desc="search_sigma", unit="σ", leave=False, disable=not progress):
        maps = lowpass(base_maps, sigma, shape)
        kwargs = {"steps": steps, "baseline": baseline, "score": score, "batch_size": batch_size, "reduce": reduce}
        deletions.append(deletion(model, inputs, target, maps, **kwargs).double().mean())
        insertions.append(insertion(model, inputs, target, maps, **kwargs).double().mean())
    deletion_mean = torch.stack(deletions).cpu()
    insertion_mean = torch.stack(insertions).cpu()
    scores = insertion_mean - deletion_mean
    best = int(torch.argmax(scores))  # first maximum = the smallest σ among ties (grid is sorted)
    return SigmaSearch(
        sigma_star=grid[best],
        sigmas=grid,
        scores=scores,
        deletion=deletion_mean,
        insertion=insertion_mean,
        base_maps=base_maps,
        shape=shape,
        target=target,
    )
