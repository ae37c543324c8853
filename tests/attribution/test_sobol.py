"""Sobol attribution: the design matrices, the Jansen estimator against analytic total indices,
localisation, chunking and validation (seeding and batch-size independence: ``test_contract.py``)."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

import freqlens
from freqlens.attribution.sobol import SobolAttribution, jansen_total_indices, sobol_designs

from .conftest import Quadrants, SmallReLUCNN, quadrant_mask, seeded


def test_design_matrices_follow_the_pick_freeze_scheme() -> None:
    grid, n = 3, 16
    d = grid * grid
    designs = sobol_designs(grid, n, seeded())
    assert designs.shape == (n * (d + 2), d)
    assert designs.min() >= 0 and designs.max() <= 1
    a, b = designs[:n], designs[n : 2 * n]
    for i in range(d):
        c = designs[2 * n + i * n : 2 * n + (i + 1) * n]
        others = [j for j in range(d) if j != i]
        assert torch.equal(c[:, i], b[:, i])
        assert torch.equal(c[:, others], a[:, others])
    # scrambled Sobol points of a power-of-two count: every coordinate has n/2 points in each half
    points = torch.cat([a, b], dim=1)
    assert ((points < 0.5).sum(0) == n // 2).all()


def test_designs_are_seeded() -> None:
    assert torch.equal(sobol_designs(2, 8, seeded(1)), sobol_designs(2, 8, seeded(1)))
    assert not torch.equal(sobol_designs(2, 8, seeded(1)), sobol_designs(2, 8, seeded(2)))


def test_jansen_matches_analytic_total_indices_of_an_interaction() -> None:
    """``f = X0·X1 + X2`` with ``X ~ U[0,1]^4``: total indices (1/36, 1/36, 1/12, 0) / Var(f)."""
    n = 1024
    designs = sobol_designs(2, n, seeded(3)).double()
    f = designs[:, 0] * designs[:, 1] + designs[:, 2]
    indices = jansen_total_indices(f[None], n)[0]
    variance = 7 / 144 + 1 / 12
    expected = torch.tensor([1 / 36, 1 / 36, 1 / 12, 0.0], dtype=torch.float64) / variance
    torch.testing.assert_close(indices, expected, rtol=0.02, atol=1e-3)
    # the total index of X0 exceeds its first-order index (3/7 of Var(X0·X1)): interactions count
    assert indices[0] > (1 / 48) / variance + 0.05


def test_additive_model_gives_squared_share_of_each_cell() -> None:
    """Linear model with inpainting: ``f = Σ s_i X_i`` so ``ST_i = s_i² / Σ s_j²``; grid = image size."""
    generator = seeded(4)
    weights = torch.randn(1, 4, 4, generator=generator)
    x = torch.rand(1, 1, 4, 4, generator=generator) + 0.5

    class Linear(nn.Module):
        def forward(self, inputs: Tensor) -> Tensor:
            return (inputs * weights).sum(dim=(1, 2, 3))[:, None]

    with freqlens.pixel_range(None):  # x in [0.5, 1.5]: away from the zero baseline, outside the [0, 1] convention
        maps = SobolAttribution(Linear(), grid=4, nb_design=512, generator=seeded(5))(x, torch.tensor([0]))
    shares = (weights * x[0]) ** 2
    expected = (shares / shares.sum())[None]
    assert maps.shape == (1, 1, 4, 4)
    torch.testing.assert_close(maps, expected, rtol=0.1, atol=0.01)


@pytest.mark.parametrize("perturbation", ["inpainting", "blur"])
@pytest.mark.parametrize("quadrant", [0, 2])
def test_map_peaks_in_the_quadrant_that_carries_the_evidence(quadrant: int, perturbation: str) -> None:
    x = torch.rand(2, 1, 16, 16, generator=seeded(quadrant))
    explainer = SobolAttribution(Quadrants(), grid=4, nb_design=32, perturbation=perturbation,
                                 generator=seeded())
    maps = explainer(x, torch.full((2,), quadrant))
    inside = quadrant_mask(quadrant, 16, 16)
    for image in maps[:, 0]:
        assert torch.isfinite(image).all()
        assert image[inside].mean() > 3 * image[~inside].mean()


def test_forward_count_and_chunking() -> None:
    model = SmallReLUCNN(seed=5)
    sizes: list[int] = []
    handle = model.register_forward_pre_hook(lambda module, args: sizes.append(args[0].shape[0]))
    SobolAttribution(model, grid=3, nb_design=4, batch_size=10, generator=seeded())(torch.rand(2, 3, 9, 9))
    handle.remove()
    assert max(sizes) <= 10
    assert sum(sizes) == 2 + 2 * 4 * (9 + 2)


def test_invalid_arguments() -> None:
    model = SmallReLUCNN(seed=5).eval()
    with pytest.raises(ValueError, match="perturbation"):
        SobolAttribution(model, perturbation="noise")
    with pytest.raises(ValueError, match="nb_design"):
        SobolAttribution(model, nb_design=0)
    with pytest.raises(ValueError, match="grid"):
        SobolAttribution(model, grid=12, nb_design=2)(torch.rand(1, 3, 8, 8))
    with pytest.raises(ValueError, match="infinite"):
        SobolAttribution(model)(torch.full((1, 3, 8, 8), float("inf")))
