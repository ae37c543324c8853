"""FORGrad cutoff search (freqlens.analysis.sigma_search)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from freqlens.analysis import SigmaSearch, bootstrap_interval, default_sigmas, search_sigma
from freqlens.attribution import forgrad_filter
from freqlens.attribution.base import Explainer
from freqlens.metrics import deletion, insertion
from freqlens.spectral import lowpass, nyquist_sigma

SIZE = 16


class MapExplainer(Explainer):
    """Returns ``fn(inputs, target)`` and counts calls and explained images."""

    def __init__(self, model: nn.Module, fn) -> None:
        super().__init__(model)
        self.fn = fn
        self.calls = 0
        self.images = 0

    def attribute(self, inputs, target=None):
        self.calls += 1
        self.images += inputs.shape[0]
        return self.fn(inputs, target)


def smooth_problem(batch: int = 4):
    """Class 0 logit = Σ w·x with a smooth positive bump w; class 1 logit = 0."""
    torch.manual_seed(0)
    coords = torch.arange(SIZE, dtype=torch.float32)
    bump = torch.exp(-((coords[:, None] - 6.0) ** 2 + (coords[None, :] - 9.0) ** 2) / (2 * 3.0**2))
    weight = torch.stack([bump, torch.zeros_like(bump)])[:, None]  # [2, 1, H, W]
    layer = nn.Linear(SIZE * SIZE, 2, bias=False)
    with torch.no_grad():
        layer.weight.copy_(weight.reshape(2, -1))
    model = nn.Sequential(nn.Flatten(), layer)
    inputs = 0.25 + 0.5 * torch.rand(batch, 1, SIZE, SIZE)
    return model, inputs, bump


def checkerboard() -> torch.Tensor:
    idx = torch.arange(SIZE)
    return ((idx[:, None] + idx[None, :]) % 2 * 2 - 1).float()


def test_noisy_oracle_gives_sigma_below_nyquist():
    model, inputs, bump = smooth_problem()
    noise = 2.0 * checkerboard()  # pure Nyquist-frequency noise, larger than the signal
    explainer = MapExplainer(model, lambda x, t: bump * x + noise)
    sigmas = default_sigmas(SIZE, SIZE)
    result = search_sigma(explainer, model, inputs, torch.zeros(4, dtype=torch.long), sigmas=sigmas,
                          steps=16, score="logit", mode="signed")
    bound = nyquist_sigma(SIZE, SIZE, "box")
    assert sigmas[-1] == bound  # the identity is part of the default grid
    assert result.sigma_star in result.sigmas and result.sigma_star < bound
    assert float(result.scores[result.index]) > float(result.scores[-1]) + 0.1 * abs(float(result.scores[-1]))


def test_explainer_called_once_for_whole_sweep_and_scores_consistent():
    model, inputs, bump = smooth_problem()
    explainer = MapExplainer(model, lambda x, t: bump * x + 0.3 * torch.randn_like(x))
    sigmas = [1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.5, 8.0]
    result = search_sigma(explainer, model, inputs, None, sigmas=sigmas, steps=8, batch_size=3)
    assert explainer.calls == 1 and explainer.images == len(inputs)
    assert isinstance(result, SigmaSearch)
    assert result.sigmas == sigmas and result.sigma_star in sigmas
    assert len(result.scores) == len(result.deletion) == len(result.insertion) == len(sigmas)
    torch.testing.assert_close(result.scores, result.insertion - result.deletion)
    assert result.index == int(torch.argmax(result.scores))
    # target=None is resolved once to the predicted class.
    with torch.no_grad():
        torch.testing.assert_close(result.target, model(inputs).argmax(1))
    # Recompute one grid point directly from the base maps: the default pipeline is the magnitude one,
    # |lowpass(|mean_c φ|)|, one map per image.
    assert result.mode == "magnitude"
    maps = lowpass(result.base_maps.mean(dim=1, keepdim=True).abs(), 3.0, "box").abs()
    d = deletion(model, inputs, result.target, maps, steps=8).double()
    i = insertion(model, inputs, result.target, maps, steps=8).double()
    torch.testing.assert_close(result.deletion[3], d.mean())
    torch.testing.assert_close(result.insertion[3], i.mean())
    torch.testing.assert_close(result.per_image[3], i - d)
    torch.testing.assert_close(result.best_maps(), forgrad_filter(result.base_maps, result.sigma_star, "box"))
    assert result.best_maps().shape == (len(inputs), 1, SIZE, SIZE)


def test_ties_go_to_the_smallest_sigma():
    """A model that ignores its input scores every σ the same: σ* is the smallest σ."""

    class Constant(nn.Module):
        def __init__(self):
            super().__init__()
            self.bias = nn.Parameter(torch.tensor([0.5, -0.5]))

        def forward(self, x):
            return self.bias.expand(x.shape[0], -1) + 0.0 * x.flatten(1).sum(1, keepdim=True)

    model = Constant()
    inputs = torch.rand(2, 1, SIZE, SIZE)
    explainer = MapExplainer(model, lambda x, t: torch.randn_like(x))
    result = search_sigma(explainer, model, inputs, None, sigmas=[8.0, 2.0, 4.0, 2.0], steps=4)
    assert result.sigmas == [2.0, 4.0, 8.0]  # sorted, de-duplicated
    assert result.sigma_star == 2.0
    torch.testing.assert_close(result.scores, torch.zeros(3, dtype=torch.float64))
    # nothing to gain over the unfiltered maps: σ* is not significant
    assert result.gain.low == result.gain.high == 0.0 and not result.significant


@pytest.mark.parametrize("shape", ["box", "disk", "gaussian"])
@pytest.mark.parametrize("size", [(32, 32), (28, 28), (224, 224), (9, 20)])
def test_default_grid(shape, size):
    grid = default_sigmas(*size, shape)
    bound = nyquist_sigma(*size, shape)
    assert grid == sorted(set(grid)) and 8 <= len(grid) <= 16
    assert grid[0] == 1.0 and grid[-1] == bound  # the identity closes the grid
    if shape == "box":
        assert all(float(s).is_integer() for s in grid)
    if shape == "gaussian":
        assert math.isinf(grid[-1])


def test_bad_inputs():
    model, inputs, bump = smooth_problem(batch=2)
    explainer = MapExplainer(model, lambda x, t: bump * x)
    with pytest.raises(ValueError, match="shape"):
        search_sigma(explainer, model, inputs, None, shape="triangle")
    with pytest.raises(ValueError, match="empty"):
        search_sigma(explainer, model, inputs, None, sigmas=[])
    with pytest.raises(ValueError, match="sigmas"):
        search_sigma(explainer, model, inputs, None, sigmas=[-1.0, 2.0])
    with pytest.raises(ValueError, match="steps"):
        search_sigma(explainer, model, inputs, None, steps=0)
    with pytest.raises(ValueError, match="unknown score"):
        search_sigma(explainer, model, inputs, None, score="loss")
    assert explainer.calls == 0  # arguments are checked before any attribution
    nan_explainer = MapExplainer(model, lambda x, t: torch.full_like(x, float("nan")))
    with pytest.raises(ValueError, match="NaN"):
        search_sigma(nan_explainer, model, inputs, None, sigmas=[2.0, 8.0])
    wrong = MapExplainer(model, lambda x, t: torch.rand(x.shape[0], 1, 8, 8))
    with pytest.raises(ValueError, match="do not match"):
        search_sigma(wrong, model, inputs, None, sigmas=[2.0, 8.0])


def magnitude_problem(batch: int = 8):
    """The bump model on images of constant brightness (so Grad × Input = bump · level is smooth), and
    non-negative Nyquist-frequency noise on half the pixels, larger than the signal."""
    model, _, bump = smooth_problem()
    levels = torch.linspace(0.3, 0.7, batch).view(-1, 1, 1, 1)
    inputs = levels.expand(batch, 1, SIZE, SIZE).clone()
    noise = 0.5 * (1.0 + checkerboard())  # 1 on half the pixels, 0 elsewhere: |map| = map
    return model, inputs, bump, noise


def test_magnitude_oracle_gain_over_unfiltered_is_significant():
    model, inputs, bump, noise = magnitude_problem()
    explainer = MapExplainer(model, lambda x, t: bump * x + noise)
    target = torch.zeros(len(inputs), dtype=torch.long)
    result = search_sigma(explainer, model, inputs, target, steps=16, score="logit",
                          generator=torch.Generator().manual_seed(0))
    assert explainer.calls == 1 and result.mode == "magnitude"
    bound = nyquist_sigma(SIZE, SIZE, "box")
    assert result.sigma_star < bound and result.sigmas[-1] == bound
    # the unfiltered reference is the grid's identity entry, in the same (magnitude) convention
    torch.testing.assert_close(result.unfiltered, result.per_image[-1], rtol=0, atol=0)
    reduced = result.base_maps.mean(dim=1, keepdim=True).abs()
    expected = (insertion(model, inputs, target, reduced, steps=16, score="logit")
                - deletion(model, inputs, target, reduced, steps=16, score="logit")).double()
    torch.testing.assert_close(result.unfiltered, expected)
    # per σ: interval of the mean I − D and paired gain over the unfiltered maps
    assert len(result.intervals) == len(result.gains) == len(result.sigmas)
    for k, (interval, gain) in enumerate(zip(result.intervals, result.gains)):
        assert interval.estimate == pytest.approx(float(result.scores[k]), abs=1e-12)
        assert interval.low <= interval.estimate <= interval.high and interval.n == len(inputs)
        assert gain.estimate == pytest.approx(float((result.per_image[k] - result.unfiltered).mean()), abs=1e-12)
    assert result.gains[-1].low == result.gains[-1].high == 0.0  # the identity against itself
    assert result.gain.low > 0 and result.significant
    assert result.interval is result.intervals[result.index]
    summary = result.to_dict()
    assert summary["significant"] is True and summary["mode"] == "magnitude"
    assert summary["gain_over_unfiltered"][result.index]["low"] == result.gain.low


def test_unfiltered_reference_is_computed_when_the_grid_lacks_the_identity():
    model, inputs, bump, noise = magnitude_problem(batch=4)
    explainer = MapExplainer(model, lambda x, t: bump * x + noise)
    for mode in ("magnitude", "signed"):
        result = search_sigma(explainer, model, inputs, None, sigmas=[1.0, 3.0], steps=8, mode=mode,
                              n_resamples=50)
        unfiltered_maps = forgrad_filter(result.base_maps, math.inf, "box", mode)
        expected = (insertion(model, inputs, result.target, unfiltered_maps, steps=8)
                    - deletion(model, inputs, result.target, unfiltered_maps, steps=8)).double()
        torch.testing.assert_close(result.unfiltered, expected)
        assert result.intervals[0].n_resamples == 50
    assert explainer.calls == 2  # once per search: the reference reuses the base maps


def test_signed_mode_filters_the_signed_maps():
    model, inputs, bump = smooth_problem()
    explainer = MapExplainer(model, lambda x, t: bump * x - 0.5)
    result = search_sigma(explainer, model, inputs, None, sigmas=[2.0, 8.0], steps=8, mode="signed")
    maps = lowpass(result.base_maps, 2.0, "box")
    d = deletion(model, inputs, result.target, maps, steps=8).double()
    torch.testing.assert_close(result.deletion[0], d.mean())
    torch.testing.assert_close(result.best_maps(), lowpass(result.base_maps, result.sigma_star, "box"))
    assert result.best_maps().shape == result.base_maps.shape


def test_intervals_are_reproducible():
    model, inputs, bump, noise = magnitude_problem(batch=6)
    explainer = MapExplainer(model, lambda x, t: bump * x + noise)
    runs = [search_sigma(explainer, model, inputs, None, sigmas=[2.0, 8.0], steps=8, generator=generator)
            for generator in (None, None, torch.Generator().manual_seed(0), torch.Generator().manual_seed(1))]
    assert runs[0].intervals == runs[1].intervals == runs[2].intervals  # None = a generator seeded with 0
    assert runs[0].gains == runs[1].gains
    assert runs[3].intervals != runs[0].intervals
    # the first interval is the first draw of that generator
    first = bootstrap_interval(runs[0].per_image[0], 1000, 0.95, torch.Generator().manual_seed(0))
    assert runs[0].intervals[0] == first
    light = runs[0].without_maps()
    assert light.base_maps.numel() == 0 and light.target is None and light.gains == runs[0].gains


def test_bad_bootstrap_and_mode_arguments():
    model, inputs, bump = smooth_problem(batch=2)
    explainer = MapExplainer(model, lambda x, t: bump * x)
    with pytest.raises(ValueError, match="FORGrad mode"):
        search_sigma(explainer, model, inputs, None, mode="abs")
    with pytest.raises(ValueError, match="n_resamples"):
        search_sigma(explainer, model, inputs, None, n_resamples=0)
    with pytest.raises(ValueError, match="confidence"):
        search_sigma(explainer, model, inputs, None, confidence=1.5)
    assert explainer.calls == 0


def test_progress_is_off_by_default_and_a_bar_on_stderr_when_asked(capsys):
    model, inputs, bump = smooth_problem(batch=2)
    explainer = MapExplainer(model, lambda x, t: bump * x)
    target = torch.zeros(2, dtype=torch.long)
    for progress in (None, False):
        kwargs = {} if progress is None else {"progress": progress}
        search_sigma(explainer, model, inputs, target, sigmas=[1.0, 4.0], steps=4, **kwargs)
        assert capsys.readouterr() == ("", "")  # silent: the library convention is progress=False
    search_sigma(explainer, model, inputs, target, sigmas=[1.0, 4.0], steps=4, progress=True)
    captured = capsys.readouterr()
    assert captured.out == "" and "search_sigma" in captured.err and "/2 " in captured.err  # a bar over the σ


@pytest.mark.parametrize("criterion", ["score", "insertion", "deletion", "mufidelity"])
def test_other_criteria_are_recomputed_from_the_metrics(criterion):
    """σ* chosen on I + F − D or on one metric alone (seed 001 §5): the per-image criterion equals the
    metrics recomputed directly (MuFidelity with the search's mask seed), σ* is its argmax, and the
    default criterion's curve is unchanged by asking for another one."""
    from freqlens.metrics import mufidelity

    model, inputs, bump = smooth_problem()
    noise = 0.3 * torch.randn(inputs.shape, generator=torch.Generator().manual_seed(1))
    explainer = MapExplainer(model, lambda x, t: bump * x + noise)
    sigmas = [1.0, 2.0, 4.0, 8.0]
    settings = {"sigmas": sigmas, "steps": 8, "mufidelity_samples": 16, "grid": 4}
    result = search_sigma(explainer, model, inputs, None, criterion=criterion,
                          generator=torch.Generator().manual_seed(3), **settings)
    plain = search_sigma(explainer, model, inputs, None, **settings)
    assert result.criterion == criterion and plain.criterion == "insertion_minus_deletion"
    torch.testing.assert_close(result.deletion, plain.deletion)
    torch.testing.assert_close(result.insertion, plain.insertion)
    assert result.index == int(torch.argmax(result.scores))
    maps = forgrad_filter(result.base_maps, 2.0, "box")
    d = deletion(model, inputs, result.target, maps, steps=8).double()
    i = insertion(model, inputs, result.target, maps, steps=8).double()
    seed = int(torch.randint(0, 2**62, (1,), generator=torch.Generator().manual_seed(3)))
    f = mufidelity(model, inputs, result.target, maps, grid=4, samples=16,
                   generator=torch.Generator().manual_seed(seed)).double()
    expected = {"score": i + f - d, "insertion": i, "deletion": -d, "mufidelity": f}[criterion]
    torch.testing.assert_close(result.per_image[1], expected)
    assert (result.mufidelity is not None) is (criterion in ("score", "mufidelity"))
    assert result.to_dict()["criterion"] == criterion
    with pytest.raises(ValueError, match="unknown criterion"):
        search_sigma(explainer, model, inputs, None, criterion="accuracy", **settings)


def test_best_sigma_of_every_criterion_from_one_search():
    """A search that measured MuFidelity gives the σ* of every criterion without another metric call: each
    equals the σ* of a search run with that criterion (same mask seed); without MuFidelity only the D/I
    criteria are available."""
    from freqlens.analysis import CRITERIA

    model, inputs, bump = smooth_problem()
    noise = 0.3 * torch.randn(inputs.shape, generator=torch.Generator().manual_seed(1))
    explainer = MapExplainer(model, lambda x, t: bump * x + noise)
    settings = {"sigmas": [1.0, 2.0, 4.0, 8.0], "steps": 8, "mufidelity_samples": 16, "grid": 4}
    full = search_sigma(explainer, model, inputs, None, criterion="score",
                        generator=torch.Generator().manual_seed(3), **settings)
    for criterion in CRITERIA:
        alone = search_sigma(explainer, model, inputs, None, criterion=criterion,
                             generator=torch.Generator().manual_seed(3), **settings)
        assert full.best_sigma(criterion) == alone.sigma_star
    plain = search_sigma(explainer, model, inputs, None, **settings)
    assert plain.best_sigma("insertion_minus_deletion") == plain.sigma_star
    with pytest.raises(ValueError, match="MuFidelity"):
        plain.best_sigma("score")
    with pytest.raises(ValueError, match="unknown criterion"):
        plain.best_sigma("accuracy")
