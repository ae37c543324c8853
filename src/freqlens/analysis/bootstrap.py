"""Percentile-bootstrap confidence intervals of a mean over images (pure tensor maths).

Used by :func:`freqlens.analysis.search_sigma` (seed 001's σ* with an uncertainty: the mean
``Insertion − Deletion`` per σ and its paired gain over the unfiltered maps) and reusable for any
per-image score. The percentile bootstrap (Efron & Tibshirani 1993, §13.3): resample the ``n`` values
with replacement ``n_resamples`` times, take the mean of each resample, and report the
``(1 − confidence) / 2`` and ``(1 + confidence) / 2`` quantiles of those means (linear interpolation).
Means are computed on values shifted by the first one, so a constant sample gives exactly that
constant as its interval.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["Interval", "bootstrap_interval", "paired_bootstrap_interval"]


@dataclass(frozen=True)
class Interval:
    """A mean and its percentile-bootstrap confidence interval.

    Attributes:
        estimate: the mean of the ``n`` values.
        low: lower bound, the ``(1 − confidence) / 2`` quantile of the resampled means.
        high: upper bound, the ``(1 + confidence) / 2`` quantile.
        confidence: the nominal coverage, e.g. ``0.95``.
        n: number of values (images).
        n_resamples: number of bootstrap resamples.
    """

    estimate: float
    low: float
    high: float
    confidence: float
    n: int
    n_resamples: int

    @property
    def width(self) -> float:
        """``high − low``."""
        return self.high - self.low

    def contains(self, value: float) -> bool:
        """Whether ``low ≤ value ≤ high``."""
        return self.low <= value <= self.high

    def excludes_zero(self) -> bool:
        """Whether 0 lies outside ``[low, high]`` (the mean differs from 0 at this confidence)."""
        return not self.contains(0.0)

    def to_dict(self) -> dict[str, float | int]:
        """JSON-ready ``{"mean", "low", "high", "confidence", "n", "n_resamples"}``."""
        return {"mean": self.estimate, "low": self.low, "high": self.high, "confidence": self.confidence,
                "n": self.n, "n_resamples": self.n_resamples}


def _as_values(values: object, name: str) -> Tensor:
    if isinstance(values, Tensor):
        tensor = values.detach().to(device="cpu", dtype=torch.float64).reshape(-1)
    else:
        try:
            tensor = torch.as_tensor(list(values), dtype=torch.float64)  # type: ignore[call-overload]
        except (TypeError, ValueError):
            raise TypeError(f"{name} must be a tensor or a sequence of numbers, got {type(values).__name__}") from None
    if tensor.numel() == 0:
        raise ValueError(f"{name} is empty")
    if not bool(torch.isfinite(tensor).all()):
        raise ValueError(f"{name} contains NaN or infinite values")
    return tensor


def check_bootstrap_settings(n_resamples: int, confidence: float) -> None:
    """Check the bootstrap settings.

    Args:
        n_resamples: the number of resamples, an int ≥ 1.
        confidence: the nominal coverage, in (0, 1).

    Raises:
        ValueError: unless ``n_resamples`` is an int ≥ 1 and ``confidence`` is in (0, 1).
    """
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, int) or n_resamples < 1:
        raise ValueError(f"n_resamples must be an integer >= 1, got {n_resamples!r}")
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float)) or not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")


def bootstrap_interval(
    values: Tensor | list[float],
    n_resamples: int = 1000,
    confidence: float = 0.95,
    generator: torch.Generator | None = None,
) -> Interval:
    """Percentile-bootstrap interval of the mean of ``values`` (one value per image).

    Args:
        values: ``Tensor[n]`` (any shape, flattened) or a sequence of ``n ≥ 1`` finite numbers.
        n_resamples: number of resamples ``B`` (with replacement, ``n`` values each).
        confidence: nominal coverage in ``(0, 1)``.
        generator: a CPU ``torch.Generator`` for the resampling indices (``None``: torch's global
            generator); the same generator state gives the same interval.

    Returns:
        :class:`Interval` with ``estimate = mean(values)``. Memory: ``B × n`` indices.
    """
    check_bootstrap_settings(n_resamples, confidence)
    data = _as_values(values, "values")
    n = data.numel()
    shift = data[0]
    centred = data - shift  # a constant sample: exactly zeros, so the interval is exactly the constant
    estimate = float(shift + centred.mean())
    index = torch.randint(0, n, (n_resamples, n), generator=generator)
    means = shift + centred[index].mean(dim=1)
    alpha = (1.0 - float(confidence)) / 2.0
    bounds = torch.quantile(means, torch.tensor([alpha, 1.0 - alpha], dtype=torch.float64))
    return Interval(estimate=estimate, low=float(bounds[0]), high=float(bounds[1]), confidence=float(confidence),
                    n=n, n_resamples=n_resamples)


def paired_bootstrap_interval(
    values: Tensor | list[float],
    reference: Tensor | list[float],
    n_resamples: int = 1000,
    confidence: float = 0.95,
    generator: torch.Generator | None = None,
) -> Interval:
    """Percentile-bootstrap interval of the mean paired difference ``values − reference``.

    The two samples are paired (the same images): image ``i`` contributes ``values[i] − reference[i]``
    and the images are resampled together, so what the images share cancels out.

    Args:
        values, reference: ``Tensor[n]`` or sequences, same length ``n ≥ 1``.
        n_resamples, confidence, generator: as in :func:`bootstrap_interval`.

    Returns:
        :class:`Interval` of the mean difference (positive: ``values`` larger on average).
    """
    first = _as_values(values, "values")
    second = _as_values(reference, "reference")
    if first.shape != second.shape:
        raise ValueError(f"paired samples must have the same length, got {first.numel()} and {second.numel()}")
    return bootstrap_interval(first - second, n_resamples, confidence, generator)
