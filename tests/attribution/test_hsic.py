"""HSIC attribution: the estimator against a naive numpy implementation, the samplers, the median
bandwidth, dependence ordering, localisation, seeding, batch-size independence and validation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from freqlens.attribution.hsic import HSICAttribution, binary_designs, hsic_binary, median_bandwidth

from .conftest import Quadrants, SmallReLUCNN, quadrant_mask, seeded


def naive_hsic(x: np.ndarray, y: np.ndarray) -> float:
    """``tr(K H L H) / (n−1)²`` with an explicit Dirac kernel on ``x`` and an RBF (median width) on ``y``."""
    n = len(x)
    k = (x[:, None] == x[None, :]).astype(float)
    distances = np.abs(y[:, None] - y[None, :])
    width = np.median(distances[np.triu_indices(n, 1)])
    gram = np.exp(-distances**2 / (2 * width**2))
    h = np.eye(n) - np.ones((n, n)) / n
    return float(np.trace(k @ h @ gram @ h) / (n - 1) ** 2)


def test_estimator_matches_the_naive_trace_formula() -> None:
    rng = np.random.default_rng(0)
    n, d = 31, 5  # 465 pairs: an odd count, so the median is unambiguous
    masks = (rng.random((n, d)) > 0.5).astype(np.float64)
    outputs = rng.normal(size=(3, n)) + masks[:, 0] * np.array([[0.0], [1.0], [3.0]])
    ours = hsic_binary(torch.from_numpy(masks), torch.from_numpy(outputs))
    expected = np.array([[naive_hsic(masks[:, i], outputs[b]) for i in range(d)] for b in range(3)])
    np.testing.assert_allclose(ours.numpy(), expected, rtol=1e-10, atol=1e-12)


def test_median_bandwidth_and_its_fallbacks() -> None:
    y = torch.tensor([[0.0, 1.0, 3.0, 7.0, 8.0], [2.0, 2.0, 2.0, 2.0, 2.0], [0.0, 0.0, 0.0, 0.0, 4.0]])
    widths = median_bandwidth(y)
    pairs = np.abs(y[0].numpy()[:, None] - y[0].numpy()[None, :])[np.triu_indices(5, 1)]
    assert widths[0] == pytest.approx(float(np.median(pairs)))
    assert widths[1] == 1.0  # all outputs equal
    assert widths[2] == pytest.approx(4 * 4 / 10)  # median 0 -> mean pairwise distance


@pytest.mark.parametrize("sampler", ["lhs", "sobol"])
def test_binary_designs_are_balanced_and_seeded(sampler: str) -> None:
    designs = binary_designs(3, 64, sampler, seeded(1))
    assert designs.shape == (64, 9)
    assert set(designs.unique().tolist()) == {0.0, 1.0}
    assert (designs.sum(0) == 32).all()  # both samplers stratify each coordinate exactly
    assert torch.equal(designs, binary_designs(3, 64, sampler, seeded(1)))
    assert not torch.equal(designs, binary_designs(3, 64, sampler, seeded(2)))
    with pytest.raises(ValueError, match="sampler"):
        binary_designs(3, 8, "grid")


def test_dependence_grows_with_the_weight_of_a_cell() -> None:
    """Additive model on a 2×2 grid with cell weights 0, 1, 2, 4: HSIC is ordered like the weights."""
    weights = torch.tensor([[0.0, 1.0], [2.0, 4.0]]).repeat_interleave(4, 0).repeat_interleave(4, 1)

    class Additive(nn.Module):
        def forward(self, inputs: Tensor) -> Tensor:
            return (inputs[:, 0] * weights).sum(dim=(1, 2))[:, None]

    x = torch.ones(1, 1, 8, 8)
    maps = HSICAttribution(Additive(), grid=2, nb_design=256, generator=seeded(3))(x, torch.tensor([0]))
    cells = maps[0, 0, ::4, ::4].flatten()  # corners of each 4×4 cell (bilinear upsampling keeps order)
    assert cells[0] < cells[1] < cells[2] < cells[3]
    assert cells[0] < 0.05 * cells[3]


@pytest.mark.parametrize("perturbation", ["inpainting", "blur"])
@pytest.mark.parametrize("quadrant", [1, 3])
def test_map_peaks_in_the_quadrant_that_carries_the_evidence(quadrant: int, perturbation: str) -> None:
    x = torch.rand(2, 1, 16, 16, generator=seeded(quadrant))
    explainer = HSICAttribution(Quadrants(), grid=4, nb_design=64, perturbation=perturbation, generator=seeded())
    maps = explainer(x, torch.full((2,), quadrant))
    inside = quadrant_mask(quadrant, 16, 16)
    for image in maps[:, 0]:
        assert torch.isfinite(image).all()
        assert image[inside].mean() > 3 * image[~inside].mean()


@pytest.mark.parametrize("sampler", ["lhs", "sobol"])
def test_same_seed_same_maps_and_batch_size_independence(sampler: str) -> None:
    model = SmallReLUCNN(seed=6).eval()
    x = torch.rand(3, 3, 10, 10, generator=seeded(2))

    def explain(seed: int, batch_size: int | None = None) -> Tensor:
        return HSICAttribution(model, grid=2, nb_design=16, sampler=sampler, batch_size=batch_size,
                               generator=seeded(seed))(x)

    reference = explain(3)
    assert reference.shape == (3, 1, 10, 10)
    assert torch.equal(explain(3), reference)
    if sampler == "lhs":  # thresholded Sobol points differ between seeds only by symmetries HSIC ignores
        assert not torch.allclose(explain(4), reference)
    for batch_size in (1, 3, 7):
        torch.testing.assert_close(explain(3, batch_size), reference, rtol=1e-4, atol=1e-7)


def test_invalid_arguments() -> None:
    model = SmallReLUCNN(seed=6).eval()
    with pytest.raises(ValueError, match="sampler"):
        HSICAttribution(model, sampler="random")
    with pytest.raises(ValueError, match="nb_design"):
        HSICAttribution(model, nb_design=1)
    with pytest.raises(ValueError, match="output_bandwidth"):
        HSICAttribution(model, output_bandwidth=0.0)
    with pytest.raises(ValueError, match="perturbation"):
        HSICAttribution(model, perturbation="swap")
    with pytest.raises(ValueError, match="grid"):
        HSICAttribution(model, grid=9, nb_design=4)(torch.rand(1, 3, 8, 8))
    with pytest.raises(ValueError, match="floating"):
        HSICAttribution(model)(torch.ones(1, 3, 8, 8, dtype=torch.long))
