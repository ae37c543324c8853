"""FORGrad cutoff search (freqlens.analysis.sigma_search)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from freqlens.analysis import SigmaSearch, default_sigmas, search_sigma
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
                          steps=16, score="logit")
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
    # Recompute one grid point directly from the base maps.
    maps = lowpass(result.base_maps, 3.0, "box")
    d = deletion(model, inputs, result.target, maps, steps=8).double().mean()
    i = insertion(model, inputs, result.target, maps, steps=8).double().mean()
    torch.testing.assert_close(result.deletion[3], d)
    torch.testing.assert_close(result.insertion[3], i)
    torch.testing.assert_close(result.best_maps(), lowpass(result.base_maps, result.sigma_star, "box"))


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
