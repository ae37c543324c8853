"""Percentile-bootstrap intervals (freqlens.analysis.bootstrap): the algorithm, its statistical properties
(coverage, width shrinking like 1/√n), paired differences, reproducibility and input checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from freqlens.analysis import Interval, bootstrap_interval, paired_bootstrap_interval


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_is_the_percentile_bootstrap_of_the_mean():
    values = torch.randn(30, generator=_gen(0), dtype=torch.float64)
    interval = bootstrap_interval(values, n_resamples=400, confidence=0.9, generator=_gen(1))
    # the same resamples drawn independently: quantiles 5 % and 95 % of the resampled means
    index = torch.randint(0, 30, (400, 30), generator=_gen(1)).numpy()
    means = values.numpy()[index].mean(axis=1)
    low, high = np.quantile(means, [0.05, 0.95])
    assert interval.low == pytest.approx(low, abs=1e-12) and interval.high == pytest.approx(high, abs=1e-12)
    assert interval.estimate == pytest.approx(float(values.mean()), abs=1e-12)
    assert (interval.n, interval.n_resamples, interval.confidence) == (30, 400, 0.9)
    assert interval.low < interval.estimate < interval.high


def test_interval_shrinks_with_more_images():
    """Exponential(1) values (skewed): the width for n = 400 is about a quarter of the width for n = 25."""
    widths = {25: [], 400: []}
    for seed in range(5):
        for n, found in widths.items():
            values = torch.empty(n, dtype=torch.float64).exponential_(1.0, generator=_gen(100 * seed + n))
            found.append(bootstrap_interval(values, generator=_gen(seed)).width)
    small, large = np.mean(widths[25]), np.mean(widths[400])
    assert large < small / 2  # √(400 / 25) = 4; the normal-theory 95 % width at n = 25 is ≈ 0.78
    assert 0.5 < small < 1.1 and 0.12 < large < 0.28


def test_interval_contains_the_true_mean_most_of_the_time():
    hits, widths = 0, []
    trials = 200
    for seed in range(trials):
        values = 1.0 + torch.randn(50, generator=_gen(seed), dtype=torch.float64)
        interval = bootstrap_interval(values, n_resamples=500, generator=_gen(10_000 + seed))
        hits += interval.contains(1.0)
        widths.append(interval.width)
    assert 0.88 <= hits / trials <= 0.99  # nominal 95 %
    assert np.mean(widths) == pytest.approx(2 * 1.96 / np.sqrt(50), rel=0.15)


def test_paired_interval_of_a_constant_difference_is_that_constant():
    reference = torch.randint(-40, 40, (25,), generator=_gen(3)).double() / 8  # exact binary fractions
    values = reference + 0.25
    interval = paired_bootstrap_interval(values, reference, generator=_gen(4))
    assert interval.estimate == interval.low == interval.high == 0.25
    assert interval.excludes_zero() and interval.width == 0.0
    # the unpaired interval of the same values is wide: pairing removes what the images share
    assert bootstrap_interval(values, generator=_gen(4)).width > 1.0


def test_paired_interval_is_the_interval_of_the_differences():
    a = torch.rand(40, generator=_gen(5), dtype=torch.float64)
    b = torch.rand(40, generator=_gen(6), dtype=torch.float64)
    paired = paired_bootstrap_interval(a, b, n_resamples=300, generator=_gen(7))
    direct = bootstrap_interval(a - b, n_resamples=300, generator=_gen(7))
    assert paired == direct


def test_reproducible_with_a_generator_and_a_constant_sample_is_exact():
    values = [0.1, 0.4, 0.35, 0.8, 0.05]
    assert bootstrap_interval(values, generator=_gen(0)) == bootstrap_interval(values, generator=_gen(0))
    assert bootstrap_interval(values, generator=_gen(0)) != bootstrap_interval(values, generator=_gen(1))
    constant = bootstrap_interval([0.1] * 7, generator=_gen(0))
    assert constant.low == constant.high == constant.estimate == 0.1
    single = bootstrap_interval(torch.tensor([0.3]), generator=_gen(0))
    assert single.low == single.high == pytest.approx(0.3)
    assert isinstance(single, Interval) and single.to_dict()["mean"] == single.estimate


@pytest.mark.parametrize(("call", "message"), [
    (lambda: bootstrap_interval([]), "empty"),
    (lambda: bootstrap_interval([1.0, float("nan")]), "NaN"),
    (lambda: bootstrap_interval([1.0], n_resamples=0), "n_resamples"),
    (lambda: bootstrap_interval([1.0], confidence=1.0), "confidence"),
    (lambda: paired_bootstrap_interval([1.0, 2.0], [1.0]), "same length"),
])
def test_bad_inputs(call, message):
    with pytest.raises(ValueError, match=message):
        call()
