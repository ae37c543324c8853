"""HSIC attribution (Novello, Fel & Vigouroux, NeurIPS 2022, "Making Sense of Dependence: Efficient
Black-box Explanations Using Dependence Measure").

The image is cut into ``grid×grid`` cells; ``nb_design`` binary masks ``X ∈ {0, 1}^{d}`` (``d = grid²``)
are drawn from a Latin hypercube (the paper) or a scrambled Sobol sequence, thresholded at 1/2, so that
each cell is kept in half of the designs. Each masked image (``"inpainting"``: ``x ⊙ M``, or ``"blur"``)
gives an output ``y`` = the target score. For every cell, HSIC between its mask value and ``y`` is
estimated with ``(n − 1)⁻² tr(K H L H)``, ``H = I − 11ᵀ/n``:

* input kernel: the Dirac kernel on binary values, ``k(x, x') = 1[x = x']`` (the paper). Since
  ``H K H = 2 H x xᵀ H`` for binary ``x``, the estimate is ``2 (n − 1)⁻² x̃ᵀ L x̃`` with ``x̃`` the
  centred mask column, computed for all cells with one matrix product;
* output kernel: RBF ``l(y, y') = exp(−(y − y')² / (2 w²))`` with ``w`` the median pairwise distance
  of the outputs (median heuristic), or a fixed ``output_bandwidth``.

The ``grid×grid`` scores are upsampled bilinearly: ``B×1×H×W`` maps.

``nb_design=None`` (default) follows the image size (:data:`hsic_designs`): ``min(2000, max(500,
⌊2000 · 32² / (H·W) + ½⌋))`` masks — 2,000 at 28 and 32 px (seed 001's Θ(2000), unchanged), 500 (Xplique's
default, at ImageNet size) from 64 px on, e.g. at 224 px.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from freqlens.attribution.occlusion import SizeScaledCount
from freqlens.attribution.sobol import CellMaskExplainer
from freqlens.utils.seeding import seed_from
from freqlens.utils.signatures import forwards_options

SAMPLERS = ("lhs", "sobol")

#: The default number of HSIC designs for ``height×width`` images (``hsic_designs(H, W)``): 2,000 at 28
#: and 32 px (seed 001: Θ(2000) forwards), 500 (Xplique's default) at 64 px and 224 px.
hsic_designs = SizeScaledCount(reference=2000, minimum=500)

#: Upper bound on the elements of the ``b×n×n`` output-kernel block built at once.
_KERNEL_ELEMENTS = 2**24


def binary_designs(grid: int, nb_design: int, sampler: str = "lhs",
                   generator: torch.Generator | None = None) -> Tensor:
    """Binary masks from a Latin hypercube or a scrambled Sobol sequence, thresholded at 1/2.

    Args:
        grid: cells per side (``d = grid²`` dimensions).
        nb_design: number of masks ``n``.
        sampler: ``"lhs"`` (Latin hypercube) or ``"sobol"`` (scrambled).
        generator: source of randomness (``None``: the global RNG).

    Returns:
        ``nb_design×grid²`` float 0/1 masks (CPU).

    Raises:
        ValueError: an unknown ``sampler``.
    """
    dim = grid * grid
    if sampler == "lhs":
        device = "cpu" if generator is None else generator.device
        # one random permutation of the n strata per dimension, jittered inside the stratum
        order = torch.rand(dim, nb_design, generator=generator, device=device).argsort(dim=1)
        jitter = torch.rand(dim, nb_design, generator=generator, device=device)
        points = ((order + jitter) / nb_design).T.cpu()
    elif sampler == "sobol":
        engine = torch.quasirandom.SobolEngine(dim, scramble=True, seed=seed_from(generator))
        points = engine.draw(nb_design, dtype=torch.float64)
    else:
        raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
    return (points > 0.5).float()


def median_bandwidth(outputs: Tensor) -> Tensor:
    """Median of the pairwise distances ``|y_i − y_j|`` (``i < j``) per row of ``outputs`` (``B×n``).

    Falls back to the mean pairwise distance when the median is 0 (many ties) and to 1 when all outputs
    are equal.
    """
    n = outputs.shape[1]
    i, j = torch.triu_indices(n, n, offset=1, device=outputs.device)
    distances = (outputs[:, i] - outputs[:, j]).abs()
    if distances.shape[1] == 0:
        return outputs.new_ones(outputs.shape[0])
    pairs = distances.shape[1]
    low = distances.kthvalue((pairs + 1) // 2, dim=1).values
    high = distances.kthvalue(pairs // 2 + 1, dim=1).values
    width = (low + high) / 2  # the usual median (mean of the two middle values for an even count)
    mean = distances.mean(dim=1)
    width = torch.where(width > 0, width, mean)
    return torch.where(width > 0, width, torch.ones_like(width))


def hsic_binary(masks: Tensor, outputs: Tensor, bandwidth: float | None = None) -> Tensor:
    """HSIC estimates between binary ``masks`` and each row of ``outputs``.

    Dirac kernel on the masks, RBF kernel on the outputs.

    Args:
        masks: ``n×d`` binary masks (float 0/1).
        outputs: ``B×n`` target scores, one row per image.
        bandwidth: RBF width of the output kernel; ``None``: the median bandwidth
            (:func:`median_bandwidth`) of each row.

    Returns:
        ``B×d`` HSIC estimates.
    """
    n = masks.shape[0]
    centred = masks - masks.mean(dim=0, keepdim=True)
    results = []
    step = max(1, _KERNEL_ELEMENTS // (n * n))
    for start in range(0, outputs.shape[0], step):
        y = outputs[start : start + step]
        if bandwidth is None:
            width = median_bandwidth(y)
        else:
            width = y.new_full((y.shape[0],), float(bandwidth))
        gram = torch.exp(-((y[:, :, None] - y[:, None, :]) ** 2) / (2 * width[:, None, None] ** 2))
        results.append(2 * (centred[None] * (gram @ centred)).sum(dim=1) / (n - 1) ** 2)
    return torch.cat(results)


class HSICAttribution(CellMaskExplainer):
    """HSIC dependence between each ``grid×grid`` cell and the target score (Novello et al. 2022).

    Args:
        model: classifier returning ``B×num_classes`` logits.
        grid: cells per side.
        nb_design: number of masks ``n`` (forwards per image; seed 001 reports Θ(2000)); ``None``
            (default): :data:`hsic_designs` of the input size (2,000 at 32 px, 500 at 224 px).
        sampler: ``"lhs"`` (Latin hypercube, the paper) or ``"sobol"`` (scrambled), thresholded at 1/2.
            Thresholded Sobol designs of different seeds differ only by row order and bit flips, which
            HSIC ignores: with ``"sobol"`` the maps hardly depend on the generator.
        output_bandwidth: RBF width of the output kernel; ``None`` = median pairwise distance.
        generator: for the sampler (same seed, same maps).
        perturbation, baseline, blur_sigma, score, batch_size, progress: as
            :class:`~freqlens.attribution.sobol.CellMaskExplainer`.
    """

    name = "hsic"
    bar_label = "HSIC"
    default_designs = hsic_designs

    @forwards_options(CellMaskExplainer.__init__)
    def __init__(
        self,
        model: nn.Module,
        grid: int = 8,
        nb_design: int | None = None,
        sampler: str = "lhs",
        output_bandwidth: float | None = None,
        **options: Any,
    ) -> None:
        super().__init__(model, grid, nb_design, **options)
        if self.nb_design is not None and self.nb_design < 2:
            raise ValueError(f"nb_design must be at least 2, got {nb_design}")
        if sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
        self.sampler = sampler
        if output_bandwidth is not None and not output_bandwidth > 0:
            raise ValueError(f"output_bandwidth must be positive, got {output_bandwidth!r}")
        self.output_bandwidth = output_bandwidth

    def designs(self, height: int, width: int, generator: torch.Generator | None = None) -> Tensor:
        return binary_designs(self.grid, self.designs_for_size(height, width), self.sampler, generator)

    def estimate(self, designs: Tensor, scores: Tensor) -> Tensor:
        return hsic_binary(designs.to(scores.dtype), scores, self.output_bandwidth)
